//! A watch stream's responses on the wire: [`WatchOut`], a `WatchResponse`
//! encoded whole, or one whose shared events ([`crate::watch::SharedEvents`])
//! go out as bytes encoded once per revision. The bytes are the ones prost
//! writes for the equivalent `WatchResponse` (tested below). The route that
//! sends them is `rpc::watch_route`.

use std::sync::Arc;

use bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};
use timon_proto::etcdserverpb::WatchResponse;

use crate::watch::SharedEvents;

/// One response of a watch stream.
#[derive(Debug, Clone)]
pub enum WatchOut {
    /// A response encoded whole.
    Whole(WatchResponse),
    /// A response whose events are shared: `head` holds every other field
    /// (and no events); the events follow it as encoded once.
    Shared {
        head: WatchResponse,
        events: Arc<SharedEvents>,
    },
}

impl Default for WatchOut {
    fn default() -> Self {
        WatchOut::Whole(WatchResponse::default())
    }
}

/// Encoding only: the server never decodes one (a decode skips every field).
impl Message for WatchOut {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            WatchOut::Whole(r) => r.encode_raw(buf),
            // prost writes fields in number order: fields 1 to 7, then
            // the events (field 11).
            WatchOut::Shared { head, events } => {
                head.encode_raw(buf);
                buf.put_slice(events.encoded());
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        match self {
            WatchOut::Whole(r) => r.encoded_len(),
            WatchOut::Shared { head, events } => head.encoded_len() + events.encoded().len(),
        }
    }

    fn clear(&mut self) {
        *self = WatchOut::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::etcdserverpb::ResponseHeader;
    use timon_proto::mvccpb::event::EventType;
    use timon_proto::mvccpb::{Event, KeyValue};

    fn event(key: &[u8], value_len: usize, rev: i64) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: key.to_vec(),
                value: vec![7; value_len],
                create_revision: 2,
                mod_revision: rev,
                version: 3,
                lease: 0,
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn shared_events_encode_to_the_bytes_of_the_whole_response() {
        let events = vec![event(b"a", 0, 5), event(b"/registry/pods/x", 300, 5), event(b"b", 1, 5)];
        let head = WatchResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 5,
                raft_term: 3,
            }),
            watch_id: 42,
            ..Default::default()
        };
        let whole = WatchResponse {
            events: events.clone(),
            ..head.clone()
        };
        let shared = Arc::new(SharedEvents::new(events));
        for id in [0, 42, i64::MAX] {
            let head = WatchResponse {
                watch_id: id,
                ..head.clone()
            };
            let out = WatchOut::Shared {
                head: head.clone(),
                events: shared.clone(),
            };
            let want = WatchResponse {
                watch_id: id,
                ..whole.clone()
            };
            assert_eq!(out.encode_to_vec(), want.encode_to_vec());
            assert_eq!(out.encoded_len(), want.encoded_len());
            assert_eq!(WatchResponse::decode(&out.encode_to_vec()[..]).unwrap(), want);
        }
        let out = WatchOut::Whole(whole.clone());
        assert_eq!(out.encode_to_vec(), whole.encode_to_vec());
    }
}
