//! Starts a 3-member cluster of timon or etcd (both take etcd's flags) on
//! free loopback ports, with data dirs and logs under a directory the caller
//! owns, and waits until every member names the same leader. A member can
//! be stopped with SIGTERM and started again with the same flags and data
//! dir. Dropping the [`Cluster`] SIGKILLs and reaps every member it started.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::StatusRequest;

use super::plan::Members;

/// Settings passed to both servers with the same values, so they are tuned
/// alike.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub snapshot_count: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub quota_backend_bytes: u64,
}

impl Settings {
    fn flags(&self) -> Vec<String> {
        [
            ("--snapshot-count", self.snapshot_count),
            ("--heartbeat-interval", self.heartbeat_interval_ms),
            ("--election-timeout", self.election_timeout_ms),
            ("--quota-backend-bytes", self.quota_backend_bytes),
        ]
        .iter()
        .flat_map(|(flag, v)| [flag.to_string(), v.to_string()])
        .chain(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"].map(String::from))
        .collect()
    }
}

pub struct Member {
    pub name: String,
    pub endpoint: String,
    pub log: PathBuf,
    /// The member's data dir.
    pub data: PathBuf,
    child: Child,
    /// How it was started, to start it again ([`Cluster::respawn`]).
    binary: PathBuf,
    args: Vec<String>,
}

impl Member {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

pub struct Cluster {
    /// `timon` or `etcd`: names the data dirs, logs and cluster token.
    pub label: String,
    pub members: Vec<Member>,
    /// With `compare --tls`: how clients (and the readiness probe) dial.
    tls: Option<timon_tls::TlsConnector>,
}

/// `compare --tls`: both ports of every member use kubeadm's TLS flags with
/// certificates from one throw-away PKI; clients present `client`.
pub struct Tls {
    pub pki: timon_tls::test_pki::Pki,
}

impl Tls {
    /// Makes the PKI under `dir`.
    pub fn new(dir: &Path) -> anyhow::Result<Tls> {
        Ok(Tls {
            pki: timon_tls::test_pki::Pki::make(&dir.join("pki"))?,
        })
    }

    fn member_flags(&self) -> Vec<String> {
        self.pki.member_flags()
    }

