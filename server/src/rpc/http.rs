//! etcd serves `/health`, `/version` and `/metrics` over plain HTTP on its
//! client URLs too, next to gRPC (monitoring often scrapes
//! `http://member:2379/metrics`). This layer answers those paths from
//! `crate::metrics` and hands everything else to the gRPC services.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::Ctx;
use crate::metrics;

#[derive(Clone)]
pub struct HttpEndpointsLayer {
    ctx: Arc<Ctx>,
}

impl HttpEndpointsLayer {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }
}

impl<S> Layer<S> for HttpEndpointsLayer {
    type Service = HttpEndpoints<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpEndpoints {
            inner,
            ctx: self.ctx.clone(),
        }
    }
}

#[derive(Clone)]
pub struct HttpEndpoints<S> {
    inner: S,
    ctx: Arc<Ctx>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for HttpEndpoints<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let is_grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if is_grpc || !metrics::is_endpoint(req.uri().path()) {
            let fut = self.inner.call(req);
            return Box::pin(fut);
        }
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let resp = metrics::handle(&ctx, req).await;
            Ok(resp.map(tonic::body::Body::new))
        })
    }
}
