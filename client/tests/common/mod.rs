//! A real etcd for the integration tests: started on free loopback ports
//! with a temporary data dir, awaited by polling its `/health` endpoint, and
//! killed when dropped.
//!
//! Tests skip (with a message) when `/usr/bin/etcd` is missing, unless the
//! `CI` variable is set: CI must never pass by skipping.
//!
//! Submodules: `cluster` (multi-member clusters), `ctl` (running etcdctl
//! and timonctl for comparisons).

#![allow(dead_code)]

pub mod cluster;
pub mod ctl;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ETCD: &str = "/usr/bin/etcd";
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// True when the real etcd binaries are installed. Without them a test is
/// skipped locally and fails under CI.
pub fn etcd_available() -> bool {
    if Path::new(ETCD).exists() && Path::new(ETCDCTL).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{ETCD} or {ETCDCTL} is missing, and CI is set: the etcd comparison tests cannot run");
    }
    eprintln!("skipping: {ETCD} or {ETCDCTL} is not installed");
    false
}

pub struct Etcd {
    child: Child,
    /// `127.0.0.1:PORT` of the client listener.
    pub endpoint: String,
    dir: tempfile::TempDir,
}

/// A port that was free a moment ago. Another process may take it before
/// the server binds it: the starts retry on fresh ports ([`START_ATTEMPTS`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// How many times a server start is tried on fresh ports when a port picked
/// by [`free_port`] was taken before the server bound it.
pub const START_ATTEMPTS: usize = 5;

/// Whether a server's log says a port it was to listen on was taken (etcd:
/// "bind: address already in use"; timon: "Address already in use").
pub fn port_taken(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

impl Etcd {
    /// Starts a single-member etcd. Every instance advertises the same
    /// (unused) peer URL under the same name, so cluster and member ids are
    /// identical across instances and outputs can be compared byte for byte.
    pub fn start() -> Etcd {
        for attempt in 1..=START_ATTEMPTS {
            let mut etcd = Etcd::spawn();
            // 30 election timeouts (etcd's default is 1 s) for a single
            // member to elect itself on a loaded machine.
            match etcd.wait_healthy(Duration::from_secs(30)) {
                Ok(()) => return etcd,
                Err(_) if attempt < START_ATTEMPTS && etcd.lost_a_port() => eprintln!(
                    "etcd lost a port before binding it; starting it again on fresh ports \
                     (attempt {attempt} of {START_ATTEMPTS})"
                ),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn() -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let client_port = free_port();
        let mut peer_port = free_port();
        while peer_port == client_port {
            peer_port = free_port();
        }
        let endpoint = format!("127.0.0.1:{client_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
        let child = Command::new(ETCD)
            .arg("--name=timon-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls=http://{endpoint}"))
            .arg(format!("--advertise-client-urls=http://{endpoint}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg("--initial-advertise-peer-urls=http://127.0.0.1:9")
            .arg("--initial-cluster=timon-test=http://127.0.0.1:9")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        Etcd { child, endpoint, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// True if etcd exited because a port it was given was taken.
    fn lost_a_port(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_))) && port_taken(&self.log())
    }

    /// Polls `/health` until etcd is healthy; fails fast if it exits.
    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "etcd exited with {status} before it was healthy; log:\n{}",
                    self.log()
                ));
            }
            if self.healthy() {
                // A process that exited meanwhile lost its port to whatever
                // answered.
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("etcd exited with {status}; log:\n{}", self.log()));
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "etcd at {} not healthy after {timeout:?}; log:\n{}",
            self.endpoint,
            self.log()
        ))
    }

    /// etcd's `/health` answers `"health":"true"` once it has a leader and
    /// can serve requests.
    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.endpoint) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.endpoint
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.contains("\"health\":\"true\"")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
