//! gRPC calls with bodies the caller writes byte for byte, for the hostile
//! input tests: any request message bytes, any 5-byte frame prefix (a
//! length that lies, a compressed flag nobody negotiated), several frames
//! in one unary call, and request streams that end mid-message or stop
//! sending without ending. Sent over a tonic [`Channel`] (one HTTP/2
//! connection) as plain `http::Request`s, so tonic's own encoder never
//! touches the bytes.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tonic::transport::Channel;
use tower::ServiceExt;

/// How a raw call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this gRPC status (`Ok` included) and
    /// this many response message bytes.
    Status {
        code: tonic::Code,
        message: String,
        bytes: usize,
    },
    /// The server accepted the call and was still streaming (or waiting)
    /// when the caller gave up: normal for Watch, Observe, a blocked Lock.
    Open { bytes: usize },
    /// No response headers at all within the timeout.
    NoAnswer,
    /// The connection failed (reset, refused).
    Transport(String),
}

/// One gRPC frame: flag byte, big-endian length, message.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    frame_with(0, msg.len() as u32, msg)
}

/// A frame whose flag and declared length are whatever the caller says.
pub fn frame_with(flag: u8, len: u32, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(flag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Calls `path` (e.g. `/etcdserverpb.KV/Range`) with `body` as the request
/// body. With `end_stream` false the body stops sending after `body`
/// without ending (a client that stalls mid-message). `headers` are added
/// as HTTP/2 headers (gRPC metadata). Gives up after `timeout`.
pub async fn call(
    channel: &Channel,
    path: &str,
    body: Vec<u8>,
    end_stream: bool,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Outcome {
    let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = if body.is_empty() {
        Vec::new()
    } else {
        vec![Ok(Frame::data(Bytes::from(body)))]
    };
    let stream = futures::stream::iter(chunks);
    let body = if end_stream {
        tonic::body::Body::new(StreamBody::new(stream.boxed()))
    } else {
        tonic::body::Body::new(StreamBody::new(stream.chain(futures::stream::pending()).boxed()))
    };
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req.body(body).expect("valid request");
    let deadline = tokio::time::Instant::now() + timeout;
    let resp = match tokio::time::timeout_at(deadline, channel.clone().oneshot(req)).await {
        Err(_) => return Outcome::NoAnswer,
        Ok(Err(e)) => return Outcome::Transport(format!("{e:?}")),
        Ok(Ok(r)) => r,
    };
    if let Some(code) = resp.headers().get("grpc-status") {
        return status_of(code, resp.headers().get("grpc-message"), 0);
    }
    let mut body = resp.into_body();
    let mut bytes = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Outcome::Open { bytes },
            Ok(None) => {
                return Outcome::Status {
                    code: tonic::Code::Unknown,
                    message: "response ended without grpc-status".into(),
                    bytes,
                }
            }
            Ok(Some(Err(e))) => return Outcome::Transport(format!("response body: {e}")),
            Ok(Some(Ok(f))) => {
                if let Some(trailers) = f.trailers_ref() {
                    return match trailers.get("grpc-status") {
                        Some(code) => status_of(code, trailers.get("grpc-message"), bytes),
                        None => Outcome::Status {
                            code: tonic::Code::Unknown,
                            message: "trailers without grpc-status".into(),
                            bytes,
                        },
                    };
                }
                if let Some(d) = f.data_ref() {
                    bytes += d.len();
                }
            }
        }
    }
}

fn status_of(code: &http::HeaderValue, message: Option<&http::HeaderValue>, bytes: usize) -> Outcome {
    let code = code
        .to_str()
        .ok()
        .and_then(|c| c.parse::<i32>().ok())
        .map_or(tonic::Code::Unknown, tonic::Code::from_i32);
    let message = message
        .and_then(|m| m.to_str().ok())
        .map(|m| percent_decode(m))
        .unwrap_or_default();
    Outcome::Status { code, message, bytes }
}

/// gRPC percent-encodes grpc-message.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
