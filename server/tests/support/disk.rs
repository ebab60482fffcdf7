//! A member's disk on lazyfs (the `timon-lazyfs` crate): writes durable only
//! once fsynced, directory entries only once their directory is fsynced,
//! and faults on demand (power loss, fsync EIO, ENOSPC, slow fsync).

use std::path::PathBuf;

/// A lazyfs mount with an empty data dir on it, made durable as a
/// provisioned disk would hold it. Unmounted when dropped (drop the member
/// using it first).
pub struct Disk {
    pub mount: lazyfs::Mount,
    _dir: tempfile::TempDir,
}

impl Disk {
    pub fn new() -> Disk {
        let dir = tempfile::tempdir().expect("tempdir");
        let mount = lazyfs::Mount::new(dir.path()).expect("mount lazyfs (needs /dev/fuse and root)");
        std::fs::create_dir(mount.path().join("data")).expect("data dir");
        std::fs::File::open(mount.path())
            .and_then(|d| d.sync_all())
            .expect("fsync the mount's root");
        Disk { mount, _dir: dir }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.mount.path().join("data")
    }

    pub fn control(&self) -> lazyfs::Control {
        self.mount.control()
    }
}
