//! A FUSE filesystem for power-loss and disk-fault testing, after Jepsen's
//! LazyFS: everything written lives in memory, as in a page cache that never
//! writes back by itself, and becomes durable only when fsynced (a file's
//! data by fsync/fdatasync of the file, a directory entry by fsync of its
//! directory). A [`Control`] then drops whatever was not synced (a power
//! loss), fails fsyncs with EIO, fails writes with ENOSPC, or delays fsyncs.
//!
//! The whole filesystem is in this process's memory (`tree`): the durable
//! layer is the "disk", so a mount's contents end when it is unmounted
//! ([`Mount::copy_out`] saves the visible files first). The mount needs
//! root (or `fusermount3`, from Debian's `fuse3`) and `/dev/fuse`.
//!
//! Modules: `tree` (the two layers and the durability rules), `fuse` (the
//! kernel's requests), `faults` (the faults and their control commands).

pub mod faults;
mod fuse;
pub mod tree;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use fuser::{BackgroundSession, MountOption};

pub use faults::{Command, Faults};
pub use tree::Lost;

use fuse::{LazyFs, Shared};

/// Sets a mount's faults and drops its unsynced data; cheap to clone.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    /// A power loss: see [`tree::Tree::lose_unsynced`]. Whoever had files
    /// open should be dead first (their handles are forgotten).
    pub fn lose_unsynced(&self, tear: bool) -> Lost {
        self.shared.tree().lose_unsynced(tear)
    }

    pub fn set_fsync_error(&self, on: bool) {
        self.update(|f| f.fsync_error = on);
    }

    pub fn set_disk_full(&self, on: bool) {
        self.update(|f| f.disk_full = on);
    }

    pub fn set_fsync_delay(&self, delay: std::time::Duration) {
        self.update(|f| f.fsync_delay = delay);
    }

    /// Every fault off (a power loss is not undone).
    pub fn clear(&self) {
        self.update(|f| *f = Faults::default());
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Carries out one control command; answers what it did.
    pub fn apply(&self, command: Command) -> String {
        match command {
            Command::LoseUnsynced { tear } => {
                let lost = self.lose_unsynced(tear);
                format!(
                    "lost unsynced data of {} files and {} directories (torn write kept {} bytes)",
                    lost.files, lost.dirs, lost.torn_bytes
                )
            }
            Command::FsyncError(on) => {
                self.set_fsync_error(on);
                format!("fsync-error {}", if on { "on" } else { "off" })
            }
            Command::DiskFull(on) => {
                self.set_disk_full(on);
                format!("disk-full {}", if on { "on" } else { "off" })
            }
            Command::SlowDisk(d) => {
                self.set_fsync_delay(d);
                format!("slow-disk {} ms", d.as_millis())
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self
            .shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}

/// A mounted filesystem; unmounted when dropped.
pub struct Mount {
    session: Option<BackgroundSession>,
    control: Control,
    path: PathBuf,
}

impl Mount {
    /// Mounts an empty filesystem at `mountpoint` (an existing directory)
    /// and serves it from a background thread.
    pub fn new(mountpoint: &Path) -> anyhow::Result<Mount> {
        let shared = Arc::new(Shared::default());
        let fs = LazyFs { shared: shared.clone() };
        let options = [
            MountOption::FSName("lazyfs".into()),
            MountOption::Subtype("lazyfs".into()),
        ];
        let session = fuser::spawn_mount2(fs, mountpoint, &options).with_context(|| {
            format!(
                "mount lazyfs at {} (needs /dev/fuse and root or fusermount3)",
                mountpoint.display()
            )
        })?;
        Ok(Mount {
            session: Some(session),
            control: Control { shared },
            path: mountpoint.to_path_buf(),
        })
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies the visible files under the mount to `dest` (created), e.g. to
    /// keep a failed run's data dirs after the mount is gone.
    pub fn copy_out(&self, dest: &Path) -> std::io::Result<()> {
        copy_tree(&self.path, dest)
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Unmounts, then joins the FUSE thread.
        if let Some(s) = self.session.take() {
            s.join();
        }
    }
}
