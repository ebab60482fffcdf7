//! What the `snapshot-restore` nemesis (`crate::nemesis::ops`) asks of a
//! cluster: the raft indexes a member reports, filler writes until the
//! cluster's raft log moved far enough past a stopped member that its
//! leader must send it a snapshot, and the members' logs read for the
//! snapshot a leader sent it.
//!
//! Filler keys live under [`FILLER_PREFIX`], outside every workload's keys
//! (`jepsen/register/`, `jepsen/k8s/pods/`, `jepsen/lock/`,
//! `jepsen/lock-owner`, `jepsen/lease/`, `jepsen/auth/`): no checker reads,
//! watches or lists them, and the final reads never see them. They only
//! raise the store's revision, which every checker allows (revisions rise
//! with any write).
//!
//! Both servers log the snapshot a leader sent: timon's
//! `raft::network` and etcd's rafthttp snapshot sender with zap as
//! `"msg":"sent database snapshot"` (`snapshot-index`, `remote-peer-id`);
//! etcd 3.4's default capnslog logger as `database snapshot [index: N,
//! to: ID] sent out successfully`. Member IDs are lowercase hex in both.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use timon_proto::etcdserverpb::auth_client::AuthClient;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::{AuthenticateRequest, PutRequest, StatusRequest};
use tokio::time::Instant;
use tonic::metadata::MetadataValue;

use super::{Cluster, Endpoint};

/// The prefix of every filler key (outside every workload's; see the
/// module doc).
pub const FILLER_PREFIX: &str = "nemesis/snapshot-restore/";
/// Filler keys are overwritten in turn: the key space stays small.
const FILLER_KEYS: u64 = 64;
/// Concurrent filler writers: etcd proposes each Put as its own raft entry
/// and fsyncs together what arrives while the last fsync ran, so many
/// writers make thousands of entries quick (on a loaded machine, 32
/// writers made 260 entries a second, 128 about 1000); timon groups
/// concurrent Puts into one entry (`raft::propose_batch`), so on timon it
/// is fewer entries per Put.
const FILLER_WRITERS: usize = 128;
/// How long one filler Put or Authenticate may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often indexes and logs are polled.
const POLL: Duration = Duration::from_millis(100);
/// A failed filler Put's pause before the next (no leader, etcd's "too
/// many requests" while its apply lags): a retry backoff, not a wait.
const BACKOFF: Duration = Duration::from_millis(100);

/// What the `snapshot-restore` nemesis must know of the server under test
/// and its flags (`run::Server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restore {
    /// How many raft entries the cluster must apply past a stopped member
    /// before its leader can only catch it up with a snapshot.
    pub outrun: u64,
    /// How long a leader that sent a snapshot keeps its whole raft log
    /// (etcd: 30 s), so that a member stopped meanwhile would catch up
    /// from the log.
    pub held_after_send: Duration,
}

/// A member's raft position, from its Status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftIndexes {
    /// timon: its last log index; etcd: its commit index.
    pub index: u64,
    pub applied: u64,
}

/// A snapshot a member's log says it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentSnapshot {
    /// The member that sent it (the leader then).
    pub from: usize,
    /// The raft index the snapshot was taken at.
    pub index: u64,
}

impl Cluster {
    /// The nemesis's settings ([`super::Spec::snapshot_restore`]).
    pub fn snapshot_restore(&self) -> Option<Restore> {
        self.snapshot_restore
    }

    /// Whether member `i` sent a snapshot so recently that, as a leader,
    /// it would still keep its whole raft log ([`Restore::held_after_send`]).
    pub fn holds_its_log(&self, i: usize) -> bool {
        let held = self.snapshot_restore.map_or(Duration::ZERO, |r| r.held_after_send);
        self.snapshot_sent_at[i].is_some_and(|t| t.elapsed() < held)
    }

    /// Member `i`'s raft indexes (its Status).
    pub async fn raft_indexes(&self, i: usize) -> anyhow::Result<RaftIndexes> {
        let endpoint = self.members[i].endpoint();
        let probe = async {
            let channel = endpoint.connect(None).await?;
            let s = MaintenanceClient::new(channel)
                .status(StatusRequest {})
                .await?
                .into_inner();
            anyhow::Ok(RaftIndexes {
                index: s.raft_index,
                applied: s.raft_applied_index,
            })
        };
        tokio::time::timeout(Duration::from_secs(1), probe)
            .await
            .context("Status timed out")?
    }

    /// The highest applied index any running member reports (the leader's,
    /// give or take a heartbeat); 0 if none answers.
    async fn applied_anywhere(&mut self) -> u64 {
        let mut best = 0;
        for i in 0..self.len() {
            if self.is_up(i) {
                if let Ok(r) = self.raft_indexes(i).await {
                    best = best.max(r.applied);
                }
            }
        }
        best
    }

