//! A TCP proxy in front of one member's peer port, controllable at run time
//! per *source* member: pass, drop (cut existing connections and close new
//! ones at once), or delay every chunk by some milliseconds, fixed or drawn
//! per chunk from a range (jitter; bytes still arrive in order).
//!
//! # Addressing and partitions
//!
//! etcd and timon derive member IDs from the peer URLs in `--initial-cluster`
//! (`sha1(sorted peer URLs + cluster token)`), so every member must be given
//! the *same* `--initial-cluster`: one URL per member, not one per
//! (source, target) pair. The harness therefore runs **one proxy per target
//! member**: member B listens on a private peer port and advertises the
//! proxy's address (`--initial-advertise-peer-urls`, and B's entry in
//! everyone's `--initial-cluster`), so every connection any member opens to
//! B goes through B's proxy.
//!
//! The proxy tells the *source* of a connection by asking the kernel who owns
//! the other end: the accepted connection's remote address is the client
//! socket's local address; `/proc/net/tcp` maps it to a socket inode, and the
//! member whose `/proc/<pid>/fd` holds that inode is the source
//! ([`super::source`]). A link rule is then kept per (source → this target):
//! cutting A→B and B→A on both proxies isolates A from B. A connection whose
//! source cannot be identified follows the `fallback` rule.
//!
//! Direction: a rule on (A → B) acts on connections *A opened to B* — both
//! byte directions of those connections. A "one-way" cut (A→B dropped, B→A
//! passing) therefore means "A cannot reach B's listener", which is the
//! meaningful unit for both servers' transports (gRPC channels for timon,
//! rafthttp streams/pipelines for etcd).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

/// What happens to connections of one (source → target) link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow untouched.
    Pass,
    /// Existing connections are cut; new ones are closed as soon as accepted.
    Drop,
    /// Every chunk is held this long before it is forwarded (both directions).
    Delay(Duration),
    /// Every chunk is held a time drawn uniformly from `[min, max]`; a chunk
    /// never overtakes the one before it, so jitter keeps the byte order.
    Jitter(Duration, Duration),
}

/// Tells which member (index) opened a connection, from the accepted
/// connection's (remote, local) addresses; `None` when unknown.
pub type Identify = Arc<dyn Fn(SocketAddr, SocketAddr) -> Option<usize> + Send + Sync>;

struct Conn {
    source: Option<usize>,
    abort: AbortHandle,
}

#[derive(Default)]
struct Rules {
    by_source: HashMap<usize, Link>,
    fallback: Option<Link>,
}

impl Rules {
    fn link(&self, source: Option<usize>) -> Link {
        source
            .and_then(|s| self.by_source.get(&s).copied())
            .or(self.fallback)
            .unwrap_or(Link::Pass)
    }
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    rules: Mutex<Rules>,
    conns: Mutex<Vec<Conn>>,
    identify: Identify,
}

/// A running proxy; stops accepting and cuts all its connections when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` (port 0: any free port) and forwards to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr, identify: Identify) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            rules: Mutex::new(Rules::default()),
            conns: Mutex::new(Vec::new()),
            identify,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy { addr, shared, accept })
    }

    /// The address members dial (the advertised peer address).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the rule for connections opened by `source`; a `Drop` cuts that
    /// source's open connections at once.
    pub fn set(&self, source: usize, link: Link) {
        lock(&self.shared.rules).by_source.insert(source, link);
        if link == Link::Drop {
            self.cut(|s| s == Some(source));
        }
    }

    /// Sets the rule for connections whose source is unknown.
    pub fn set_fallback(&self, link: Link) {
        lock(&self.shared.rules).fallback = Some(link);
        if link == Link::Drop {
            self.cut(|s| s.is_none());
        }
    }

    /// Every link passes again (open connections are kept).
    pub fn heal(&self) {
        *lock(&self.shared.rules) = Rules::default();
    }

    /// The rule currently applied to `source`.
    pub fn link(&self, source: Option<usize>) -> Link {
        lock(&self.shared.rules).link(source)
    }

    /// Number of connections currently forwarded.
    pub fn open_connections(&self) -> usize {
        let mut conns = lock(&self.shared.conns);
        conns.retain(|c| !c.abort.is_finished());
        conns.len()
    }

    fn cut(&self, which: impl Fn(Option<usize>) -> bool) {
        let mut conns = lock(&self.shared.conns);
        conns.retain(|c| {
            if which(c.source) {
                c.abort.abort();
                false
            } else {
                !c.abort.is_finished()
            }
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(|_| true);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((inbound, remote)) = listener.accept().await else {
            continue;
        };
        let shared2 = shared.clone();
        let task = tokio::spawn(async move {
            let local = inbound.local_addr().ok();
            let identify = shared2.identify.clone();
            let source = match local {
                Some(local) => tokio::task::spawn_blocking(move || identify(remote, local))
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            (source, inbound)
        });
        // Identification is quick (a few /proc reads); do it off the accept
        // loop anyway, then register the connection so a cut can find it.
        let shared3 = shared.clone();
        tokio::spawn(async move {
            let Ok((source, inbound)) = task.await else { return };
            if lock(&shared3.rules).link(source) == Link::Drop {
                drop(inbound);
                return;
            }
            let upstream = *lock(&shared3.upstream);
            let shared4 = shared3.clone();
            let handle = tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                forward(inbound, outbound, source, shared4).await;
            });
            lock(&shared3.conns).push(Conn {
                source,
                abort: handle.abort_handle(),
            });
            // The rule may have turned to Drop while we registered.
            if lock(&shared3.rules).link(source) == Link::Drop {
                handle.abort();
            }
        });
    }
}

