//! Cluster control: start a 3- or 5-member cluster of a server binary (timon
//! or etcd; both take etcd's flags) on loopback, every peer link behind a
//! [`proxy::Proxy`] the harness controls, and act on members: kill -9,
//! restart, SIGSTOP/SIGCONT, partitions, finding the leader (Maintenance
//! Status). Each member's data dir and log live in the run's directory, so
//! they are kept with the results of a failed run. Every process started
//! here is killed when the [`Cluster`] is dropped (also on panic).
//!
//! With [`Spec::tls`] both ports speak mutual TLS (kubeadm's flags, a PKI
//! made in the run's directory: `timon_tls::test_pki`); the proxies pass the TLS bytes
//! through unchanged, and every client dials through [`dial::Endpoint`].

pub mod clock;
pub mod dial;
pub mod disks;
pub mod membership;
pub mod ops;
pub mod proxy;
pub mod snapshot;
pub mod source;

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::StatusRequest;
use tokio::time::Instant;

pub use dial::Endpoint;
use proxy::{Identify, Link, Proxy};
use timon_tls::test_pki::Pki;

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The server binary (timon or etcd).
    pub binary: PathBuf,
    /// 3 or 5 members.
    pub nodes: usize,
    /// Where data dirs and logs go.
    pub dir: PathBuf,
    /// Mutual TLS on the client and peer ports (`https` URLs; the PKI is
    /// made under `dir/pki`).
    pub tls: bool,
    /// Flags every member gets besides the cluster's own.
    pub extra_args: Vec<String>,
    /// Run every member under libfaketime with a clock file the harness
    /// rewrites ([`clock`]): its wall clock, or both clocks.
    pub faketime: Option<clock::Fake>,
    /// Each member's data dir on a lazyfs mount ([`disks::Disks`]), for the
    /// disk nemeses.
    pub lazy_disks: bool,
    /// What the snapshot-restore nemesis must know of the server and its
    /// flags (None when the members keep the default `--snapshot-count`:
    /// the nemesis then refuses to run).
    pub snapshot_restore: Option<snapshot::Restore>,
}

/// One member process and its addresses.
pub struct Member {
    pub name: String,
    endpoint: Endpoint,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Its data dir (wiped when it is removed from the cluster).
    data_dir: PathBuf,
    /// Removed from the cluster ([`Cluster::remove_member`]); not restarted
    /// by [`Cluster::heal`] until [`Cluster::readd_member`] adds it back.
    removed: bool,
    /// The etcd member ID, learned from its Status header once it answered.
    id: u64,
}

impl Member {
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// A running cluster. Members are indexed 0..n; proxy `i` fronts member `i`.
pub struct Cluster {
    pub members: Vec<Member>,
    proxies: Vec<Proxy>,
    binary: PathBuf,
    /// The pid of each running member, shared with the proxies' identify.
    pids: Arc<Mutex<Vec<Option<u32>>>>,
    /// `https` with TLS, else `http`: every URL the members are given.
    scheme: &'static str,
    /// The directory of the members' libfaketime clock files, when they
    /// run under libfaketime ([`clock`]).
    clocks: Option<clock::Clocks>,
    /// Members started in place of removed ones, for their names ([`ops`]).
    replacements: usize,
    /// [`Spec::snapshot_restore`].
    snapshot_restore: Option<snapshot::Restore>,
    /// When each member's log was last seen to say it sent a snapshot
    /// ([`Cluster::wait_snapshot_restored`]).
    snapshot_sent_at: Vec<Option<Instant>>,
    /// The members' lazyfs disks, with [`Spec::lazy_disks`]. Declared
    /// last: dropped after [`Drop`] killed the members.
    disks: Option<disks::Disks>,
}

/// A port nobody listens on right now (small race until the member binds
/// it: [`Cluster::start`] starts again on fresh ports if one was taken).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How many times [`Cluster::start`] tries fresh ports when a member lost
/// one (another process bound it between our pick and the member's bind).
const START_ATTEMPTS: usize = 5;

fn member_name(i: usize) -> String {
    format!("n{}", i + 1)
}

impl Cluster {
    /// Starts every member behind its proxy and waits (up to `timeout`) until
    /// all of them answer Status naming the same leader. If a member exits
    /// because a port it was given was taken, the cluster starts again, in
    /// fresh data dirs, on fresh ports (the logs keep the failed try).
    pub async fn start(spec: &Spec, timeout: Duration) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(&spec.dir)?;
        let log = |i: usize| spec.dir.join(format!("{}.log", member_name(i)));
        let mut attempt = 1;
        loop {
            // Logs are appended to: only what this try wrote counts.
            let offsets: Vec<u64> = (0..spec.nodes)
                .map(|i| std::fs::metadata(log(i)).map_or(0, |m| m.len()))
                .collect();
            let error = match Cluster::start_once(spec, timeout).await {
                Ok(cluster) => return Ok(cluster),
                Err(e) => e,
            };
            let lost_a_port = (0..spec.nodes).any(|i| {
                std::fs::read(log(i)).is_ok_and(|text| {
                    let new = text.get(offsets[i] as usize..).unwrap_or_default();
                    String::from_utf8_lossy(new)
                        .to_ascii_lowercase()
                        .contains("address already in use")
                })
            });
            if attempt == START_ATTEMPTS || !lost_a_port {
                return Err(error);
            }
            eprintln!(
                "a member lost a port before binding it; starting the cluster again on fresh ports \
                 (attempt {attempt} of {START_ATTEMPTS}): {error:#}"
            );
            for i in 0..spec.nodes {
                let data = spec.dir.join(format!("{}.data", member_name(i)));
                if data.exists() {
                    std::fs::remove_dir_all(&data).with_context(|| format!("remove {}", data.display()))?;
                }
            }
            attempt += 1;
        }
    }