    /// Writes filler Puts (concurrently, through every running member)
    /// until a running member applied raft index `target`, or fails after
    /// `patience`. With auth enabled (the auth workload) the writers log in
    /// as root. Answers how many Puts succeeded and the applied index
    /// reached.
    pub async fn fill_until_applied(&mut self, target: u64, patience: Duration) -> anyhow::Result<(u64, u64)> {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for i in 0..self.len() {
            if self.is_up(i) {
                endpoints.push(self.members[i].endpoint().clone());
            }
        }
        if endpoints.is_empty() {
            bail!("no member is running");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let last_error = Arc::new(std::sync::Mutex::new(None::<String>));
        // A simple token is known to a member once it applied the log-in,
        // so the writers of one member share one.
        let tokens: Vec<Arc<RootToken>> = endpoints.iter().map(|_| Arc::default()).collect();
        let mut writers = Vec::new();
        for w in 0..FILLER_WRITERS {
            let endpoint = endpoints[w % endpoints.len()].clone();
            let token = tokens[w % endpoints.len()].clone();
            let (stop, written, last_error) = (stop.clone(), written.clone(), last_error.clone());
            writers.push(tokio::spawn(async move {
                if let Err(e) = filler_writer(endpoint, &token, w as u64, &stop, &written).await {
                    *last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            }));
        }
        let deadline = Instant::now() + patience;
        let reached = loop {
            let applied = self.applied_anywhere().await;
            if applied >= target {
                break Ok(applied);
            }
            if Instant::now() >= deadline {
                let error = last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
                break Err(anyhow::anyhow!(
                    "applied index {applied} after {patience:?} of filler writes, not {target} \
                     ({} Puts; last error: {})",
                    written.load(Ordering::Relaxed),
                    error.as_deref().unwrap_or("none")
                ));
            }
            tokio::time::sleep(POLL).await;
        };
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.await;
        }
        Ok((written.load(Ordering::Relaxed), reached?))
    }

    /// The snapshots the members' logs say were sent to member ID `to`,
    /// reading each log `i` from byte `offsets[i]` on (its length before
    /// the member that should receive one was started).
    pub fn snapshots_sent(&self, to: u64, offsets: &[u64]) -> Vec<SentSnapshot> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            let Ok(text) = std::fs::read(&m.log) else { continue };
            let from = offsets.get(i).copied().unwrap_or(0) as usize;
            let new = String::from_utf8_lossy(text.get(from..).unwrap_or_default()).into_owned();
            out.extend(
                new.lines()
                    .filter_map(|l| sent_snapshot(l, to))
                    .map(|index| SentSnapshot { from: i, index }),
            );
        }
        out
    }

    /// Each member's log length now (for [`Cluster::snapshots_sent`]).
    pub fn log_offsets(&self) -> Vec<u64> {
        self.members
            .iter()
            .map(|m| std::fs::metadata(&m.log).map_or(0, |md| md.len()))
            .collect()
    }

    /// Waits up to `timeout` until a member's log says it sent member `i`
    /// a snapshot (logs read from `offsets` on) and member `i` applied it.
    pub async fn wait_snapshot_restored(
        &mut self,
        i: usize,
        offsets: &[u64],
        timeout: Duration,
    ) -> anyhow::Result<SentSnapshot> {
        let to = self.member_id(i);
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no snapshot sent to it");
        while Instant::now() < deadline {
            if let Some(sent) = self.snapshots_sent(to, offsets).into_iter().max_by_key(|s| s.index) {
                self.snapshot_sent_at[sent.from] = Some(Instant::now());
                match self.raft_indexes(i).await {
                    Ok(r) if r.applied >= sent.index => return Ok(sent),
                    Ok(r) => {
                        last = format!(
                            "snapshot at {} sent by {}, applied only {}",
                            sent.index, self.members[sent.from].name, r.applied
                        )
                    }
                    Err(e) => last = format!("{e:#}"),
                }
            }
            tokio::time::sleep(POLL).await;
        }
        bail!(
            "{} ({to:x}) not restored from a snapshot within {timeout:?}: {last}",
            self.members[i].name
        )
    }
}

