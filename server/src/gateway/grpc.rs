//! The gateway's in-process gRPC client: a gRPC request handed to the
//! client port's own tonic services (with their layers), as etcd's gateway
//! dials its own gRPC server, so validation, auth, limits and errors are
//! the gRPC API's own.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::util::BoxCloneService;
use tower::ServiceExt;

/// The client port's gRPC services.
pub type Inner = BoxCloneService<Request<Body>, http::Response<Body>, tower::BoxError>;

/// One gRPC message frame: uncompressed flag, length, message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// A unary (or server-streaming) request body: one frame.
pub fn unary_body(message: &[u8]) -> Body {
    Body::new(http_body_util::Full::new(frame(message)))
}

/// The metadata grpc-gateway passes on: `Authorization` (the auth token)
/// and every `Grpc-Metadata-<key>` header as `<key>`.
pub fn metadata(headers: &HeaderMap) -> HeaderMap {
    let mut md = HeaderMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name == "authorization" {
            md.append(http::header::AUTHORIZATION, value.clone());
        } else if let Some(key) = name.strip_prefix("grpc-metadata-") {
            if let Ok(key) = http::HeaderName::from_bytes(key.as_bytes()) {
                md.append(key, value.clone());
            }
        }
    }
    md
}

/// Calls `method` (`/etcdserverpb.KV/Range`) with `body`; the answer's
/// messages and status come from [`Frames`].
pub async fn call(inner: Inner, method: &str, metadata: HeaderMap, extensions: http::Extensions, body: Body) -> Frames {
    let mut req = Request::new(body);
    *req.method_mut() = http::Method::POST;
    *req.version_mut() = http::Version::HTTP_2;
    *req.uri_mut() = method.parse().expect("gRPC method paths are valid URIs");
    *req.headers_mut() = metadata;
    req.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    req.headers_mut()
        .insert(http::header::TE, HeaderValue::from_static("trailers"));
    *req.extensions_mut() = extensions;
    match inner.oneshot(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            // A trailers-only answer carries its status in the headers.
            let status = Status::from_header_map(&parts.headers);
            Frames {
                body: Some(body),
                buf: BytesMut::new(),
                status,
            }
        }
        Err(e) => Frames {
            body: None,
            buf: BytesMut::new(),
            status: Some(Status::unknown(e.to_string())),
        },
    }
}

/// The messages of a gRPC response, then its status.
pub struct Frames {
    body: Option<Body>,
    buf: BytesMut,
    status: Option<Status>,
}

impl Frames {
    /// The next message; `Err` with the final status if it is not OK;
    /// `Ok(None)` at an OK end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
            }
            let Some(body) = self.body.as_mut() else {
                return self.end();
            };
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            self.status = Status::from_header_map(trailers).or(self.status.take());
                        }
                    }
                },
                Some(Err(e)) => {
                    self.body = None;
                    self.status = Some(Status::from_error(e.into()));
                }
                None => self.body = None,
            }
        }
    }

    fn end(&mut self) -> Result<Option<Bytes>, Status> {
        match self.status.take() {
            Some(s) if s.code() != Code::Ok => Err(s),
            _ => Ok(None),
        }
    }
}
