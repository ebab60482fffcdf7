//! Members' disks for the disk nemeses: each member's data dir on a lazyfs
//! mount of its own (`<run>/nN.disk`, data dir `nN.disk/data`), whose
//! writes become durable only when fsynced and which the nemeses tell to
//! lose unsynced data, fail fsyncs, refuse writes or delay fsyncs (see the
//! `lazyfs` crate). The data dir itself is made and fsynced into the mount
//! before the member starts, as a provisioned disk would hold it; what is
//! under it is the member's to make durable. When the disks are dropped
//! (after the members are killed) each mount's files are copied to
//! `<run>/nN.data`, so a failed run keeps them, and the mounts go away.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lazyfs::{Control, Mount};

/// One lazyfs mount per member.
pub struct Disks {
    mounts: Vec<Mount>,
    /// Where each mount's files are copied when dropped.
    copies: Vec<PathBuf>,
}

impl Disks {
    /// Mounts one disk per member name under `dir`; answers the disks and
    /// each member's data dir on its disk.
    pub fn mount(dir: &Path, names: &[String]) -> anyhow::Result<(Disks, Vec<PathBuf>)> {
        let mut disks = Disks {
            mounts: Vec::new(),
            copies: Vec::new(),
        };
        let mut data_dirs = Vec::new();
        for name in names {
            let at = dir.join(format!("{name}.disk"));
            std::fs::create_dir_all(&at).with_context(|| format!("create {}", at.display()))?;
            let mount = Mount::new(&at)?;
            let data = at.join("data");
            std::fs::create_dir(&data).with_context(|| format!("create {}", data.display()))?;
            std::fs::File::open(&at)?.sync_all()?;
            disks.mounts.push(mount);
            disks.copies.push(dir.join(format!("{name}.data")));
            data_dirs.push(data);
        }
        Ok((disks, data_dirs))
    }

    /// Member `i`'s disk.
    pub fn control(&self, i: usize) -> Control {
        self.mounts[i].control()
    }

    /// Turns every fault off on every disk (lost data stays lost).
    pub fn clear(&self) {
        for m in &self.mounts {
            m.control().clear();
        }
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        self.clear();
        for (m, to) in self.mounts.iter().zip(&self.copies) {
            if let Err(e) = m.copy_out(to) {
                eprintln!("could not copy {} to {}: {e}", m.path().display(), to.display());
            }
        }
    }
}