    async fn start_once(spec: &Spec, timeout: Duration) -> anyhow::Result<Cluster> {
        let (scheme, tls_flags, connector) = if spec.tls {
            let pki = Pki::make(&spec.dir.join("pki"))?;
            let config = pki.client_tls().config().context("the harness's TLS client config")?;
            ("https", pki.member_flags(), Some(timon_tls::TlsConnector::new(config)))
        } else {
            ("http", Vec::new(), None)
        };
        let pids: Arc<Mutex<Vec<Option<u32>>>> = Arc::new(Mutex::new(vec![None; spec.nodes]));
        let identify: Identify = {
            let pids = pids.clone();
            Arc::new(move |remote, local| {
                let inode = source::socket_inode(remote, local)?;
                let known: Vec<(usize, u32)> = lock(&pids)
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| p.map(|p| (i, p)))
                    .collect();
                let candidates: Vec<u32> = known.iter().map(|(_, p)| *p).collect();
                let pid = source::owner(inode, &candidates)?;
                known.iter().find(|(_, p)| *p == pid).map(|(i, _)| *i)
            })
        };
        let mut ports = Vec::new();
        while ports.len() < 2 * spec.nodes {
            let p = free_port()?;
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut proxies = Vec::new();
        for i in 0..spec.nodes {
            let upstream: SocketAddr = format!("127.0.0.1:{}", ports[2 * i + 1]).parse()?;
            proxies.push(Proxy::start("127.0.0.1:0".parse()?, upstream, identify.clone()).await?);
        }
        let name = member_name;
        let initial: Vec<String> = (0..spec.nodes)
            .map(|i| format!("{}={scheme}://{}", name(i), proxies[i].addr()))
            .collect();
        let (disks, lazy_dirs) = if spec.lazy_disks {
            let names: Vec<String> = (0..spec.nodes).map(name).collect();
            let (d, dirs) = disks::Disks::mount(&spec.dir, &names)?;
            (Some(d), Some(dirs))
        } else {
            (None, None)
        };
        let mut members = Vec::new();
        for i in 0..spec.nodes {
            let (client_port, peer_port) = (ports[2 * i], ports[2 * i + 1]);
            let client = format!("{scheme}://127.0.0.1:{client_port}");
            let data_dir = match &lazy_dirs {
                Some(dirs) => dirs[i].clone(),
                None => spec.dir.join(format!("{}.data", name(i))),
            };
            let args: Vec<String> = [
                "--name",
                &name(i),
                "--data-dir",
                &data_dir.display().to_string(),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &format!("{scheme}://127.0.0.1:{peer_port}"),
                "--initial-advertise-peer-urls",
                &format!("{scheme}://{}", proxies[i].addr()),
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-state",
                "new",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(tls_flags.iter().cloned())
            .chain(spec.extra_args.iter().cloned())
            .collect();
            members.push(Member {
                name: name(i),
                endpoint: Endpoint::new(client, connector.clone()),
                args,
                log: spec.dir.join(format!("{}.log", name(i))),
                child: None,
                paused: false,
                data_dir,
                removed: false,
                id: 0,
            });
        }
        let mut cluster = Cluster {
            members,
            proxies,
            binary: spec.binary.clone(),
            pids,
            scheme,
            clocks: spec.faketime.map(|fake| clock::Clocks::new(&spec.dir, fake)),
            replacements: 0,
            snapshot_restore: spec.snapshot_restore,
            snapshot_sent_at: vec![None; spec.nodes],
            disks,
        };
        cluster.init_clocks()?;
        for i in 0..spec.nodes {
            cluster.spawn(i)?;
        }
        cluster.wait_healthy(timeout).await?;
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.members.iter().map(|m| m.endpoint.clone()).collect()
    }

    /// The log file of every member (stdout and stderr, across restarts).
    pub fn logs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.log.clone()).collect()
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.binary);
        self.clock_env(i, &mut cmd);
        let m = &mut self.members[i];
        let log = OpenOptions::new().create(true).append(true).open(&m.log)?;
        // Both servers read ETCD_* variables as flags: none leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("ETCD")) {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .args(&m.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        lock(&self.pids)[i] = Some(child.id());
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    /// Whether member `i`'s process runs (and is not paused).
    pub fn is_up(&mut self, i: usize) -> bool {
        let m = &mut self.members[i];
        !m.paused && m.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL member `i` and reap it; its data dir stays.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut child) = m.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.clock_reaped(child.id());
        }
        self.members[i].paused = false;
        lock(&self.pids)[i] = None;
    }

    /// SIGKILL every member at the same moment: every signal is sent before
    /// any member is reaped, so none outlives another by more than the
    /// signals' delivery. Data dirs stay.
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            if let Some(child) = m.child.as_mut() {
                let _ = child.kill();
            }
        }
        for i in 0..self.len() {
            self.kill(i);
        }
    }

    /// Starts a killed member again with the same flags and data dir (does
    /// not wait: it may not become ready until a quorum is reachable).
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.spawn(i)
    }

    fn signal(&self, i: usize, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.members[i].child.as_ref().map(Child::id) else {
            bail!("{} is not running", self.members[i].name);
        };
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?
            .success();
        if !ok {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    /// SIGSTOP member `i`.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "STOP")?;
        self.members[i].paused = true;
        Ok(())
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "CONT")?;
        self.members[i].paused = false;
        Ok(())
    }

    /// Sets the (from → to) link: connections `from` opens to `to`.
    pub fn set_link(&self, from: usize, to: usize, link: Link) {
        self.proxies[to].set(from, link);
    }

    /// Cuts every link between members of different `groups` (both ways).
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let group_of = |m: usize| groups.iter().position(|g| g.contains(&m));
        for to in 0..self.len() {
            for from in 0..self.len() {
                if from != to && group_of(from) != group_of(to) {
                    self.set_link(from, to, Link::Drop);
                }
            }
        }
    }

    /// Every link passes, disk faults end, paused members continue, killed
    /// (or crashed) members restart (removed members stay down: see [`Cluster::readd_member`]).
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for p in &self.proxies {
            p.heal();
        }
        if let Some(d) = &self.disks {
            d.clear();
        }
        for i in 0..self.len() {
            if self.members[i].paused {
                self.resume(i)?;
            }
            if self.members[i].removed {
                continue;
            }
            let running = self.members[i]
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            if !running {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Status of member `i`: (its member ID, the leader it names).
    pub async fn status(&self, i: usize) -> anyhow::Result<(u64, u64)> {
        let endpoint = self.members[i].endpoint();
        let probe = async {
            let channel = endpoint.connect(None).await?;
            let s = MaintenanceClient::new(channel)
                .status(StatusRequest {})
                .await?
                .into_inner();
            let id = s.header.map_or(0, |h| h.member_id);
            anyhow::Ok((id, s.leader))
        };
        tokio::time::timeout(Duration::from_secs(1), probe)
            .await
            .context("Status timed out")?
    }

    /// The member the running members name as leader (by majority of those
    /// that answer), if any.
    pub async fn leader(&mut self) -> Option<usize> {
        let mut votes: Vec<u64> = Vec::new();
        for i in 0..self.len() {
            if !self.is_up(i) {
                continue;
            }
            if let Ok((id, leader)) = self.status(i).await {
                self.members[i].id = id;
                if leader != 0 {
                    votes.push(leader);
                }
            }
        }
        votes.sort_unstable();
        let best = votes.chunk_by(|a, b| a == b).max_by_key(|c| c.len()).map(|c| c[0])?;
        self.members.iter().position(|m| m.id == best)
    }

    /// Waits until every member answers Status and all name the same leader.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt yet");
        while Instant::now() < deadline {
            for i in 0..self.len() {
                if let Some(c) = self.members[i].child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        bail!(
                            "{} exited with {status}; see {}",
                            self.members[i].name,
                            self.members[i].log.display()
                        );
                    }
                }
            }
            let mut leaders = Vec::new();
            for i in 0..self.len() {
                match self.status(i).await {
                    Ok((id, leader)) => {
                        self.members[i].id = id;
                        leaders.push(leader);
                    }
                    Err(e) => {
                        last = format!("{}: {e:#}", self.members[i].name);
                        break;
                    }
                }
            }
            if leaders.len() == self.len() && leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
                if let Some(i) = self.members.iter().position(|m| m.id == leaders[0]) {
                    return Ok(i);
                }
            } else if leaders.len() == self.len() {
                last = format!("leaders disagree or none: {leaders:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("cluster not healthy within {timeout:?} (last: {last})")
    }

    /// Member `i`'s lazyfs disk, when the cluster runs on them.
    pub fn disk(&self, i: usize) -> Option<lazyfs::Control> {
        self.disks.as_ref().map(|d| d.control(i))
    }

    /// Where member `i`'s log is written.
    pub fn log_path(&self, i: usize) -> &Path {
        &self.members[i].log
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
