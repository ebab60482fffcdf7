//! What applying a request logs, in etcd's words:
//! - "apply request took too long": a request whose apply (execution and
//!   its batch's write) took longer than `--experimental-warning-apply-duration`
//!   (3.6: `--warning-apply-duration`, default 100ms), with etcd's fields
//!   `took`, `expected-duration`, `prefix`, `request` (what was asked,
//!   values as their size only, as etcd prints them) and `response`.
//!
//! ("finished scheduled compaction" is the background compaction's:
//! `crate::mvcc::compact`.)

use std::time::{Duration, Instant};

use timon_proto::timonpb::internal_raft_request::Request;
use timon_proto::timonpb::InternalRaftRequest;

use crate::apply::{EtcdError, Response};

/// One request being applied: started now.
pub struct Applying {
    start: Instant,
    request: String,
}

impl Applying {
    pub fn start(request: &InternalRaftRequest) -> Self {
        Self {
            start: Instant::now(),
            request: describe(request),
        }
    }

    /// Logs what the finished apply calls for.
    pub fn done(self, threshold: Duration, result: &Result<Response, EtcdError>) {
        let took = self.start.elapsed();
        if took > threshold {
            warn_slow(took, threshold, &self.request, result);
        }
    }
}

fn warn_slow(took: Duration, threshold: Duration, request: &str, result: &Result<Response, EtcdError>) {
    let (response, error) = match result {
        Ok(r) => (describe_response(r), String::new()),
        Err(e) => (String::new(), e.to_string()),
    };
    tracing::warn!(
        took = %timon_go::format_duration(took),
        "expected-duration" = %timon_go::format_duration(threshold),
        prefix = "",
        request = %request,
        response = %response,
        error = %error,
        "apply request took too long"
    );
}

/// The request as etcd's protobuf text prints it, values replaced by their
/// size (etcd's `pb.InternalRaftStringer`): `put:<key:"foo" value_size:3 >`.
pub fn describe(request: &InternalRaftRequest) -> String {
    let key = |k: &[u8]| timon_go::quote(k);
    match &request.request {
        None => String::new(),
        Some(Request::Put(p)) => format!(
            "put:<key:{} value_size:{}{} >",
            key(&p.key),
            p.value.len(),
            if p.lease != 0 {
                format!(" lease:{}", p.lease)
            } else {
                String::new()
            }
        ),
        Some(Request::DeleteRange(d)) if d.range_end.is_empty() => format!("delete_range:<key:{} >", key(&d.key)),
        Some(Request::DeleteRange(d)) => {
            format!("delete_range:<key:{} range_end:{} >", key(&d.key), key(&d.range_end))
        }
        Some(Request::Txn(t)) => format!(
            "txn:<compare:{} success:{} failure:{} >",
            t.compare.len(),
            t.success.len(),
            t.failure.len()
        ),
        Some(Request::Compaction(c)) => format!("compaction:<revision:{} >", c.revision),
        Some(Request::LeaseGrant(g)) => format!("lease_grant:<ttl:{}-second id:{:x}>", g.ttl, g.id),
        Some(Request::LeaseRevoke(r)) => format!("lease_revoke:<id:{:x}>", r.id),
        Some(Request::AsUser(a)) => a.request.as_deref().map(describe).unwrap_or_default(),
        Some(other) => {
            // The oneof's name in snake case, as the protobuf text has it.
            let debug = format!("{other:?}");
            let name = debug.split('(').next().unwrap_or_default();
            let mut snake = String::new();
            for (i, c) in name.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            format!("{snake}:<>")
        }
    }
}

/// etcd's short response text (`size:N` and counts, never values).
fn describe_response(response: &Response) -> String {
    match response {
        Response::Put(_) => "size:0".into(),
        Response::DeleteRange(d) => format!("deleted:{}", d.deleted),
        Response::Txn(t) => format!("succeeded:{} responses:{}", t.succeeded, t.responses.len()),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::etcdserverpb::{CompactionRequest, PutRequest};

    #[test]
    fn requests_print_keys_and_value_sizes_never_values() {
        let put = InternalRaftRequest {
            request: Some(Request::Put(PutRequest {
                key: b"foo".to_vec(),
                value: b"secret".to_vec(),
                ..Default::default()
            })),
        };
        assert_eq!(describe(&put), r#"put:<key:"foo" value_size:6 >"#);
        let compact = InternalRaftRequest {
            request: Some(Request::Compaction(CompactionRequest {
                revision: 7,
                physical: false,
            })),
        };
        assert_eq!(describe(&compact), "compaction:<revision:7 >");
    }
}
