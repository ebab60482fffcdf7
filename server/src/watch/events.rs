//! The events a delivery carries. When a revision's events all go to
//! every watcher that wants any of them (watchers of one prefix, the
//! common case), the watchers share one copy ([`Events::Shared`]), and its
//! wire encoding is made once, by the first stream that sends it, for
//! every other stream and watcher: a put seen by 1000 watchers is cloned
//! and encoded once, not 1000 times.

use std::fmt;
use std::sync::{Arc, OnceLock};

use prost::Message;
use timon_proto::mvccpb::Event;

/// `WatchResponse.events`' field number.
const EVENTS_FIELD: u32 = 11;

/// One revision's events, shared by the watchers that want all of them.
pub struct SharedEvents {
    events: Vec<Event>,
    /// The events as `WatchResponse` field 11 on the wire.
    encoded: OnceLock<Vec<u8>>,
    /// What [`Events::queued_len`] reports, computed once.
    queued_len: usize,
}

impl SharedEvents {
    pub fn new(events: Vec<Event>) -> Self {
        let queued_len = queued_len(&events);
        Self {
            events,
            encoded: OnceLock::new(),
            queued_len,
        }
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events' encoded size, as a stream's queue counts them.
    pub fn queued_len(&self) -> usize {
        self.queued_len
    }

    /// The events encoded as the repeated field 11 of a `WatchResponse`,
    /// exactly the bytes prost writes for them: a response is its other
    /// fields (numbers 1 to 7) followed by these.
    pub fn encoded(&self) -> &[u8] {
        self.encoded.get_or_init(|| {
            let mut buf = Vec::with_capacity(self.queued_len + 8 * self.events.len());
            for ev in &self.events {
                prost::encoding::message::encode(EVENTS_FIELD, ev, &mut buf);
            }
            buf
        })
    }

    /// Whether [`SharedEvents::encoded`] was computed (for tests).
    #[cfg(test)]
    pub fn is_encoded(&self) -> bool {
        self.encoded.get().is_some()
    }
}

impl fmt::Debug for SharedEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedEvents")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// How a stream's queue counts events: their encoded sizes.
fn queued_len(events: &[Event]) -> usize {
    events.iter().map(Message::encoded_len).sum()
}

/// A delivery's events, in revision order, without prev_kv.
#[derive(Debug, Clone)]
pub enum Events {
    /// This watcher's own: a part of a revision (a filter, a narrower
    /// range), or a catch-up read from storage.
    Own(Vec<Event>),
    /// Every event of one revision, shared with other watchers.
    Shared(Arc<SharedEvents>),
}

impl Events {
    pub fn as_slice(&self) -> &[Event] {
        match self {
            Events::Own(v) => v,
            Events::Shared(s) => s.events(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The events as this watcher's own (a copy when they are shared).
    pub fn into_vec(self) -> Vec<Event> {
        match self {
            Events::Own(v) => v,
            Events::Shared(s) => s.events().to_vec(),
        }
    }

    /// The events' encoded size, as a stream's queue counts them.
    pub fn queued_len(&self) -> usize {
        match self {
            Events::Own(v) => queued_len(v),
            Events::Shared(s) => s.queued_len,
        }
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::Own(Vec::new())
    }
}

impl From<Vec<Event>> for Events {
    fn from(events: Vec<Event>) -> Self {
        Events::Own(events)
    }
}

/// Equal when the events are, shared or not.
impl PartialEq for Events {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
