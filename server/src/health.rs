//! The probes etcd serves beside `/metrics` (`etcdhttp/health.go`, 3.5.x and
//! 3.6), which Kubernetes' liveness, readiness and startup probes call.
//!
//! - `/health`: `{"health":"true","reason":""}` with 200, or `"false"` and a
//!   reason with 503: an active alarm (`ALARM NOSPACE`, `ALARM CORRUPT`;
//!   `?exclude=NOSPACE` ignores one), no leader (`RAFT NO LEADER`, skipped
//!   with `?serializable=true`, so a member cut off from its quorum stays
//!   live for kubeadm's probe), a failed read (`RANGE ERROR:<error>`;
//!   linearizable unless `?serializable=true`).
//! - `/livez` (check `serializable_read`) and `/readyz` (`data_corruption`,
//!   `serializable_read`, `linearizable_read`, `non_learner`): `ok` with 200
//!   when every check passes, each check's line first with `?verbose`;
//!   with 503 every check's `[+]name ok` / `[-]name failed: reason` line.
//!   `?exclude=name` skips a check (an unknown name is ignored); `/livez/NAME`
//!   and `/readyz/NAME` run one check. Only GET is allowed.
//!
//! etcd runs the checks in Go map order (random); timon in the order above.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use timon_proto::etcdserverpb::{AlarmType, RangeRequest};

use crate::rpc::Ctx;

/// A check of `/livez` or `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
    NonLearner,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    async fn run(self, ctx: &Ctx) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                let alarms = crate::apply::alarm::list(&*ctx.engine).map_err(|e| e.to_string())?;
                match alarms.iter().any(|m| m.alarm == AlarmType::Corrupt as i32) {
                    true => Err("alarm activated: CORRUPT".into()),
                    false => Ok(()),
                }
            }
            Check::SerializableRead => read(ctx, true).await,
            Check::LinearizableRead => read(ctx, false).await,
            Check::NonLearner => match ctx.raft.status().is_learner {
                true => Err("etcdserver: rpc not supported for learner".into()),
                false => Ok(()),
            },
        }
    }
}

const LIVEZ: &[Check] = &[Check::SerializableRead];
const READYZ: &[Check] = &[
    Check::DataCorruption,
    Check::SerializableRead,
    Check::LinearizableRead,
    Check::NonLearner,
];

/// Whether `path` is one of the probes.
pub fn is_probe(path: &str) -> bool {
    probe_checks(path).is_some() || path == "/health"
}

/// The checks `path` runs and whether it is one check's own path.
fn probe_checks(path: &str) -> Option<(&'static [Check], Option<&'static str>)> {
    let (root, sub) = match path.split_once('/').map(|(_, rest)| rest.split_once('/')) {
        Some(Some((root, sub))) => (root, Some(sub)),
        _ => (path.trim_start_matches('/'), None),
    };
    let checks = match root {
        "livez" => LIVEZ,
        "readyz" => READYZ,
        _ => return None,
    };
    match sub {
        None => Some((checks, None)),
        Some(name) => checks
            .iter()
            .find(|c| c.name() == name)
            .map(|c| (checks, Some(c.name()))),
    }
}

/// The values of query parameter `name` (`a=1&a=2`).
fn query_values<'q>(query: &'q str, name: &str) -> Vec<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
        .collect()
}

fn has_param(query: &str, name: &str) -> bool {
    query.split('&').any(|kv| kv.split('=').next() == Some(name))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().unwrap(),
    );
    h.insert("x-content-type-options", "nosniff".parse().unwrap());
    r
}

fn method_not_allowed() -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n".into());
    r.headers_mut().insert(hyper::header::ALLOW, "GET".parse().unwrap());
    r
}

/// Answers `/livez`, `/readyz` and their checks' paths, and `/health`.
pub async fn answer(ctx: &Ctx, method: &Method, path: &str, query: &str) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return method_not_allowed();
    }
    if path == "/health" {
        return health(ctx, query).await;
    }
    let Some((checks, only)) = probe_checks(path) else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
    };
    let excluded = query_values(query, "exclude");
    let mut report = String::new();
    let mut failed = false;
    for check in checks {
        let skip = match only {
            Some(name) => check.name() != name,
            None => excluded.contains(&check.name()),
        };
        if skip {
            continue;
        }
        match check.run(ctx).await {
            Ok(()) => report.push_str(&format!("[+]{} ok\n", check.name())),
            Err(e) => {
                failed = true;
                report.push_str(&format!("[-]{} failed: {e}\n", check.name()));
            }
        }
    }
    if failed {
        tracing::error!(path, reason = %report, "status-code" = 503, "Health check error");
        // Go's http.Error adds a newline of its own.
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("{report}\n"));
    }
    let body = if has_param(query, "verbose") {
        format!("{report}ok\n")
    } else {
        "ok\n".into()
    };
    text(StatusCode::OK, body)
}

/// etcd's `/health`.
async fn health(ctx: &Ctx, query: &str) -> Response<Full<Bytes>> {
    let serializable = query_values(query, "serializable") == ["true"];
    let excluded = query_values(query, "exclude");
    let alarms = crate::apply::alarm::list(&*ctx.engine).unwrap_or_default();
    let alarm = alarms
        .iter()
        .map(|m| crate::apply::alarm::alarm_name(m.alarm))
        .find(|name| !excluded.contains(name));
    let reason = if let Some(name) = alarm {
        Some(match name {
            "NOSPACE" | "CORRUPT" => format!("ALARM {name}"),
            _ => "ALARM UNKNOWN".to_string(),
        })
    } else if !serializable && ctx.raft.status().leader.is_none() {
        Some("RAFT NO LEADER".to_string())
    } else if let Err(e) = read(ctx, serializable).await {
        Some(format!("RANGE ERROR:{e}"))
    } else {
        None
    };
    let json = |status, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, "application/json".parse().unwrap());
        r
    };
    match reason {
        None => json(StatusCode::OK, r#"{"health":"true","reason":""}"#.into()),
        Some(r) => {
            tracing::warn!(reason = %r, "serving /health false");
            let body = serde_json::json!({"health": "false", "reason": r});
            // Go's http.Error adds a newline of its own.
            json(StatusCode::SERVICE_UNAVAILABLE, format!("{body}\n"))
        }
    }
}

/// A one-key range, linearizable (after the read index) or local.
async fn read(ctx: &Ctx, serializable: bool) -> Result<(), String> {
    if !serializable {
        ctx.raft
            .read_index()
            .await
            .map_err(|e| crate::rpc::error::propose_status(&e).message().to_string())?;
    }
    let req = RangeRequest {
        key: b"health".to_vec(),
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    };
    let store = ctx.raft.store();
    let result = crate::apply::range::range(&store.read(), &req)
        .map(|_| ())
        .map_err(|e| e.to_string());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries() {
        assert!(is_probe("/livez") && is_probe("/readyz") && is_probe("/health"));
        assert!(is_probe("/readyz/linearizable_read") && is_probe("/livez/serializable_read"));
        assert!(!is_probe("/livez/linearizable_read") && !is_probe("/readyz/nope") && !is_probe("/ready"));
        assert_eq!(probe_checks("/readyz/non_learner").unwrap().1, Some("non_learner"));
        assert_eq!(
            query_values("exclude=a&verbose&exclude=b&exclude=", "exclude"),
            ["a", "b"]
        );
        assert!(has_param("exclude=a&verbose", "verbose") && !has_param("verbosity=1", "verbose"));
    }
}
