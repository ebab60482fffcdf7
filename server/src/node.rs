//! Start-up, wiring and shutdown of one member: lock the data dir, open the
//! engine, load TLS, start raft, bind the listeners, serve until a signal.

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
use timon_proto::etcdserverpb::auth_server::AuthServer;
use timon_proto::etcdserverpb::cluster_server::ClusterServer;
use timon_proto::etcdserverpb::kv_server::KvServer;
use timon_proto::etcdserverpb::lease_server::LeaseServer;
use timon_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use timon_proto::timonpb::peer_server::PeerServer;
use timon_proto::v3electionpb::election_server::ElectionServer;
use timon_proto::v3lockpb::lock_server::LockServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Tokens;
use crate::config::urls::is_tls;
use crate::config::{parse_urls, Config, InitialMember};
use crate::raft::network::{PeerDialer, REMOVED_MESSAGE};
use crate::raft::service::PeerService;
use crate::raft::{Member, ProposeError, RaftNode, RaftSettings};
use crate::rpc::auth::AuthService;
use crate::rpc::cluster::ClusterService;
use crate::rpc::election::ElectionService;
use crate::rpc::http::HttpEndpointsLayer;
use crate::rpc::kv::KvService;
use crate::rpc::lease::LeaseService;
use crate::rpc::limit::GrpcLimitLayer;
use crate::rpc::lock::LockService;
use crate::rpc::maintenance::MaintenanceService;
use crate::rpc::watch::WatchService;
use crate::rpc::watch_route::WatchRoute;
use crate::rpc::{Ctx, Limits, ETCD_API_VERSION};
use crate::storage::rocks::RocksEngine;
use crate::storage::{self, SharedEngine};
use crate::tls::{self, Acceptor, Conn, Serve, Socket, TlsInfo};
use crate::{identity, ids, metrics, version};

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

    /// Makes the directories of the layout (`member/`, `member/snap`; the
    /// engine made `member/db`) and fsyncs the directories holding their
    /// entries, so a power loss cannot take the database away with the entry
    /// that names it: RocksDB and the snapshot store fsync what is inside
    /// their own directories, never the entry naming them. The data dir's
    /// own entry in its parent is synced too, when the parent can be opened.
    pub fn sync_layout(&self) -> anyhow::Result<()> {
        fs::create_dir_all(self.snap_path())?;
        if crate::planted::active("skip-dir-fsync") {
            return Ok(());
        }
        for dir in [self.path.join("member"), self.path.clone()] {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot fsync {}", dir.display()))?;
        }
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

/// One listen address: its socket, and how its connections are served
/// (TLS for `https`/`unixs` URLs, plain for `http`/`unix`, both when URLs
/// of both kinds name the same address, as etcd allows).
struct Listener {
    socket: Socket,
    serve: Serve,
}

impl Listener {
    fn describe(&self) -> String {
        self.socket.describe()
    }

    fn incoming(self) -> impl futures::Stream<Item = std::io::Result<Conn>> + Send {
        tls::incoming(self.socket, self.serve)
    }
}

/// Where a URL listens: a TCP address, or a unix socket path (etcd's
/// `unix://host:port` names the file `host:port`).
#[derive(PartialEq, Eq)]
enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn address(url: &url::Url) -> anyhow::Result<Address> {
    if matches!(url.scheme(), "unix" | "unixs") {
        let text = url.as_str().split_once("://").map_or("", |(_, rest)| rest);
        return Ok(Address::Unix(PathBuf::from(text.trim_end_matches('/'))));
    }
    let host = url.host_str().unwrap_or("localhost");
    let port = url.port_or_known_default().unwrap_or(2379);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // As etcd (Go) does, "localhost" listens on the IPv4 loopback.
    if host == "localhost" {
        return Ok(Address::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {url}"))?
        .next()
        .map(Address::Tcp)
        .with_context(|| format!("{url} resolves to no address"))
}

/// Binds every address of a URL list, so a taken port fails start-up. A
/// TLS URL is served with `tls` (config validation made sure there is
/// one); a plain URL of a side with certificates ignores them, as etcd does.
async fn bind(flag: &'static str, list: &str, tls: Option<&Arc<Acceptor>>) -> anyhow::Result<Vec<Listener>> {
    let mut wanted: Vec<(Address, Serve)> = Vec::new();
    for url in parse_urls(flag, list)? {
        let addr = address(&url)?;
        let secure = is_tls(&url);
        if secure && tls.is_none() {
            bail!("{url}: no TLS certificate for this side");
        }
        if !secure && tls.is_some() {
            tracing::warn!(url = %url, "scheme is HTTP while key and cert files are present; ignoring key and cert files");
        }
        let serve = match wanted.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, serve)) => serve,
            None => {
                wanted.push((
                    addr,
                    Serve {
                        tls: None,
                        plain: false,
                    },
                ));
                &mut wanted.last_mut().expect("just pushed").1
            }
        };
        if secure {
            serve.tls = tls.cloned();
        } else {
            serve.plain = true;
        }
    }
    let mut out = Vec::new();
    for (addr, serve) in wanted {
        let socket = match addr {
            Address::Tcp(addr) => Socket::Tcp(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            ),
            Address::Unix(path) => {
                // etcd removes a stale socket file first.
                let _ = fs::remove_file(&path);
                let l = tokio::net::UnixListener::bind(&path)
                    .with_context(|| format!("cannot listen on unix socket {}", path.display()))?;
                Socket::Unix(l, path)
            }
        };
        out.push(Listener { socket, serve });
    }
    Ok(out)
}

