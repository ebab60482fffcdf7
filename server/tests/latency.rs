//! Small answers are not held back by Nagle's algorithm: the member sets
//! TCP_NODELAY on every connection it accepts, as grpc-go does. Without it,
//! a release build under `timon-bench range` (100 clients over 10
//! connections) answered in ~44 ms at the median: the client's delayed ACK.
//!
//! Latency depends on timing, so the test watches the member's system calls
//! instead (strace, installed by scripts/setup): accepting a connection must
//! set TCP_NODELAY on it.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::start_timon;

#[test]
fn accepted_client_connections_get_tcp_nodelay() {
    let member = start_timon(None, &[]);
    let pid = member.pid().expect("running");
    let mut strace = Command::new("strace")
        .args(["-f", "-e", "trace=setsockopt", "-p", &pid.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace (scripts/setup installs it)");
    let (tx, rx) = mpsc::channel();
    let stderr = strace.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // strace reports each thread it attached to; then it sees everything.
    let attached = rx.recv_timeout(Duration::from_secs(10)).expect("strace attaches");
    assert!(attached.contains("attached"), "{attached}");
    while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}

    let addr = member.endpoint().trim_start_matches("http://").to_string();
    let _client = TcpStream::connect(&addr).unwrap();
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("TCP_NODELAY, [1]") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let _ = strace.kill();
    let _ = strace.wait();
    assert!(
        found,
        "accepting a connection set no TCP_NODELAY; strace saw: {seen:#?}"
    );
}
