//! The HTTP answers etcd's gateway writes: JSON bodies, grpc-gateway v1's
//! error objects and its gRPC code → HTTP status mapping, Go's plain-text
//! `http.Error` answers, and etcd's CORS headers.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use tonic::body::Body;
use tonic::{Code, Status};

/// grpc-gateway's `HTTPStatusFromCode`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON string as Go's encoding/json writes it (`<`, `>`, `&`, U+2028
/// and U+2029 escaped).
pub fn go_string(s: &str) -> String {
    let json = serde_json::to_string(s).expect("a string serialises");
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// grpc-gateway's `DefaultHTTPError`: `{"error","message","code"}` with the
/// code's HTTP status.
pub fn error(status: &Status) -> Response<Body> {
    let m = go_string(status.message());
    let body = format!(r#"{{"error":{m},"message":{m},"code":{}}}"#, status.code() as i32);
    json(http_status(status.code()), body.into())
}

/// The error object ending a stream (grpc-gateway's `StreamError`).
pub fn stream_error(status: &Status) -> Bytes {
    let http = http_status(status.code());
    let mut body = format!(
        r#"{{"error":{{"grpc_code":{},"http_code":{}"#,
        status.code() as i32,
        http.as_u16()
    );
    if !status.message().is_empty() {
        body += &format!(r#","message":{}"#, go_string(status.message()));
    }
    body += &format!(
        r#","http_status":{}}}}}"#,
        go_string(http.canonical_reason().unwrap_or_default())
    );
    body.into()
}

/// One message of a stream: `{"result":...}` and a newline.
pub fn stream_chunk(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + 12);
    out.extend_from_slice(b"{\"result\":");
    out.extend_from_slice(message);
    out.extend_from_slice(b"}\n");
    out.into()
}

/// A JSON answer.
pub fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::new(http_body_util::Full::new(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Go's `http.Error`: the text, a newline, as text/plain.
pub fn text(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(Body::new(http_body_util::Full::new(Bytes::from(format!("{text}\n")))));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

/// etcd's `addCORSHeader` with its default `--cors=*`.
pub fn add_cors<B>(resp: &mut Response<B>) {
    let headers = resp.headers_mut();
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
}
