//! Streams through the gateway: request bodies read as a sequence of JSON
//! values (Go's `json.Decoder`), fed to a client-streaming gRPC call as they
//! arrive; gRPC response streams written as one `{"result": ...}` line per
//! message, ended by an error object if the call fails (grpc-gateway's
//! `ForwardResponseStream`).

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::sync::mpsc;
use tonic::body::Body;

use super::grpc::{self, Frames};
use super::json::{self, Incomplete};
use super::reply;

/// The JSON values of a request body, one at a time.
pub struct JsonReader {
    body: Body,
    buf: Vec<u8>,
    done: bool,
}

impl JsonReader {
    pub fn new(body: Body) -> Self {
        Self {
            body,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next value; `Ok(None)` at the end of the body; Go's text for
    /// malformed JSON.
    pub async fn next(&mut self) -> Result<Option<serde_json::Value>, String> {
        loop {
            match json::next_value(&self.buf, self.done) {
                Ok(Some((value, used))) => {
                    self.buf.drain(..used);
                    return Ok(Some(value));
                }
                Ok(None) if self.done => return Ok(None),
                Ok(None) | Err(Incomplete::NeedMore) => {}
                Err(Incomplete::Invalid(e)) => return Err(e),
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                // A body cut short ends the stream as its end would.
                Some(Err(_)) | None => self.done = true,
            }
        }
    }
}

/// A gRPC request body fed, message by message, from the rest of an HTTP
/// body: each JSON value becomes one request; the stream ends (CloseSend)
/// at the end of the body or at the first value that does not decode, as
/// grpc-gateway's send loop does.
pub fn request_stream(first: DynamicMessage, mut reader: JsonReader, desc: MessageDescriptor) -> (Body, AbortOnDrop) {
    use prost::Message;
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    let task = tokio::spawn(async move {
        if tx
            .send(Ok(Frame::data(grpc::frame(&first.encode_to_vec()))))
            .await
            .is_err()
        {
            return;
        }
        while let Ok(Some(value)) = reader.next().await {
            let Ok(message) = json::from_json(&desc, &value) else {
                break;
            };
            if tx
                .send(Ok(Frame::data(grpc::frame(&message.encode_to_vec()))))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    (Body::new(body), AbortOnDrop(task))
}

/// Stops the request feeder when the answer is dropped (the client left).
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer to a streaming call: the HTTP status is the first message's
/// (200) or, if the call fails before any, the error's.
pub async fn response(mut frames: Frames, desc: MessageDescriptor, feeder: Option<AbortOnDrop>) -> Response<Body> {
    let first = frames.next().await;
    if let Err(status) = &first {
        return reply::json(reply::http_status(status.code()), reply::stream_error(status));
    }
    let state = (Some(first), frames, desc, feeder);
    let chunks = futures::stream::unfold(state, |(pending, mut frames, desc, feeder)| async move {
        let next = match pending {
            Some(p) => p,
            None => frames.next().await,
        };
        let chunk = match next {
            Ok(Some(message)) => match DynamicMessage::decode(desc.clone(), message) {
                Ok(m) => reply::stream_chunk(&json::to_json_bytes(&m)),
                Err(e) => reply::stream_error(&tonic::Status::internal(e.to_string())),
            },
            Ok(None) => return None,
            Err(status) => {
                // The error object is the stream's last chunk.
                let chunk = reply::stream_error(&status);
                return Some((
                    Ok::<_, Infallible>(Frame::data(chunk)),
                    (Some(Ok(None)), frames, desc, feeder),
                ));
            }
        };
        Some((Ok(Frame::data(chunk)), (None, frames, desc, feeder)))
    });
    let mut resp = Response::new(Body::new(http_body_util::StreamBody::new(chunks)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
