//! The HTTP endpoints etcd serves on `--listen-metrics-urls`, which
//! operators' probes and dashboards use: the probes (`/health`, `/livez`,
//! `/readyz`: `crate::health`), `/version`, and `/metrics` (Prometheus text,
//! etcd's metric names).

use std::convert::Infallible;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::sync::watch;

use crate::rpc::{Ctx, ETCD_API_VERSION};
use crate::tls::Conn;

/// Serves the endpoints on the accepted connections (plain or TLS) until
/// `stop` turns true.
pub async fn serve(
    incoming: impl Stream<Item = std::io::Result<Conn>> + Send,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    let mut incoming = std::pin::pin!(incoming);
    loop {
        let conn = tokio::select! {
            c = incoming.next() => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(Ok(stream)) = conn else {
            if conn.is_none() {
                return;
            }
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
            });
            // HTTP/1.1 or HTTP/2 (what a TLS client picked by ALPN).
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Whether `path` is one of these endpoints (also served on the client
/// URLs, next to gRPC, as etcd does).
pub fn is_endpoint(path: &str) -> bool {
    matches!(path, "/version" | "/metrics") || crate::health::is_probe(path)
}

pub async fn handle<B>(ctx: &Ctx, req: Request<B>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("");
    match req.uri().path() {
        path if crate::health::is_probe(path) => crate::health::answer(ctx, req.method(), path, query).await,
        "/version" => {
            let minor = &ETCD_API_VERSION[..ETCD_API_VERSION.rfind('.').unwrap_or(ETCD_API_VERSION.len())];
            let body = format!(r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{minor}.0"}}"#);
            reply(StatusCode::OK, "application/json", body)
        }
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4", metrics_text(ctx)),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "404 page not found\n".into()),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// The metrics, read afresh at each scrape.
fn metrics_text(ctx: &Ctx) -> String {
    let status = ctx.raft.status();
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, value: i64| {
        if let Ok(g) = IntGauge::new(name, help) {
            g.set(value);
            let _ = registry.register(Box::new(g));
        }
    };
    gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        status.leader.is_some() as i64,
    );
    gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        (status.leader == Some(status.member_id)) as i64,
    );
    gauge(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        status.is_learner as i64,
    );
    gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        status.last_log_index as i64,
    );
    gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        status.applied_index as i64,
    );
    let store = ctx.raft.store();
    gauge(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        store.current_revision(),
    );
    gauge(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store.",
        store.compact_revision(),
    );
    let compaction = &crate::mvcc::compact_metrics::METRICS;
    for h in [
        &compaction.index_pause_ms,
        &compaction.db_pause_ms,
        &compaction.total_ms,
    ] {
        let _ = registry.register(Box::new(h.clone()));
    }
    let _ = registry.register(Box::new(compaction.keys.clone()));
    let disk = &crate::disk_metrics::METRICS;
    let _ = registry.register(Box::new(disk.wal_fsync.clone()));
    let _ = registry.register(Box::new(disk.backend_commit.clone()));
    let _ = registry.register(Box::new(disk.leader_changes.clone()));
    let size = ctx.db_size() as i64;
    gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        size,
    );
    gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        size,
    );
    let (synced, unsynced) = ctx.raft.watch_hub().counts();
    gauge(
        "etcd_debugging_mvcc_watcher_total",
        "Total number of watchers.",
        (synced + unsynced) as i64,
    );
    gauge(
        "etcd_debugging_mvcc_slow_watcher_total",
        "Total number of unsynced slow watchers.",
        unsynced as i64,
    );
    if let Ok(v) = IntGaugeVec::new(
        Opts::new(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        ),
        &["server_id"],
    ) {
        v.with_label_values(&[format!("{:x}", status.member_id).as_str()])
            .set(1);
        let _ = registry.register(Box::new(v));
    }
    if let Ok(v) = IntGaugeVec::new(
        Opts::new(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
        ),
        &["server_version"],
    ) {
        v.with_label_values(&[ETCD_API_VERSION]).set(1);
        let _ = registry.register(Box::new(v));
    }
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