    /// What workloads dial with.
    pub fn client(&self) -> timon_tls::ClientTls {
        self.pki.client_tls()
    }
}

/// A port nobody listens on now (a small race until the member binds it:
/// [`Cluster::start`] starts again on fresh ports if one was taken).
/// `taken` avoids handing out the same port twice in one run.
pub fn free_port(taken: &mut Vec<u16>) -> anyhow::Result<u16> {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if !taken.contains(&port) {
            taken.push(port);
            return Ok(port);
        }
    }
}

/// How many times [`Cluster::start`] tries fresh ports when a member lost
/// one (another process bound it between our pick and the member's bind).
const START_ATTEMPTS: usize = 5;

impl Cluster {
    /// Starts `size` members of `binary` under `dir` and waits up to
    /// `timeout` until all of them answer Status naming one leader. If a
    /// member exits because a port it was given was taken, the cluster
    /// starts again, in fresh data dirs, on fresh ports.
    pub async fn start(
        label: &str,
        binary: &Path,
        size: usize,
        settings: &Settings,
        dir: &Path,
        ports: &mut Vec<u16>,
        timeout: Duration,
        tls: Option<&Tls>,
    ) -> anyhow::Result<Cluster> {
        let mut attempt = 1;
        loop {
            match Cluster::start_once(label, binary, size, settings, dir, ports, timeout, tls).await {
                Ok(cluster) => return Ok(cluster),
                Err(e) if attempt < START_ATTEMPTS && lost_a_port(label, size, dir) => {
                    eprintln!(
                        "{label}: a member lost a port before binding it; starting again on fresh ports \
                         (attempt {attempt} of {START_ATTEMPTS}): {e:#}"
                    );
                    for i in 0..size {
                        let data = dir.join(format!("{label}{}.data", i + 1));
                        if data.exists() {
                            std::fs::remove_dir_all(&data).with_context(|| format!("remove {}", data.display()))?;
                        }
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(
        label: &str,
        binary: &Path,
        size: usize,
        settings: &Settings,
        dir: &Path,
        ports: &mut Vec<u16>,
        timeout: Duration,
        tls: Option<&Tls>,
    ) -> anyhow::Result<Cluster> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut addrs = Vec::new();
        for _ in 0..size {
            addrs.push((free_port(ports)?, free_port(ports)?));
        }
        let initial: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("{label}{}={scheme}://127.0.0.1:{peer}", i + 1))
            .collect();
        let mut cluster = Cluster {
            label: label.to_string(),
            members: Vec::new(),
            tls: match tls {
                Some(t) => Some(timon_tls::TlsConnector::new(t.client().config()?)),
                None => None,
            },
        };
        for (i, (client, peer)) in addrs.iter().enumerate() {
            let name = format!("{label}{}", i + 1);
            let endpoint = format!("{scheme}://127.0.0.1:{client}");
            let log = dir.join(format!("{name}.log"));
            let data = dir.join(format!("{name}.data"));
            let peer_url = format!("{scheme}://127.0.0.1:{peer}");
            let mut args: Vec<String> = vec!["--name".into(), name.clone(), "--data-dir".into()];
            args.push(data.to_str().context("data dir path is not UTF-8")?.into());
            args.extend(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint].map(String::from));
            args.extend(
                [
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                ]
                .map(String::from),
            );
            args.extend(tls.map(Tls::member_flags).unwrap_or_default());
            args.extend(["--initial-cluster".into(), initial.join(",")]);
            args.extend(["--initial-cluster-state", "new"].map(String::from));
            args.extend(["--initial-cluster-token".into(), format!("bench-{label}")]);
            args.extend(settings.flags());
            let child = spawn(binary, &args, File::create(&log)?)?;
            cluster.members.push(Member {
                name,
                endpoint,
                log,
                data,
                child,
                binary: binary.to_path_buf(),
                args,
            });
        }
        cluster.wait_ready(timeout).await?;
        Ok(cluster)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint.clone()).collect()
    }

    /// The client URLs of the members `to` names; the leader and the
    /// followers are told apart by Status.
    pub async fn endpoints_of(&self, to: Members) -> anyhow::Result<Vec<String>> {
        if to == Members::All {
            return Ok(self.endpoints());
        }
        let (mut leader, mut follower) = (None, None);
        for m in &self.members {
            let (id, leads) = self.status(&m.endpoint).await?;
            if id == leads {
                leader = Some(m.endpoint.clone());
            } else if follower.is_none() {
                follower = Some(m.endpoint.clone());
            }
        }
        let found = if to == Members::Leader { leader } else { follower };
        found
            .map(|e| vec![e])
            .with_context(|| format!("{}: Status named no {to:?}", self.label))
    }

    /// Status of one member: (its ID, the leader it names).
    pub async fn status(&self, endpoint: &str) -> anyhow::Result<(u64, u64)> {
        let probe = async {
            let channel = crate::conns::dial(endpoint, self.tls.as_ref(), Duration::from_millis(500)).await?;
            let s = MaintenanceClient::new(channel)
                .status(StatusRequest {})
                .await?
                .into_inner();
            anyhow::Ok((s.header.map_or(0, |h| h.member_id), s.leader))
        };
        tokio::time::timeout(Duration::from_secs(2), probe)
            .await
            .context("Status timed out")?
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            for m in &mut self.members {
                if let Ok(Some(exit)) = m.child.try_wait() {
                    bail!("{} exited with {exit} during start-up; log:\n{}", m.name, tail(&m.log));
                }
            }
            let mut leaders = Vec::new();
            for m in &self.members {
                match self.status(&m.endpoint).await {
                    Ok((_, leader)) => leaders.push(leader),
                    Err(e) => last = format!("{}: {e:#}", m.name),
                }
            }
            if leaders.len() == self.members.len() && leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} cluster not ready within {timeout:?} (last: {last}); log of {}:\n{}",
            self.label,
            self.members[0].name,
            tail(&self.members[0].log)
        )
    }
}

impl Cluster {
    /// Sends SIGTERM to member `i` and waits up to `grace` for it to exit
    /// (then SIGKILLs it); its data dir stays for [`Cluster::respawn`].
    pub fn terminate(&mut self, i: usize, grace: Duration) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let ok = Command::new("kill")
            .args(["-TERM", &m.child.id().to_string()])
            .status()
            .context("run kill")?
            .success();
        anyhow::ensure!(ok, "kill -TERM {} ({}) failed", m.child.id(), m.name);
        let deadline = Instant::now() + grace;
        while m.child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                let _ = m.child.kill();
                bail!("{} did not exit within {grace:?} of SIGTERM", m.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts member `i` again with the flags and data dir it had, its
    /// output appended to its log. Does not wait for it to serve.
    pub fn respawn(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let log = File::options().append(true).open(&m.log)?;
        m.child = spawn(&m.binary, &m.args, log)?;
        Ok(())
    }
}

/// Starts `binary args` with its stdout and stderr in `log`.
fn spawn(binary: &Path, args: &[String], log: File) -> anyhow::Result<Child> {
    let mut cmd = Command::new(binary);
    // Both servers read ETCD_* variables as flags: none may leak in.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("ETCD")) {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawn {}", binary.display()))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
}

/// Whether a member of the cluster `label` of `size` under `dir` logged
/// that a port it was to listen on was taken (etcd: "bind: address already
/// in use"; timon: "Address already in use").
fn lost_a_port(label: &str, size: usize, dir: &Path) -> bool {
    (0..size).any(|i| {
        std::fs::read_to_string(dir.join(format!("{label}{}.log", i + 1)))
            .is_ok_and(|log| log.to_ascii_lowercase().contains("address already in use"))
    })
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
