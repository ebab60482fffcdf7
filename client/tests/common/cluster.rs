//! A multi-member cluster for the failover and `member` tests: every member
//! on free loopback ports with its data in one temporary directory, started
//! with `--initial-cluster-state new`, awaited until each member's Status
//! names a leader, and killed (SIGKILL) when dropped.
//!
//! The server is real etcd by default. `TIMON_CLUSTER_SERVER=/path/to/bin`
//! runs the same tests against any binary taking etcd's flags (the `timon`
//! binary, once it forms clusters).
//!
//! Members can be killed one by one ([`Cluster::kill`]) and new ones joined
//! to the running cluster ([`Cluster::join`]) after a `member add`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use timon_client::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_client::proto::etcdserverpb::{StatusRequest, StatusResponse};
use tonic::transport::Channel;

use super::{free_port, port_taken, ETCD, START_ATTEMPTS};

/// How long a member may take to start and see a leader: 60 election
/// timeouts (etcd's and timon's default `--election-timeout` is 1 s).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The server binary: `$TIMON_CLUSTER_SERVER` or etcd.
pub fn server_binary() -> PathBuf {
    std::env::var_os("TIMON_CLUSTER_SERVER").map_or_else(|| PathBuf::from(ETCD), PathBuf::from)
}

/// One member process.
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    /// `127.0.0.1:PORT` of the client listener, as etcdctl takes it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:PORT`, as the member list shows it.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// True if the process exited because a port it was given was taken.
    fn lost_a_port(&mut self) -> bool {
        let exited = self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        exited && port_taken(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

/// Ports for a member that is not started yet (a future `member add`).
pub fn free_ports() -> (u16, u16) {
    let client = free_port();
    let mut peer = free_port();
    while peer == client {
        peer = free_port();
    }
    (client, peer)
}

impl Cluster {
    /// Starts `size` members named `m0`, `m1`, ... and waits until every
    /// one of them reports a leader. If a member lost one of its ports
    /// before binding it, the whole cluster starts again on fresh ports.
    pub fn start(size: usize) -> Cluster {
        let started = Instant::now();
        for attempt in 1..=START_ATTEMPTS {
            let mut cluster = Cluster::spawn_new(size);
            let failure = (0..size).find_map(|index| cluster.try_wait_ready(index).err());
            let Some(failure) = failure else {
                eprintln!(
                    "{size}-member cluster ready {:?} after the first spawn (attempt {attempt})",
                    started.elapsed()
                );
                return cluster;
            };
            if attempt == START_ATTEMPTS || !cluster.nodes.iter_mut().any(Node::lost_a_port) {
                panic!("{failure}");
            }
            eprintln!(
                "a member lost a port before binding it; starting the cluster again on fresh \
                 ports (attempt {attempt} of {START_ATTEMPTS})"
            );
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Spawns the members of a new cluster on fresh ports; does not wait.
    fn spawn_new(size: usize) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("timon-cluster-")
            .tempdir()
            .expect("temp dir");
        let mut ports: Vec<(u16, u16)> = Vec::new();
        while ports.len() < size {
            let (client, peer) = free_ports();
            if !ports
                .iter()
                .any(|(c, p)| [*c, *p].iter().any(|x| *x == client || *x == peer))
            {
                ports.push((client, peer));
            }
        }
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let initial = initial.join(",");
        let mut cluster = Cluster { nodes: Vec::new(), dir };
        for (i, (client, peer)) in ports.into_iter().enumerate() {
            let node = cluster.spawn(&format!("m{i}"), client, peer, &initial, "new");
            cluster.nodes.push(node);
        }
        cluster
    }

    /// Starts a member added with `member add` (name, ports and the
    /// `ETCD_INITIAL_CLUSTER` value it printed) and waits until it has
    /// caught up enough to name a leader. Returns its index.
    pub fn join(&mut self, name: &str, (client, peer): (u16, u16), initial_cluster: &str) -> usize {
        let node = self.spawn(name, client, peer, initial_cluster, "existing");
        self.nodes.push(node);
        let index = self.nodes.len() - 1;
        self.wait_ready(index);
        index
    }

    /// Client endpoints (`127.0.0.1:PORT`) of the members still running.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(Node::endpoint)
            .collect()
    }

    /// SIGKILLs member `index` and reaps it.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// The index of the member that every running member names as leader,
    /// waiting (bounded) until they agree.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let statuses: Vec<Option<StatusResponse>> = self
                .nodes
                .iter()
                .map(|n| if n.child.is_some() { status(&n.endpoint()) } else { None })
                .collect();
            let ids: Vec<u64> = statuses
                .iter()
                .map(|s| s.as_ref().and_then(|s| s.header.as_ref()).map_or(0, |h| h.member_id))
                .collect();
            let leaders: Vec<u64> = statuses.iter().flatten().map(|s| s.leader).collect();
            if let Some(&leader) = leaders.first() {
                if leader != 0 && leaders.iter().all(|&l| l == leader) {
                    if let Some(index) = ids.iter().position(|&id| id == leader) {
                        return index;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "members never agreed on a leader: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The member id of member `index` (from its Status).
    pub fn member_id(&self, index: usize) -> u64 {
        status(&self.nodes[index].endpoint())
            .and_then(|s| s.header)
            .map(|h| h.member_id)
            .unwrap_or_else(|| panic!("member {index} did not answer Status"))
    }

    fn spawn(&self, name: &str, client: u16, peer: u16, initial_cluster: &str, state: &str) -> Node {
        let binary = server_binary();
        let log = self.dir.path().join(format!("{name}.log"));
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new(&binary);
        // Both etcd and timon read ETCD_* variables as flags: none may leak
        // in from the test's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("ETCD")) {
                command.env_remove(key);
            }
        }
        let child = command
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", self.dir.path().join(name).display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg(format!("--initial-cluster-state={state}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        Node {
            name: name.to_owned(),
            client_port: client,
            peer_port: peer,
            child: Some(child),
            log,
        }
    }

    /// Polls member `index` until its Status names a leader; fails fast if
    /// the process exits.
    fn wait_ready(&mut self, index: usize) {
        if let Err(e) = self.try_wait_ready(index) {
            panic!("{e}");
        }
    }

    /// [`Cluster::wait_ready`] answering why the member is not ready.
    fn try_wait_ready(&mut self, index: usize) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let endpoint = self.nodes[index].endpoint();
        loop {
            let ready = status(&endpoint).is_some_and(|s| s.leader != 0);
            let node = &mut self.nodes[index];
            // Checked after the probe too: an answer from a process that
            // exited meanwhile came from another server on its port.
            if !node.is_running() {
                return Err(format!(
                    "{} exited before it was ready; log:\n{}",
                    node.name,
                    node.log_tail()
                ));
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not ready within {READY_TIMEOUT:?}; log:\n{}",
                    node.name,
                    node.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// One Status RPC to `endpoint`, or `None` if it does not answer within a
/// second. Runs on its own thread and runtime so that sync and async tests
/// can both call it.
pub fn status(endpoint: &str) -> Option<StatusResponse> {
    let uri = format!("http://{endpoint}");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async move {
            let call = async {
                let channel = Channel::from_shared(uri).ok()?.connect().await.ok()?;
                let response = MaintenanceClient::new(channel).status(StatusRequest {}).await.ok()?;
                Some(response.into_inner())
            };
            tokio::time::timeout(Duration::from_secs(1), call).await.ok().flatten()
        })
    })
    .join()
    .ok()
    .flatten()
}