/// The TLS of both sides: what the client and peer listeners serve, and
/// how this member dials its peers.
struct Tls {
    client: Option<Arc<Acceptor>>,
    peer: Option<Arc<Acceptor>>,
    peer_dialer: PeerDialer,
}

impl Tls {
    /// Reads every certificate and key now, so a bad file fails start-up
    /// with its name. Auto-TLS writes its certificates under the data dir.
    fn load(cfg: &Config, data_dir: &Path) -> anyhow::Result<Tls> {
        let hosts = |list: &str| -> anyhow::Result<Vec<String>> {
            Ok(parse_urls("listen-urls", list)?
                .iter()
                .filter_map(|u| u.host_str().map(str::to_owned))
                .collect())
        };
        let years = cfg.tls.self_signed_cert_validity;
        let mut client = cfg.client_tls.info(&cfg.tls);
        if client.is_none() && cfg.client_tls.auto_tls == Some(true) {
            let dir = data_dir.join("fixtures").join("client");
            let mut info = tls::auto::self_cert(&dir, &hosts(&cfg.member.listen_client_urls)?, years)?;
            info.cipher_suites = cfg.tls.cipher_suites.clone();
            client = Some(info);
        }
        let mut peer = cfg.peer_tls.info(&cfg.tls);
        if peer.is_none() && cfg.peer_tls.peer_auto_tls == Some(true) {
            let dir = data_dir.join("fixtures").join("peer");
            let mut info = tls::auto::self_cert(&dir, &hosts(&cfg.member.listen_peer_urls)?, years)?;
            info.cipher_suites = cfg.tls.cipher_suites.clone();
            peer = Some(info);
        }
        let uses_tls = |list: &str| parse_urls("listen-urls", list).map(|urls| urls.iter().any(is_tls));
        let metrics_tls = match &cfg.logging.listen_metrics_urls {
            Some(list) => uses_tls(list)?,
            None => false,
        };
        let acceptor = |info: &Option<TlsInfo>, needed: bool| -> anyhow::Result<Option<Arc<Acceptor>>> {
            match info {
                Some(info) if needed => Ok(Some(Arc::new(Acceptor::new(info.clone())?))),
                _ => Ok(None),
            }
        };
        let peer_dialer = match &peer {
            Some(info) => PeerDialer::new(Some(info.client_tls().config()?)),
            None => PeerDialer::default(),
        };
        Ok(Tls {
            client: acceptor(&client, uses_tls(&cfg.member.listen_client_urls)? || metrics_tls)?,
            peer: acceptor(&peer, uses_tls(&cfg.member.listen_peer_urls)?)?,
            peer_dialer,
        })
    }
}

