//! etcd's HTTP/JSON gateway (grpc-gateway v1 in etcd 3.4) on the client
//! URLs: every route etcd registers under `/v3/` (and `/v3beta/`, which
//! etcd 3.4 rewrites to `/v3/`) takes a JSON request, calls the gRPC method
//! in-process through the client port's own services, and answers its
//! response as proto3 JSON, or a stream of `{"result": ...}` lines.
//!
//! # Layout
//! - `routes`: the route table (path → gRPC method), as etcd registers it.
//! - `json`: proto3 JSON in and out, with Go's error texts.
//! - `grpc`: the in-process gRPC call (framing, metadata, status).
//! - `stream`: request bodies as JSON streams, streaming answers.
//! - `reply`: HTTP statuses, error bodies, CORS headers.

mod grpc;
mod json;
mod reply;
mod routes;
mod stream;

use std::sync::OnceLock;

use http::{Method, Request, Response, StatusCode};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use tonic::body::Body;
use tonic::Status;

pub use grpc::Inner;
pub use reply::add_cors;

/// True for the paths the gateway answers (everything else non-gRPC is
/// etcd's plain 404).
pub fn is_gateway_path(path: &str) -> bool {
    path.starts_with("/v3/") || path.starts_with("/v3beta/")
}

/// etcd's answer to a plain HTTP request for a path it does not serve.
pub fn not_found() -> Response<Body> {
    reply::text(StatusCode::NOT_FOUND, "404 page not found")
}

/// etcd's answer to a gateway request from a client certificate with a
/// common name while --client-cert-auth and auth are on.
pub fn common_name_refused() -> Response<Body> {
    reply::text(
        StatusCode::BAD_REQUEST,
        "CommonName of client sending a request against gateway will be ignored and not used as expected",
    )
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(timon_proto::FILE_DESCRIPTOR_SET).expect("the build's descriptor set decodes")
    })
}

/// Answers one gateway request (`is_gateway_path`).
pub async fn handle(req: Request<Body>, inner: Inner) -> Response<Body> {
    let path = req.uri().path();
    let path = path
        .strip_prefix("/v3beta/")
        .map(|rest| format!("/v3/{rest}"))
        .unwrap_or_else(|| path.to_string());
    let Some((service, method)) = routes::lookup(&path) else {
        return reply::text(StatusCode::NOT_FOUND, "Not Found");
    };
    if req.method() != Method::POST {
        return reply::text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let method = pool()
        .get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == method))
        .expect("every route names a method of the descriptor set");
    let (parts, body) = req.into_parts();
    let md = grpc::metadata(&parts.headers);
    let grpc_path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let mut reader = stream::JsonReader::new(body);

    if method.is_client_streaming() {
        // grpc-gateway answers a first message that does not decode with
        // the bare error (code Unknown), an empty body with an ended stream.
        let first = match reader.next().await {
            Ok(Some(value)) => json::from_json(&method.input(), &value).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let first = match first {
            Ok(first) => first,
            Err(e) => return reply::error(&Status::unknown(e)),
        };
        let (body, feeder) = match first {
            Some(first) => {
                let (body, feeder) = stream::request_stream(first, reader, method.input());
                (body, Some(feeder))
            }
            None => (Body::empty(), None),
        };
        let frames = grpc::call(inner, &grpc_path, md, parts.extensions, body).await;
        return stream::response(frames, method.output(), feeder).await;
    }

    let request = match reader.next().await {
        Ok(Some(value)) => json::from_json(&method.input(), &value),
        Ok(None) => Ok(DynamicMessage::new(method.input())),
        Err(e) => Err(e),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return reply::error(&Status::invalid_argument(e)),
    };
    let body = grpc::unary_body(&request.encode_to_vec());
    let frames = grpc::call(inner, &grpc_path, md, parts.extensions, body).await;
    if method.is_server_streaming() {
        return stream::response(frames, method.output(), None).await;
    }
    unary(frames, &method).await
}

async fn unary(mut frames: grpc::Frames, method: &MethodDescriptor) -> Response<Body> {
    match frames.next().await {
        Ok(Some(bytes)) => match DynamicMessage::decode(method.output(), bytes) {
            Ok(m) => reply::json(StatusCode::OK, json::to_json_bytes(&m).into()),
            Err(e) => reply::error(&Status::internal(e.to_string())),
        },
        Ok(None) => reply::error(&Status::internal("no response message")),
        Err(status) => reply::error(&status),
    }
}
