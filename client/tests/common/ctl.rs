//! Running `etcdctl` and `timonctl` the same way for output comparisons:
//! `ETCDCTL_API=3`, one `--endpoints` value, optional stdin, captured output.

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub const TIMONCTL: &str = env!("CARGO_BIN_EXE_timonctl");

/// Runs `binary --endpoints={endpoint} args...`, feeding `stdin` if given.
pub fn run(binary: &str, endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(binary)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    let mut input = child.stdin.take().expect("stdin piped");
    if let Some(text) = stdin {
        // A command that rejects its arguments exits without reading stdin.
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// The `Error: ...` lines of stderr; etcdctl also logs JSON warnings there.
pub fn error_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("Error:"))
        .map(str::to_owned)
        .collect()
}
