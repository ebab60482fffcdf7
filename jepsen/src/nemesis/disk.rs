//! The disk nemeses: faults of the members' lazyfs disks
//! (`cluster::disks`), which a run with one of them mounts under every
//! member's data dir. Each lasts until the heal, which turns every disk
//! fault off and restarts whichever member is not running (killed here, or
//! stopped by the fault itself).
//!
//! - `lose-unsynced`: kill -9 the leader or a random member, then drop
//!   everything its disk holds unsynced (half the time tearing the last
//!   unsynced write): a power cut of one machine.
//! - `lose-unsynced-all`: the same on every member at the same moment.
//! - `fsync-error`: one member's fsyncs fail with EIO (and the pages they
//!   should have written are forgotten, as Linux forgets them).
//! - `disk-full`: one member's writes fail with ENOSPC.
//! - `slow-disk`: one member's (or every member's) fsyncs answer
//!   200 ms–2 s late.

use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::Rng;

use super::{target, Kind};
use crate::cluster::Cluster;

/// The nemeses that need the members' data dirs on lazyfs.
pub const KINDS: [Kind; 5] = [
    Kind::LoseUnsynced,
    Kind::LoseUnsyncedAll,
    Kind::FsyncError,
    Kind::DiskFull,
    Kind::SlowDisk,
];

/// Whether a run under `kind` mounts lazyfs disks.
pub fn needs_disks(kind: Kind) -> bool {
    KINDS.contains(&kind)
}

fn disk(cluster: &Cluster, i: usize) -> anyhow::Result<lazyfs::Control> {
    cluster
        .disk(i)
        .with_context(|| format!("{} has no lazyfs disk", cluster.members[i].name))
}

/// Injects one disk fault; answers its description.
pub async fn inject(kind: Kind, cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    Ok(match kind {
        Kind::LoseUnsynced => {
            let i = target(cluster, rng, false).await;
            cluster.kill(i);
            let tear = rng.gen_bool(0.5);
            let lost = disk(cluster, i)?.lose_unsynced(tear);
            format!(
                "kill -9 {}, lose unsynced data ({} files, {} dirs{})",
                cluster.members[i].name,
                lost.files,
                lost.dirs,
                if tear {
                    format!(", torn write kept {} bytes", lost.torn_bytes)
                } else {
                    String::new()
                }
            )
        }
        Kind::LoseUnsyncedAll => {
            cluster.kill_all();
            let tear = rng.gen_bool(0.5);
            let (mut files, mut dirs) = (0, 0);
            for i in 0..cluster.len() {
                let lost = disk(cluster, i)?.lose_unsynced(tear);
                files += lost.files;
                dirs += lost.dirs;
            }
            format!(
                "kill -9 all members, lose unsynced data ({files} files, {dirs} dirs{})",
                if tear { ", torn writes" } else { "" }
            )
        }
        Kind::FsyncError => {
            let i = target(cluster, rng, false).await;
            disk(cluster, i)?.set_fsync_error(true);
            format!("fsync EIO on {}", cluster.members[i].name)
        }
        Kind::DiskFull => {
            let i = target(cluster, rng, false).await;
            disk(cluster, i)?.set_disk_full(true);
            format!("disk full (ENOSPC) on {}", cluster.members[i].name)
        }
        Kind::SlowDisk => {
            let delay = Duration::from_millis(rng.gen_range(200..=2000));
            let which: Vec<usize> = if rng.gen_bool(0.5) {
                (0..cluster.len()).collect()
            } else {
                vec![target(cluster, rng, false).await]
            };
            for &i in &which {
                disk(cluster, i)?.set_fsync_delay(delay);
            }
            let names: Vec<String> = which.iter().map(|i| cluster.members[*i].name.clone()).collect();
            format!("fsync delayed {} ms on {}", delay.as_millis(), names.join(","))
        }
        other => anyhow::bail!("{} is not a disk nemesis", other.name()),
    })
}