/// Pumps both directions until either side closes.
async fn forward(inbound: TcpStream, outbound: TcpStream, source: Option<usize>, shared: Arc<Shared>) {
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    let up = pump(in_r, out_w, source, shared.clone());
    let down = pump(out_r, in_w, source, shared);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Copies one direction. Reads are stamped with the link's delay at arrival
/// and written once it has passed, so a delay does not cut throughput.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    source: Option<usize>,
    shared: Arc<Shared>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let due = match lock(&shared.rules).link(source) {
                Link::Delay(d) => Instant::now() + d,
                Link::Jitter(min, max) => Instant::now() + rand::Rng::gen_range(&mut rand::thread_rng(), min..=max),
                _ => Instant::now(),
            };
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// Identifies this test process as source 0 through /proc, as the
    /// cluster does for member processes.
    fn identify_self() -> Identify {
        let me = std::process::id();
        Arc::new(move |remote, local| {
            let inode = super::super::source::socket_inode(remote, local)?;
            super::super::source::owner(inode, &[me]).map(|_| 0)
        })
    }

    async fn proxy() -> Proxy {
        let echo = echo_server().await;
        Proxy::start("127.0.0.1:0".parse().unwrap(), echo, identify_self())
            .await
            .unwrap()
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await?;
        Ok(got)
    }

    async fn wait_connections(p: &Proxy, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.open_connections() != n {
            assert!(Instant::now() < deadline, "expected {n} connections");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn passes_bytes_both_ways() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"hello").await.unwrap(), b"hello");
        assert_eq!(p.link(Some(0)), Link::Pass);
    }

    #[tokio::test]
    async fn drop_cuts_open_connections_of_that_source_and_refuses_new_ones() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"x").await.unwrap();
        wait_connections(&p, 1).await;
        p.set(0, Link::Drop);
        // The open connection is cut: reading ends (EOF or reset).
        let mut buf = [0u8; 1];
        let _ = s.write_all(b"y").await;
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "connection not cut: {r:?}");
        // New connections from the same source are closed at once.
        let mut s2 = TcpStream::connect(p.addr()).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), roundtrip(&mut s2, b"z"))
            .await
            .unwrap();
        assert!(r.is_err(), "new connection passed while dropped");
        // Healing lets new connections through again.
        p.heal();
        let mut s3 = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s3, b"ok").await.unwrap(), b"ok");
    }

    #[tokio::test]
    async fn drop_of_another_source_leaves_this_one_alone() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"a").await.unwrap();
        p.set(1, Link::Drop);
        assert_eq!(roundtrip(&mut s, b"b").await.unwrap(), b"b");
    }

    #[tokio::test]
    async fn delay_holds_each_chunk() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"warm").await.unwrap();
        let delay = Duration::from_millis(500);
        p.set(0, Link::Delay(delay));
        let t = Instant::now();
        roundtrip(&mut s, b"slow").await.unwrap();
        // Delayed on the way there and on the way back (a lower bound, on
        // the monotonic clock the proxy's delays use too).
        let slow = t.elapsed();
        assert!(slow >= 2 * delay, "{slow:?}");
        p.heal();
        let t = Instant::now();
        roundtrip(&mut s, b"fast").await.unwrap();
        let fast = t.elapsed();
        println!("round trip delayed {delay:?} each way: {slow:?}; healed: {fast:?}");
        // Healed: not delayed. The bound is the least a still-delayed link
        // takes (a loopback round trip takes well under a millisecond; the
        // delay is long enough that a loaded machine is never near it).
        assert!(fast < 2 * delay, "healed round trip took {fast:?}");
    }

    #[tokio::test]
    async fn jitter_holds_each_chunk_within_its_range() {
        let p = proxy().await;
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"warm").await.unwrap();
        p.set(0, Link::Jitter(Duration::from_millis(100), Duration::from_millis(150)));
        let t = Instant::now();
        roundtrip(&mut s, b"slow").await.unwrap();
        let rtt = t.elapsed();
        println!("round trip with 100-150 ms jitter each way: {rtt:?}");
        // Delayed on the way there and on the way back.
        assert!(rtt >= Duration::from_millis(200), "{rtt:?}");
        // Generous upper bound: 5 times two draws of at most 150 ms (the
        // rest is scheduling, more of it on a loaded machine).
        assert!(rtt < 5 * Duration::from_millis(2 * 150), "{rtt:?}");
    }
}
