//! etcd serves `/health`, `/version` and `/metrics` over plain HTTP on its
//! client URLs too, next to gRPC (monitoring often scrapes
//! `http://member:2379/metrics`). This layer answers those paths from
//! `crate::metrics`, the `/v3/` JSON gateway from `crate::gateway` (which
//! calls these same gRPC services in-process), answers other plain HTTP
//! requests with etcd's 404, and hands gRPC to the gRPC services.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

use super::Ctx;
use crate::{gateway, metrics};

#[derive(Clone)]
pub struct HttpEndpointsLayer {
    ctx: Arc<Ctx>,
    /// --enable-grpc-gateway.
    gateway: bool,
}

impl HttpEndpointsLayer {
    pub fn new(ctx: Arc<Ctx>, gateway: bool) -> Self {
        Self { ctx, gateway }
    }
}

impl<S> Layer<S> for HttpEndpointsLayer {
    type Service = HttpEndpoints<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpEndpoints {
            inner,
            ctx: self.ctx.clone(),
            gateway: self.gateway,
        }
    }
}

#[derive(Clone)]
pub struct HttpEndpoints<S> {
    inner: S,
    ctx: Arc<Ctx>,
    gateway: bool,
}

impl<S> HttpEndpoints<S> {
    /// etcd's access controller refuses a gateway request whose verified
    /// client certificate names a user (a CN) while --client-cert-auth and
    /// auth are on: the gateway's own gRPC connection would not carry it.
    fn refuses_common_name(&self, req: &http::Request<Body>) -> bool {
        let has_cn = req
            .extensions()
            .get::<crate::tls::ConnInfo>()
            .and_then(|c| c.common_name.as_deref())
            .is_some_and(|cn| !cn.is_empty());
        has_cn && self.ctx.client_cert_auth && crate::auth::state::enabled(self.ctx.engine.as_ref()).unwrap_or(false)
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for HttpEndpoints<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let is_grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if is_grpc {
            let fut = self.inner.call(req);
            return Box::pin(fut);
        }
        if self.gateway && gateway::is_gateway_path(req.uri().path()) && self.refuses_common_name(&req) {
            let resp = gateway::common_name_refused();
            return Box::pin(async move { Ok(resp) });
        }
        // etcd's access controller: CORS headers on every plain HTTP
        // answer, and OPTIONS (a CORS preflight) answered 200 at once.
        if req.method() == http::Method::OPTIONS {
            let mut resp = http::Response::new(Body::empty());
            gateway::add_cors(&mut resp);
            return Box::pin(async move { Ok(resp) });
        }
        let path = req.uri().path();
        if metrics::is_endpoint(path) {
            let ctx = self.ctx.clone();
            return Box::pin(async move {
                let mut resp = metrics::handle(&ctx, req).await.map(Body::new);
                gateway::add_cors(&mut resp);
                Ok(resp)
            });
        }
        if !self.gateway || !gateway::is_gateway_path(path) {
            let mut resp = gateway::not_found();
            gateway::add_cors(&mut resp);
            return Box::pin(async move { Ok(resp) });
        }
        let inner = gateway::Inner::new(self.inner.clone().map_err(Into::into));
        Box::pin(async move {
            let mut resp = gateway::handle(req, inner).await;
            gateway::add_cors(&mut resp);
            Ok(resp)
        })
    }
}
