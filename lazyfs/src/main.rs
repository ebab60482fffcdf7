//! `lazyfs MOUNTPOINT`: mounts a lazyfs (see the library) and reads control
//! commands on stdin, one a line (`lose-unsynced [torn]`, `fsync-error
//! on|off`, `disk-full on|off`, `slow-disk MS`), answering each on stdout.
//! End of input unmounts.

use std::io::BufRead;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(mountpoint), None) = (args.next(), args.next()) else {
        anyhow::bail!("usage: lazyfs MOUNTPOINT (control commands on stdin)");
    };
    let mount = lazyfs::Mount::new(mountpoint.as_ref())?;
    let control = mount.control();
    println!("mounted at {}", mount.path().display());
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match lazyfs::Command::parse(&line) {
            Ok(c) => println!("{}", control.apply(c)),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(())
}