/// Runs a member until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    crate::logs::init(&cfg.logging)?;
    cfg.validate()?;
    tracing::info!(
        { "etcd-version" = ETCD_API_VERSION,
        "timon-version" = version::TIMON_VERSION,
        "git-sha" = version::GIT_SHA,
        "rust-version" = version::RUST_VERSION,
        name = %cfg.member.name,
        "data-dir" = %cfg.data_dir().display(),
        "listen-client-urls" = %cfg.member.listen_client_urls,
        "listen-peer-urls" = %cfg.member.listen_peer_urls,
        "advertise-client-urls" = %cfg.cluster.advertise_client_urls,
        "initial-cluster-state" = %cfg.cluster.initial_cluster_state },
        "starting an etcd server"
    );
    for flag in cfg.ignored_flags() {
        tracing::warn!("{flag} is accepted for etcd compatibility but not acted on");
    }

    let members = cfg.initial_members()?;
    let data_dir = DataDir::lock(&cfg.data_dir())?;
    // Before anything in the data dir is written: a newer timon's data dir
    // is refused unchanged.
    storage::format::check(&data_dir.path, &data_dir.db_path())?;
    let tls = Tls::load(&cfg, &data_dir.path)?;
    crate::rpc::snapshot::remove_stale_files(&data_dir.path.join("member"));
    let fresh = !data_dir.db_path().exists();
    // A new member of an existing cluster waits for the leader to replicate
    // to it instead of initializing a cluster of its own.
    let join = fresh && cfg.cluster.initial_cluster_state == "existing";
    // Bind the peer listeners first, so a taken port fails start-up.
    let peer_listeners = bind("listen-peer-urls", &cfg.member.listen_peer_urls, tls.peer.as_ref()).await?;

    fs::create_dir_all(data_dir.db_path().parent().unwrap_or(Path::new(".")))?;
    let engine: SharedEngine = Arc::new(
        RocksEngine::open(&data_dir.db_path())
            .with_context(|| format!("cannot open {}", data_dir.db_path().display()))?,
    );
    storage::format::stamp(engine.as_ref())?;
    data_dir.sync_layout()?;

    let advertise_client: Vec<String> = parse_urls("advertise-client-urls", &cfg.cluster.advertise_client_urls)?
        .iter()
        .map(|u| u.to_string().trim_end_matches('/').to_string())
        .collect();
    let token = &cfg.cluster.initial_cluster_token;
    let identity = identity::resolve(&engine, &cfg.member.name, &members, token, join, &tls.peer_dialer).await?;
    let (member_id, cluster_id) = (identity.member_id, identity.cluster_id);
    let initial = initial_membership(&cfg, &members, &advertise_client);

    let tokens = Arc::new(Tokens::from_flags(&cfg.auth)?);
    if matches!(*tokens, Tokens::Simple(_)) {
        tracing::warn!("simple token is not cryptographically signed");
    }
    let settings = RaftSettings {
        heartbeat_ms: cfg.member.heartbeat_interval,
        election_ms: cfg.member.election_timeout,
        snapshot_count: cfg.member.snapshot_count,
        snapshot_dir: data_dir.snap_path(),
        lease_checkpoint_interval: cfg.lease_checkpoint_interval()?,
        peer_dialer: tls.peer_dialer.clone().with_identity(cluster_id, member_id),
        auth_tokens: tokens.clone(),
        warning_apply_duration: cfg.warning_apply_duration()?,
        compaction_pacing: cfg.compaction_pacing()?,
    };
    let raft = Arc::new(RaftNode::start(member_id, engine.clone(), initial, join, &settings).await?);
    raft.start_lease_expiry();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for listener in peer_listeners {
        let name = listener.describe();
        let peer = PeerServer::new(PeerService::new(raft.clone(), cluster_id, stop_rx.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let router = tonic::transport::Server::builder().add_service(peer);
        servers.push(spawn_server("peer", name.clone(), stop_rx.clone(), move |signal| {
            router.serve_with_incoming_shutdown(listener.incoming(), signal)
        }));
        tracing::info!(address = %name, "serving peer traffic");
    }
    let ctx = Arc::new(Ctx {
        raft: raft.clone(),
        engine,
        cluster_id,
        member_id,
        limits: Limits {
            max_request_bytes: cfg.member.max_request_bytes,
            max_txn_ops: cfg.member.max_txn_ops,
            quota_backend_bytes: cfg.member.quota_backend_bytes,
        },
        tokens,
        bcrypt_cost: cfg.auth.cost(),
        client_cert_auth: cfg.client_tls.client_cert_auth == Some(true),
        snapshot_tmp_dir: data_dir.path.join("member"),
    });

    if cfg.experimental.experimental_initial_corrupt_check == Some(true) {
        crate::corrupt::initial_check(&raft).await?;
    }
    if let Some(mode) = cfg.auto_compaction()? {
        servers.push(crate::compactor::spawn(ctx.clone(), mode, stop_rx.clone()));
    }
    if let Some(interval) = cfg.corrupt_check_time()? {
        servers.push(crate::corrupt::spawn_monitor(ctx.clone(), interval, stop_rx.clone()));
    }

    // Bind every listener before announcing anything, so a taken port fails start-up.
    let listeners = bind(
        "listen-client-urls",
        &cfg.member.listen_client_urls,
        tls.client.as_ref(),
    )
    .await?;
    // The probes answer from now on (unhealthy until there is a leader), as
    // etcd serves --listen-metrics-urls before it is ready.
    if let Some(urls) = &cfg.logging.listen_metrics_urls {
        for listener in bind("listen-metrics-urls", urls, tls.client.as_ref()).await? {
            tracing::info!(address = %listener.describe(), "serving metrics");
            servers.push(tokio::spawn(metrics::serve(
                listener.incoming(),
                ctx.clone(),
                stop_rx.clone(),
            )));
        }
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut removed = raft.removed();
    // As etcd: clients are served only once this member's attributes are
    // published through raft, however long that takes (a member of a new
    // cluster waits for its quorum), so a cluster that says it is ready
    // counts every ready member as started.
    let published = tokio::select! {
        p = publish(&raft, &cfg.member.name, &advertise_client, cluster_id) => p,
        _ = &mut shutdown => false,
        _ = removed.wait_for(|r| *r) => false,
    };
    if published {
        tracing::info!(
            { "cluster-version" = &ETCD_API_VERSION[..3] },
            "enabled capabilities for version"
        );
        tracing::info!("ready to serve client requests");
        for listener in listeners {
            let name = listener.describe();
            let (secure, plain) = (listener.serve.tls.is_some(), listener.serve.plain);
            let router = client_router(&ctx, &cfg)?;
            servers.push(spawn_server("client", name.clone(), stop_rx.clone(), move |signal| {
                router.serve_with_incoming_shutdown(listener.incoming(), signal)
            }));
            if secure {
                tracing::info!(address = %name, "serving client traffic securely");
            }
            if plain {
                tracing::info!(address = %name, "serving client traffic insecurely; this is strongly discouraged!");
            }
        }
        notify_systemd();
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("received signal; shutting down");
                // As etcd's Stop: a leader hands its leadership over first,
                // still serving, so the cluster waits no election timeout.
                raft.transfer_leadership_on_stop().await;
            }
            _ = removed.wait_for(|r| *r) => {
                // As etcd does, a removed member stops serving.
                tracing::warn!("{}; the data-dir used by this member must be removed", REMOVED_MESSAGE);
            }
        }
    } else {
        tracing::info!("stopping before this member was published");
    }
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    raft.shutdown().await;
    drop(ctx);
    Ok(())
}

