//! A watch stream's queue: bounded in entries and in bytes, so a stream
//! that does not read holds at most `max_bytes` of events (plus one
//! delivery, so a single large revision can always go out).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Outbound;

/// The hub's and the stream's sending side.
#[derive(Clone)]
pub struct Queue {
    /// Each item with its size, counted once.
    tx: mpsc::Sender<(Outbound, usize)>,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The stream's receiving side.
pub struct QueueReceiver {
    rx: mpsc::Receiver<(Outbound, usize)>,
    bytes: Arc<AtomicUsize>,
}

/// A queue of at most `max_items` entries and about `max_bytes` of events.
pub fn queue(max_items: usize, max_bytes: usize) -> (Queue, QueueReceiver) {
    let (tx, rx) = mpsc::channel(max_items);
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        Queue {
            tx,
            bytes: bytes.clone(),
            max_bytes,
        },
        QueueReceiver { rx, bytes },
    )
}

fn size(o: &Outbound) -> usize {
    match o {
        Outbound::Delivery(d) => d.events.queued_len(),
        Outbound::Control(_) => 0,
    }
}

impl Queue {
    /// Queues `o` unless the queue is full (in entries or bytes) or closed.
    pub fn try_send(&self, o: Outbound) -> Result<(), TrySendError<Outbound>> {
        let n = size(&o);
        let before = self.bytes.fetch_add(n, Ordering::AcqRel);
        if before > 0 && before + n > self.max_bytes {
            self.bytes.fetch_sub(n, Ordering::AcqRel);
            return Err(TrySendError::Full(o));
        }
        self.tx.try_send((o, n)).map_err(|e| {
            self.bytes.fetch_sub(n, Ordering::AcqRel);
            match e {
                TrySendError::Full((o, _)) => TrySendError::Full(o),
                TrySendError::Closed((o, _)) => TrySendError::Closed(o),
            }
        })
    }

    /// Queues a control answer, waiting for room.
    pub async fn send(&self, o: Outbound) -> Result<(), mpsc::error::SendError<Outbound>> {
        let n = size(&o);
        self.bytes.fetch_add(n, Ordering::AcqRel);
        self.tx.send((o, n)).await.map_err(|e| {
            self.bytes.fetch_sub(n, Ordering::AcqRel);
            mpsc::error::SendError(e.0 .0)
        })
    }

    /// Whether a delivery could be queued now.
    pub fn has_room(&self) -> bool {
        self.tx.capacity() > 0 && self.bytes.load(Ordering::Acquire) < self.max_bytes
    }

    /// How many bytes of events still fit (a delivery into an empty queue
    /// always fits, whatever its size).
    pub fn room_bytes(&self) -> usize {
        self.max_bytes.saturating_sub(self.bytes.load(Ordering::Acquire))
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the receiving side is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

impl QueueReceiver {
    pub async fn recv(&mut self) -> Option<Outbound> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Outbound>> {
        self.rx.poll_recv(cx).map(|o| {
            o.map(|(o, n)| {
                self.bytes.fetch_sub(n, Ordering::AcqRel);
                o
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Delivery;
    use timon_proto::mvccpb::{Event, KeyValue};

    fn delivery(bytes: usize) -> Outbound {
        Outbound::Delivery(Delivery {
            watch_id: 0,
            events: vec![Event {
                kv: Some(KeyValue {
                    value: vec![0; bytes],
                    ..Default::default()
                }),
                ..Default::default()
            }]
            .into(),
            revision: 1,
            compact_revision: 0,
        })
    }

    #[tokio::test]
    async fn bounded_in_bytes_but_one_large_delivery_always_fits() {
        let (q, mut rx) = queue(100, 1000);
        assert!(q.try_send(delivery(5000)).is_ok(), "an empty queue takes anything");
        assert!(matches!(q.try_send(delivery(10)), Err(TrySendError::Full(_))));
        assert!(!q.has_room());
        rx.recv().await.unwrap();
        assert!(q.has_room());
        assert!(q.try_send(delivery(400)).is_ok());
        assert!(q.try_send(delivery(400)).is_ok());
        assert!(matches!(q.try_send(delivery(400)), Err(TrySendError::Full(_))));
    }
}
