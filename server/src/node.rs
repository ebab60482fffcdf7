//! Start-up, wiring and shutdown of one member: lock the data dir, open the
//! engine, start raft, bind the client listeners, serve until a signal.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use fs2::FileExt;
use timon_proto::etcdserverpb::cluster_server::ClusterServer;
use timon_proto::etcdserverpb::kv_server::KvServer;
use timon_proto::etcdserverpb::lease_server::LeaseServer;
use timon_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use timon_proto::etcdserverpb::watch_server::WatchServer;
use timon_proto::timonpb::peer_server::PeerServer;
use timon_proto::v3electionpb::election_server::ElectionServer;
use timon_proto::v3lockpb::lock_server::LockServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{parse_urls, Config};
use crate::raft::network::REMOVED_MESSAGE;
use crate::raft::service::PeerService;
use crate::raft::{Member, ProposeError, RaftNode, RaftSettings};
use crate::rpc::cluster::ClusterService;
use crate::rpc::election::ElectionService;
use crate::rpc::http::HttpEndpointsLayer;
use crate::rpc::kv::KvService;
use crate::rpc::lease::LeaseService;
use crate::rpc::limit::GrpcLimitLayer;
use crate::rpc::lock::LockService;
use crate::rpc::maintenance::MaintenanceService;
use crate::rpc::watch::WatchService;
use crate::rpc::{Ctx, Limits, ETCD_API_VERSION};
use crate::storage::rocks::RocksEngine;
use crate::storage::SharedEngine;
use crate::{identity, ids, metrics};

/// gRPC framing on top of --max-request-bytes, as etcd allows.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Holds the data dir's lock for the life of the member.
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the data dir if missing and takes its exclusive lock. Fails,
    /// writing nothing, when another process holds the lock.
    pub fn lock(path: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(path).with_context(|| format!("cannot create data dir {}", path.display()))?;
        let lock_path = path.join("lock");
        let lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        if lock.try_lock_exclusive().is_err() {
            bail!(
                "data dir {} is in use by another running member (lock {} is held)",
                path.display(),
                lock_path.display()
            );
        }
        if path.join("member/wal").exists() && !path.join("member/db").exists() {
            bail!(
                "data dir {} holds an etcd data dir (member/wal); timon cannot read etcd's on-disk format: \
                 restore an etcd snapshot instead",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("member").join("db")
    }

    /// Where raft snapshots are kept (etcd's layout has `member/snap` too).
    pub fn snap_path(&self) -> PathBuf {
        self.path.join("member").join("snap")
    }
}

fn resolve(flag: &'static str, list: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for url in parse_urls(flag, list)? {
        let host = url.host_str().unwrap_or("localhost");
        let port = url.port_or_known_default().unwrap_or(2379);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // As etcd (Go) does, "localhost" listens on the IPv4 loopback.
        let addrs: Vec<SocketAddr> = if host == "localhost" {
            vec![SocketAddr::from(([127, 0, 0, 1], port))]
        } else {
            (host, port)
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve {url}"))?
                .collect()
        };
        out.extend(addrs.into_iter().take(1));
    }
    Ok(out)
}