/// One filler writer: Puts to its keys until `stop`, counting successes.
/// Logs in as root when the cluster asks for a user (auth enabled) or
/// refuses the token. Answers the error of its last Put, if that failed.
async fn filler_writer(
    endpoint: Endpoint,
    token: &RootToken,
    writer: u64,
    stop: &AtomicBool,
    written: &AtomicU64,
) -> Result<(), String> {
    let channel = endpoint.lazy().map_err(|e| format!("{e:#}"))?;
    let mut kv = KvClient::new(channel.clone());
    let mut n = writer;
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{FILLER_PREFIX}{}", n % FILLER_KEYS);
        let mut request = tonic::Request::new(PutRequest {
            key: key.into_bytes(),
            value: n.to_string().into_bytes(),
            ..Default::default()
        });
        let (generation, current) = token.current().await;
        if let Some(v) = current.as_deref().and_then(|t| MetadataValue::try_from(t).ok()) {
            request.metadata_mut().insert("token", v);
        }
        match tokio::time::timeout(CALL_TIMEOUT, kv.put(request)).await {
            Ok(Ok(_)) => {
                written.fetch_add(1, Ordering::Relaxed);
                n += FILLER_WRITERS as u64;
                result = Ok(());
                continue;
            }
            Ok(Err(status)) if crate::workload::auth::token_refused(status.message()) => {
                match token.renew(generation, &channel).await {
                    Ok(()) => continue,
                    Err(e) => result = Err(format!("log in as root: {e}")),
                }
            }
            Ok(Err(status)) => result = Err(crate::workload::register::describe(&status)),
            Err(_) => result = Err("Put timed out".into()),
        }
        tokio::time::sleep(BACKOFF).await;
    }
    result
}

/// The auth workload's root token, shared by the filler writers of one
/// member: the first writer refused with a token logs in again, the others
/// take the new one (a log-in per refusal, not one per writer: each is a
/// raft entry, and a permission change refuses every writer at once).
#[derive(Default)]
struct RootToken {
    /// (generation, token): the generation counts log-ins.
    current: tokio::sync::Mutex<(u64, Option<String>)>,
}

impl RootToken {
    async fn current(&self) -> (u64, Option<String>) {
        self.current.lock().await.clone()
    }

    /// Logs in as root unless another writer did since generation `seen`.
    async fn renew(&self, seen: u64, channel: &tonic::transport::Channel) -> Result<(), String> {
        let mut current = self.current.lock().await;
        if current.0 != seen {
            return Ok(());
        }
        let login = AuthenticateRequest {
            name: crate::workload::auth::ROOT.into(),
            password: crate::workload::auth::password(crate::workload::auth::ROOT),
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, AuthClient::new(channel.clone()).authenticate(login)).await;
        *current = match answer {
            Ok(Ok(r)) => (seen + 1, Some(r.into_inner().token)),
            Ok(Err(status)) => return Err(crate::workload::register::describe(&status)),
            Err(_) => return Err("Authenticate timed out".into()),
        };
        Ok(())
    }
}

/// The snapshot index of a log line that says a snapshot was sent to
/// member ID `to` (zap JSON from timon or etcd, or etcd 3.4's capnslog).
fn sent_snapshot(line: &str, to: u64) -> Option<u64> {
    let to = format!("{to:x}");
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["msg"] != "sent database snapshot" || v["remote-peer-id"] != to.as_str() {
            return None;
        }
        return v["snapshot-index"].as_u64();
    }
    // "database snapshot [index: 6700, to: 8e9e05c52164694d] sent out successfully"
    let rest = line.split("database snapshot [index: ").nth(1)?;
    let (index, rest) = rest.split_once(", to: ")?;
    let (peer, rest) = rest.split_once(']')?;
    (peer == to && rest.trim_start().starts_with("sent out successfully"))
        .then(|| index.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timons_and_etcds_sent_snapshot_lines() {
        let timon = r#"{"level":"info","ts":"2026-12-06T08:00:00.000Z","caller":"raft/network.rs:376","msg":"sent database snapshot","snapshot-index":812,"remote-peer-id":"8e9e05c52164694d","bytes":20480,"size":"20 kB"}"#;
        assert_eq!(sent_snapshot(timon, 0x8e9e05c52164694d), Some(812));
        assert_eq!(sent_snapshot(timon, 0x1234), None, "another member's snapshot");
        let etcd = "2026-12-06 08:35:38.155929 I | rafthttp: database snapshot [index: 6700, to: 8e9e05c52164694d] sent out successfully";
        assert_eq!(sent_snapshot(etcd, 0x8e9e05c52164694d), Some(6700));
        assert_eq!(sent_snapshot(etcd, 0x1234), None);
        let started = "2026-12-06 08:35:38.155929 I | rafthttp: start to send database snapshot [index: 6700, to 8e9e05c52164694d, size 1.2 MB]...";
        assert_eq!(sent_snapshot(started, 0x8e9e05c52164694d), None, "not sent yet");
        let failed = "2026-12-06 08:35:38.155929 W | rafthttp: database snapshot [index: 6700, to: 8e9e05c52164694d] failed to be sent out (EOF)";
        assert_eq!(sent_snapshot(failed, 0x8e9e05c52164694d), None);
        let received = r#"{"level":"info","msg":"received and saved database snapshot","incoming-snapshot-index":812}"#;
        assert_eq!(sent_snapshot(received, 0x8e9e05c52164694d), None);
    }
}
