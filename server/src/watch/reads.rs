//! The catch-up reads of one pass of the sync task, shared by watchers.
//!
//! Watchers that fell behind together (the watchers of one stream whose
//! queue filled, or a thousand watchers of one prefix) need the same
//! changes: the same key range from the same revision to the same
//! revision. [`Reads`] keeps what one pass read, so each such range is read
//! from storage once per pass, turned into events once, and shared by the
//! others ([`SharedEvents`]: one copy, encoded once for all of them; etcd's
//! `syncWatchers` also reads once for all its unsynced watchers).

use std::collections::HashMap;
use std::sync::Arc;

use timon_proto::mvccpb::KeyValue;

use super::SharedEvents;
use crate::mvcc::{event_of, MvccError, ReadTxn, Revision};

/// A pass keeps at most this many bytes of reads for later watchers.
const KEPT_BYTES: usize = 64 << 20;

type Changes = Vec<(Revision, KeyValue)>;

/// What one read found: the changes as events, and the last revision
/// they cover.
struct Read {
    events: Arc<SharedEvents>,
    covered: i64,
}

#[derive(Default)]
pub(super) struct Reads {
    found: HashMap<(Vec<u8>, Vec<u8>, i64, i64), Read>,
    kept: usize,
}

impl Reads {
    /// `view.changes_between(key, end, from, until, room)`, from an earlier
    /// read of the same range when what it found fits in `room` (or is a
    /// single revision, which always goes out).
    pub fn changes_between(
        &mut self,
        view: &ReadTxn<'_>,
        key: &[u8],
        end: &[u8],
        from: i64,
        until: i64,
        room: usize,
    ) -> Result<(Arc<SharedEvents>, i64), MvccError> {
        self.shared(key, end, from, until, room, |room| {
            view.changes_between(key, end, from, until, room)
        })
    }

    /// [`Self::changes_between`] with the storage read given as `read`
    /// (called with the room when the range must be read).
    fn shared(
        &mut self,
        key: &[u8],
        end: &[u8],
        from: i64,
        until: i64,
        room: usize,
        read: impl FnOnce(usize) -> Result<(Changes, i64), MvccError>,
    ) -> Result<(Arc<SharedEvents>, i64), MvccError> {
        let id = (key.to_vec(), end.to_vec(), from, until);
        if let Some(found) = self.found.get(&id) {
            if found.events.queued_len() <= room || found.covered == from {
                return Ok((found.events.clone(), found.covered));
            }
        }
        let (changes, covered) = read(room)?;
        let events = Arc::new(SharedEvents::new(
            changes.into_iter().map(|(_, kv)| event_of(kv)).collect(),
        ));
        let bytes = events.queued_len();
        if self.kept + bytes <= KEPT_BYTES && !self.found.contains_key(&id) {
            self.kept += bytes;
            let found = Read {
                events: events.clone(),
                covered,
            };
            self.found.insert(id, found);
        }
        Ok((events, covered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use timon_proto::mvccpb::Event;

    /// What a read of `changes` hands out.
    fn events(changes: Changes) -> Vec<Event> {
        changes.into_iter().map(|(_, kv)| event_of(kv)).collect()
    }

    /// One change of `size` value bytes per revision, `from..=until`.
    fn changes(from: i64, until: i64, size: usize) -> Changes {
        (from..=until)
            .map(|rev| {
                let kv = KeyValue {
                    key: b"/k".to_vec(),
                    mod_revision: rev,
                    value: vec![b'v'; size],
                    ..Default::default()
                };
                (Revision { main: rev, sub: 0 }, kv)
            })
            .collect()
    }

    #[test]
    fn watchers_of_one_range_share_one_read() {
        let mut reads = Reads::default();
        let mut calls = 0;
        let mut first = None;
        for _ in 0..100 {
            let (got, covered) = reads
                .shared(b"/", b"0", 5, 9, 1 << 20, |_| {
                    calls += 1;
                    Ok((changes(5, 9, 10), 9))
                })
                .unwrap();
            assert_eq!((got.events(), covered), (&events(changes(5, 9, 10))[..], 9));
            let first = first.get_or_insert_with(|| got.clone());
            assert!(Arc::ptr_eq(first, &got), "one copy of the events");
        }
        assert_eq!(calls, 1, "one storage read for 100 watchers");
    }

    #[test]
    fn another_range_or_revision_is_read_again() {
        let mut reads = Reads::default();
        let mut calls = 0;
        let mut read = |key: &[u8], from: i64| {
            reads
                .shared(key, b"", from, 9, 1 << 20, |_| {
                    calls += 1;
                    Ok((changes(from, 9, 10), 9))
                })
                .unwrap()
        };
        read(b"/a", 5);
        read(b"/b", 5);
        read(b"/a", 6);
        read(b"/a", 5);
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_read_larger_than_the_room_left_is_done_again_with_that_room() {
        let mut reads = Reads::default();
        let big = changes(5, 9, 1000);
        let big_bytes: usize = events(big.clone()).iter().map(Message::encoded_len).sum();
        let (got, covered) = reads
            .shared(b"/", b"", 5, 9, 1 << 20, |_| Ok((big.clone(), 9)))
            .unwrap();
        assert_eq!((got.events().len(), covered), (5, 9));
        assert_eq!(got.queued_len(), big_bytes);
        // A watcher whose queue has less room left gets a read of its own,
        // made with its room.
        let mut asked = None;
        let (got, covered) = reads
            .shared(b"/", b"", 5, 9, big_bytes - 1, |room| {
                asked = Some(room);
                Ok((changes(5, 7, 1000), 7))
            })
            .unwrap();
        assert_eq!(asked, Some(big_bytes - 1));
        assert_eq!((got.events().len(), covered), (3, 7));
    }

    #[test]
    fn a_single_revision_is_shared_whatever_the_room() {
        let mut reads = Reads::default();
        let one = changes(5, 5, 1000);
        reads
            .shared(b"/", b"", 5, 9, 1 << 20, |_| Ok((one.clone(), 5)))
            .unwrap();
        let (got, covered) = reads.shared(b"/", b"", 5, 9, 10, |_| panic!("read again")).unwrap();
        assert_eq!((got.events(), covered), (&events(one)[..], 5));
    }
}
