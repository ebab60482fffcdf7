//! The Watch service's route, in place of tonic's generated `WatchServer`,
//! which can only send `WatchResponse`s encoded whole: the same service
//! (`/etcdserverpb.Watch/Watch`, the same codec settings) sending
//! [`WatchOut`]s (`rpc::watch_wire`).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use timon_proto::etcdserverpb::WatchRequest;
use tonic::body::Body;
use tonic::codegen::{http, Body as HttpBody, BoxFuture, StdError};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use super::watch::{WatchService, WatchStream};
use super::watch_wire::WatchOut;

/// The Watch service's route, in place of the generated `WatchServer`.
#[derive(Clone)]
pub struct WatchRoute {
    inner: Arc<WatchService>,
    max_decoding_message_size: usize,
}

impl WatchRoute {
    pub fn new(inner: WatchService, max_decoding_message_size: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            max_decoding_message_size,
        }
    }
}

impl NamedService for WatchRoute {
    const NAME: &'static str = "etcdserverpb.Watch";
}

/// The one method, as tonic's server calls it.
struct WatchMethod(Arc<WatchService>);

impl StreamingService<WatchRequest> for WatchMethod {
    type Response = WatchOut;
    type ResponseStream = WatchStream;
    type Future = BoxFuture<Response<WatchStream>, Status>;

    fn call(&mut self, request: Request<Streaming<WatchRequest>>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.watch(request).await })
    }
}

impl<B> tower::Service<http::Request<B>> for WatchRoute
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != "/etcdserverpb.Watch/Watch" {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = WatchMethod(self.inner.clone());
        let max_decode = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<WatchOut, WatchRequest>::default())
                .apply_max_message_size_config(Some(max_decode), None);
            Ok(grpc.streaming(method, req).await)
        })
    }
}
