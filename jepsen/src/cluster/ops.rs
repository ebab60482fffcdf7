//! What an operator does to a running cluster, for the operations nemeses
//! (`crate::nemesis::ops`): stop a member with SIGTERM and wait for it to
//! exit, wait until a member serves again, give a removed member's slot a
//! new name and data dir, MoveLeader, Compact and Defragment.

use std::time::Duration;

use anyhow::{bail, Context};
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::{CompactionRequest, DefragmentRequest, MoveLeaderRequest, RangeRequest};
use tokio::time::Instant;

use super::{member_name, Cluster};

/// How long one Maintenance or KV call may take (Defragment rewrites the
/// whole backend; MoveLeader waits for the transferee to lead).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How often exits and readiness are polled.
const POLL: Duration = Duration::from_millis(50);

impl Cluster {
    /// Sends member `i` SIGTERM and waits up to `patience` for it to exit
    /// (a leader first hands its leadership over). Answers its exit status;
    /// an error (after SIGKILL) if it did not exit in time.
    pub async fn terminate(&mut self, i: usize, patience: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.signal(i, "TERM")?;
        let deadline = Instant::now() + patience;
        loop {
            let m = &mut self.members[i];
            let child = m.child.as_mut().context("not running")?;
            if let Some(status) = child.try_wait()? {
                let pid = child.id();
                m.child = None;
                self.clock_reaped(pid);
                super::lock(&self.pids)[i] = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill(i);
                bail!(
                    "{} did not exit within {patience:?} of SIGTERM (killed)",
                    self.members[i].name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts member `i` again after [`Cluster::terminate`].
    pub fn start_member(&mut self, i: usize) -> anyhow::Result<()> {
        self.spawn(i)
    }

    /// Waits until member `i` answers Status naming a leader (and learns
    /// its member ID).
    pub async fn wait_member_ready(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.members[i].child.as_mut().map(|c| c.try_wait()) {
                bail!("{} exited with {status}", self.members[i].name);
            }
            match self.status(i).await {
                Ok((id, leader)) if leader != 0 => {
                    self.members[i].id = id;
                    return Ok(());
                }
                Ok(_) => last = "no leader".into(),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(POLL).await;
        }
        bail!("{} not serving within {timeout:?} (last: {last})", self.members[i].name)
    }

    /// Gives removed member slot `i` a new name (`n2-r1`, ...), data dir
    /// and log, as a new machine replacing a broken one gets; its ports
    /// and peer proxy stay. `--initial-cluster` names every member as it
    /// is called now. Answers the new name.
    pub fn rename_member(&mut self, i: usize) -> anyhow::Result<String> {
        if !self.members[i].removed {
            bail!("{} is not removed", self.members[i].name);
        }
        self.replacements += 1;
        let name = format!("{}-r{}", member_name(i), self.replacements);
        let dir = self.members[i]
            .data_dir
            .parent()
            .context("data dir without parent")?
            .to_path_buf();
        let initial: Vec<String> = (0..self.len())
            .map(|j| {
                let n = if j == i { &name } else { &self.members[j].name };
                format!("{n}={}", self.peer_url(j))
            })
            .collect();
        let m = &mut self.members[i];
        m.data_dir = dir.join(format!("{name}.data"));
        m.log = dir.join(format!("{name}.log"));
        let set = |args: &mut Vec<String>, flag: &str, value: String| {
            if let Some(at) = args.iter().position(|a| a == flag) {
                args[at + 1] = value;
            }
        };
        set(&mut m.args, "--name", name.clone());
        set(&mut m.args, "--data-dir", m.data_dir.display().to_string());
        set(&mut m.args, "--initial-cluster", initial.join(","));
        m.name = name.clone();
        Ok(name)
    }

    /// Member `i`'s ID as last learned from its Status (0 if never).
    pub fn member_id(&self, i: usize) -> u64 {
        self.members[i].id
    }

    /// Maintenance.MoveLeader sent to leader `leader`, naming member `to`.
    pub async fn move_leader(&self, leader: usize, to: u64) -> anyhow::Result<()> {
        let channel = self.members[leader].endpoint().connect(Some(CALL_TIMEOUT)).await?;
        MaintenanceClient::new(channel)
            .move_leader(MoveLeaderRequest { target_id: to })
            .await
            .with_context(|| format!("MoveLeader via {}", self.members[leader].name))?;
        Ok(())
    }

    /// The revision member `i` answers (a serializable Range's header).
    pub async fn revision(&self, i: usize) -> anyhow::Result<i64> {
        let channel = self.members[i].endpoint().connect(Some(CALL_TIMEOUT)).await?;
        let r = KvClient::new(channel)
            .range(RangeRequest {
                key: b"jepsen/revision-probe".to_vec(),
                serializable: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(r.header.map_or(0, |h| h.revision))
    }

    /// Compacts the key space up to `revision` through member `i`.
    pub async fn compact(&self, i: usize, revision: i64) -> anyhow::Result<()> {
        let channel = self.members[i].endpoint().connect(Some(CALL_TIMEOUT)).await?;
        KvClient::new(channel)
            .compact(CompactionRequest {
                revision,
                physical: true,
            })
            .await
            .with_context(|| format!("Compact {revision} via {}", self.members[i].name))?;
        Ok(())
    }

    /// Defragments member `i`'s backend.
    pub async fn defragment(&self, i: usize) -> anyhow::Result<()> {
        let channel = self.members[i].endpoint().connect(Some(CALL_TIMEOUT)).await?;
        MaintenanceClient::new(channel)
            .defragment(DefragmentRequest {})
            .await
            .with_context(|| format!("Defragment {}", self.members[i].name))?;
        Ok(())
    }
}