fn init_logging(cfg: &Config) {
    let level = match cfg.log_level.as_str() {
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIMON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if cfg.logger == "zap" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Runs a member until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    init_logging(&cfg);
    cfg.validate()?;
    for flag in cfg.ignored_flags() {
        tracing::warn!("{flag} is accepted for etcd compatibility but not acted on yet");
    }

    let members = cfg.initial_members()?;
    let data_dir = DataDir::lock(&cfg.data_dir())?;
    let fresh = !data_dir.db_path().exists();
    // A new member of an existing cluster waits for the leader to replicate
    // to it instead of initializing a cluster of its own.
    let join = fresh && cfg.initial_cluster_state == "existing";
    let client_addrs = resolve("listen-client-urls", &cfg.listen_client_urls)?;
    let peer_addrs = resolve("listen-peer-urls", &cfg.listen_peer_urls)?;
    // Bind the peer listeners first, so a taken port fails start-up.
    let mut peer_listeners = Vec::new();
    for addr in &peer_addrs {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        peer_listeners.push(l);
    }

    fs::create_dir_all(data_dir.db_path().parent().unwrap_or(Path::new(".")))?;
    let engine: SharedEngine = Arc::new(
        RocksEngine::open(&data_dir.db_path())
            .with_context(|| format!("cannot open {}", data_dir.db_path().display()))?,
    );

    let advertise_client: Vec<String> = parse_urls("advertise-client-urls", &cfg.advertise_client_urls)?
        .iter()
        .map(|u| u.to_string().trim_end_matches('/').to_string())
        .collect();
    let identity = identity::resolve(&engine, &cfg.name, &members, &cfg.initial_cluster_token, join).await?;
    let (member_id, cluster_id) = (identity.member_id, identity.cluster_id);
    // The membership a new cluster starts with (unused when joining).
    let mut initial = BTreeMap::new();
    for m in &members {
        let id = ids::member_id(&m.peer_urls, &cfg.initial_cluster_token);
        let client_urls = if m.name == cfg.name {
            advertise_client.clone()
        } else {
            vec![]
        };
        initial.insert(
            id,
            Member {
                name: m.name.clone(),
                peer_urls: m.peer_urls.clone(),
                client_urls,
            },
        );
    }

    let settings = RaftSettings {
        heartbeat_ms: cfg.heartbeat_interval,
        election_ms: cfg.election_timeout,
        snapshot_count: cfg.snapshot_count,
        snapshot_dir: data_dir.snap_path(),
        lease_checkpoint_interval: cfg.lease_checkpoint_interval()?,
    };
    let raft = Arc::new(RaftNode::start(member_id, engine.clone(), initial, join, &settings).await?);
    raft.start_lease_expiry();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for listener in peer_listeners {
        let local = listener.local_addr()?;
        let peer = PeerServer::new(PeerService::new(raft.clone(), cluster_id))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let router = tonic::transport::Server::builder().add_service(peer);
        servers.push(spawn_server("peer", local, stop_rx.clone(), move |signal| {
            router.serve_with_incoming_shutdown(incoming(listener), signal)
        }));
        tracing::info!("listening for peers on {local}");
    }
    let ctx = Arc::new(Ctx {
        raft: raft.clone(),
        engine,
        cluster_id,
        member_id,
        limits: Limits {
            max_request_bytes: cfg.max_request_bytes,
            max_txn_ops: cfg.max_txn_ops,
            quota_backend_bytes: cfg.quota_backend_bytes,
        },
    });

    // Bind every listener before announcing anything, so a taken port fails start-up.
    let mut listeners = Vec::new();
    for addr in &client_addrs {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        listeners.push(l);
    }

    // Like etcd, publish this member's name and client URLs through raft
    // before serving; a member without quorum keeps trying in the background.
    let publish = {
        let (raft, name, urls) = (raft.clone(), cfg.name.clone(), advertise_client.clone());
        tokio::spawn(async move {
            loop {
                match raft.publish(&name, &urls).await {
                    Ok(()) => {
                        tracing::info!(
                            "published {{Name:{name} ClientURLs:[{}]}} to cluster {cluster_id:x}",
                            urls.join(" ")
                        );
                        return;
                    }
                    Err(ProposeError::Stopped) => return,
                    Err(e) => {
                        tracing::warn!("cannot publish member attributes yet: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    };
    let publish_wait = Duration::from_millis(cfg.election_timeout * 10);
    if tokio::time::timeout(publish_wait, publish).await.is_err() {
        tracing::warn!("not published within {publish_wait:?}: no quorum yet; serving anyway");
    }
    tracing::info!("enabled capabilities for version {}", &ETCD_API_VERSION[..3]);

    let max_decode = cfg.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let progress_interval = cfg.progress_notify_interval()?;
    for listener in listeners {
        let local = listener.local_addr()?;
        let router = tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(HttpEndpointsLayer::new(ctx.clone()))
            .layer(GrpcLimitLayer)
            .add_service(KvServer::new(KvService::new(ctx.clone())).max_decoding_message_size(max_decode))
            .add_service(LeaseServer::new(LeaseService::new(ctx.clone())).max_decoding_message_size(max_decode))
            .add_service(ClusterServer::new(ClusterService::new(ctx.clone())).max_decoding_message_size(max_decode))
            .add_service(
                WatchServer::new(WatchService::new(ctx.clone(), progress_interval))
                    .max_decoding_message_size(max_decode),
            )
            .add_service(
                MaintenanceServer::new(MaintenanceService::new(ctx.clone())).max_decoding_message_size(max_decode),
            )
            .add_service(LockServer::new(LockService::new(ctx.clone())).max_decoding_message_size(max_decode))
            .add_service(ElectionServer::new(ElectionService::new(ctx.clone())).max_decoding_message_size(max_decode));
        servers.push(spawn_server("client", local, stop_rx.clone(), move |signal| {
            router.serve_with_incoming_shutdown(incoming(listener), signal)
        }));
        tracing::info!("ready to serve client requests on {local}");
    }
    tracing::info!("ready to serve client requests");
    if let Some(urls) = &cfg.listen_metrics_urls {
        for addr in resolve("listen-metrics-urls", urls)? {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!("serving metrics on {}", l.local_addr()?);
            servers.push(tokio::spawn(metrics::serve(l, ctx.clone(), stop_rx.clone())));
        }
    }

    let mut removed = raft.removed();
    tokio::select! {
        _ = shutdown => tracing::info!("received shutdown signal; stopping"),
        _ = removed.wait_for(|r| *r) => {
            // As etcd does, a removed member stops serving.
            tracing::warn!("{}; the data-dir used by this member must be removed", REMOVED_MESSAGE);
        }
    }
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    raft.shutdown().await;
    drop(ctx);
    Ok(())
}

/// Runs one listener's server until `stop` turns true; `serve` gets the
/// shutdown signal to pass to tonic.
fn spawn_server<F, Fut>(
    what: &'static str,
    local: SocketAddr,
    mut stop: watch::Receiver<bool>,
    serve: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let signal = Box::pin(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    let server = serve(signal);
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("{what} listener {local}: {e}");
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Accepted connections with TCP_NODELAY, as grpc-go sets it: without it a
/// small answer waits for the client's delayed ACK (~40 ms on Linux) and
/// every request on a busy connection pays for it.
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
