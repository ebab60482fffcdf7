//! etcd's answers to request bodies that fail before a handler runs: a
//! message over the receive limit, and a body that ends too early.
//!
//! etcd's gRPC server (grpc-go) refuses a request message longer than
//! `--max-request-bytes` + 512 KiB with `ResourceExhausted` and
//! `grpc: received message larger than max (N vs. M)`. tonic checks the same
//! limit on the message's length prefix, before buffering the body, but
//! answers `OutOfRange` with its own text. This layer rewrites that one
//! status, so clients see etcd's code and string while memory stays bounded
//! by tonic's check.
//!
//! A request body that ends in the middle of a message (or before its
//! first one) is, from grpc-go, `Unknown` with `unexpected EOF` (or `EOF`),
//! the text of Go's io errors; tonic answers `Internal` with its own words.
//! Those two are rewritten too (found by `tests/fuzz_etcd_errors.rs`).
//!
//! Only statuses sent in the response headers are rewritten, which is how a
//! unary call fails while decoding its request.

use std::task::{Context, Poll};

use futures::future::{MapOk, TryFutureExt};
use tonic::{Code, Status};
use tower::{Layer, Service};

/// Wraps every gRPC service of a listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcLimitLayer;

impl<S> Layer<S> for GrpcLimitLayer {
    type Service = GrpcLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcLimit { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcLimit<S> {
    inner: S,
}

type Rewrite<B> = fn(http::Response<B>) -> http::Response<B>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcLimit<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = MapOk<S::Future, Rewrite<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        self.inner.call(req).map_ok(rewrite as Rewrite<ResBody>)
    }
}

fn rewrite<B>(mut resp: http::Response<B>) -> http::Response<B> {
    // Cheap test first: almost every response is OK or another code.
    let code = resp.headers().get(Status::GRPC_STATUS).map(|v| v.as_bytes());
    if code != Some(b"11") && code != Some(b"13") {
        return resp;
    }
    let Some(status) = Status::from_header_map(resp.headers()) else {
        return resp;
    };
    let etcd = match (status.code(), status.message()) {
        (Code::OutOfRange, m) => match parse_tonic_limit(m) {
            Some((len, limit)) => {
                Status::resource_exhausted(format!("grpc: received message larger than max ({len} vs. {limit})"))
            }
            None => return resp,
        },
        (Code::Internal, TONIC_MID_MESSAGE_EOF) => Status::unknown("unexpected EOF"),
        (Code::Internal, TONIC_NO_MESSAGE) => Status::unknown("EOF"),
        _ => return resp,
    };
    // The message is ASCII, so encoding it into a header cannot fail.
    let _ = etcd.add_header(resp.headers_mut());
    resp
}

/// tonic's answer to a body that ends inside a message.
const TONIC_MID_MESSAGE_EOF: &str = "Unexpected EOF decoding stream.";
/// tonic's answer to a unary call whose body holds no message.
const TONIC_NO_MESSAGE: &str = "Missing request message.";

/// Reads N and M out of tonic's "Error, decoded message length too large:
/// found N bytes, the limit is: M bytes".
fn parse_tonic_limit(msg: &str) -> Option<(u64, u64)> {
    let rest = msg.strip_prefix("Error, decoded message length too large: found ")?;
    let (len, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((len.parse().ok()?, limit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tonic_text() {
        let m = "Error, decoded message length too large: found 2097160 bytes, the limit is: 2097152 bytes";
        assert_eq!(parse_tonic_limit(m), Some((2097160, 2097152)));
        assert_eq!(parse_tonic_limit("etcdserver: request is too large"), None);
    }

    #[test]
    fn rewrites_only_the_limit_status() {
        let m = "Error, decoded message length too large: found 10 bytes, the limit is: 5 bytes";
        let resp: http::Response<()> = Status::out_of_range(m).into_http();
        let out = Status::from_header_map(rewrite(resp).headers()).unwrap();
        assert_eq!(out.code(), Code::ResourceExhausted);
        assert_eq!(out.message(), "grpc: received message larger than max (10 vs. 5)");

        let eof: http::Response<()> = Status::internal(TONIC_MID_MESSAGE_EOF).into_http();
        let out = Status::from_header_map(rewrite(eof).headers()).unwrap();
        assert_eq!((out.code(), out.message()), (Code::Unknown, "unexpected EOF"));
        let none: http::Response<()> = Status::internal(TONIC_NO_MESSAGE).into_http();
        let out = Status::from_header_map(rewrite(none).headers()).unwrap();
        assert_eq!((out.code(), out.message()), (Code::Unknown, "EOF"));
        let internal: http::Response<()> = Status::internal("etcdserver: x").into_http();
        let out = Status::from_header_map(rewrite(internal).headers()).unwrap();
        assert_eq!((out.code(), out.message()), (Code::Internal, "etcdserver: x"));

        let other: http::Response<()> = Status::out_of_range("etcdserver: mvcc: x").into_http();
        let out = Status::from_header_map(rewrite(other).headers()).unwrap();
        assert_eq!(out.code(), Code::OutOfRange);
        assert_eq!(out.message(), "etcdserver: mvcc: x");
    }
}