/// The membership a new cluster starts with (unused when joining).
fn initial_membership(cfg: &Config, members: &[InitialMember], advertise_client: &[String]) -> BTreeMap<u64, Member> {
    let mut initial = BTreeMap::new();
    for m in members {
        let id = ids::member_id(&m.peer_urls, &cfg.cluster.initial_cluster_token);
        let client_urls = if m.name == cfg.member.name {
            advertise_client.to_vec()
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
    initial
}

/// Like etcd, publishes this member's name and client URLs through raft,
/// trying again until it is done; false if the member stopped first.
async fn publish(raft: &RaftNode, name: &str, urls: &[String], cluster_id: u64) -> bool {
    loop {
        match raft.publish(name, urls).await {
            Ok(()) => {
                tracing::info!(
                    { "local-member-id" = %format!("{:x}", raft.id()),
                    "local-member-attributes" = %format!("{{Name:{name} ClientURLs:[{}]}}", urls.join(" ")),
                    "cluster-id" = %format!("{cluster_id:x}") },
                    "published local member to cluster through raft"
                );
                return true;
            }
            Err(ProposeError::Stopped) => return false,
            Err(e) => {
                tracing::warn!("cannot publish member attributes yet: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The gRPC services (and the HTTP endpoints beside them) of one client URL.
fn client_router(ctx: &Arc<Ctx>, cfg: &Config) -> anyhow::Result<tonic::transport::server::Router<ClientLayers>> {
    let max_decode = cfg.member.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let progress_interval = cfg.progress_notify_interval()?;
    Ok(tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(HttpEndpointsLayer::new(ctx.clone(), cfg.member.enable_grpc_gateway))
        .layer(GrpcLimitLayer)
        .add_service(KvServer::new(KvService::new(ctx.clone())).max_decoding_message_size(max_decode))
        .add_service(LeaseServer::new(LeaseService::new(ctx.clone())).max_decoding_message_size(max_decode))
        .add_service(ClusterServer::new(ClusterService::new(ctx.clone())).max_decoding_message_size(max_decode))
        .add_service(WatchRoute::new(
            WatchService::new(ctx.clone(), progress_interval),
            max_decode,
        ))
        .add_service(MaintenanceServer::new(MaintenanceService::new(ctx.clone())).max_decoding_message_size(max_decode))
        .add_service(AuthServer::new(AuthService::new(ctx.clone())).max_decoding_message_size(max_decode))
        .add_service(LockServer::new(LockService::new(ctx.clone())).max_decoding_message_size(max_decode))
        .add_service(ElectionServer::new(ElectionService::new(ctx.clone())).max_decoding_message_size(max_decode)))
}

type ClientLayers = tower::layer::util::Stack<
    GrpcLimitLayer,
    tower::layer::util::Stack<HttpEndpointsLayer, tower::layer::util::Identity>,
>;

/// Runs one listener's server until `stop` turns true; `serve` gets the
/// shutdown signal to pass to tonic.
fn spawn_server<F, Fut>(
    what: &'static str,
    name: String,
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
            tracing::error!("{what} listener {name}: {e}");
        }
    })
}

/// Tells systemd the member serves (a `Type=notify` unit, as Debian's
/// etcd.service, waits for it), as etcd does; nothing without NOTIFY_SOCKET.
fn notify_systemd() {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    tracing::info!("notifying init daemon");
    match sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        Ok(()) => tracing::info!("successfully notified init daemon"),
        Err(e) => tracing::error!(error = %e, "failed to notify systemd for readiness"),
    }
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
