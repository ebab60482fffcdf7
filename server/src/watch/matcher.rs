//! Which events a watcher wants: its key range and its filters.

use timon_proto::mvccpb::event::EventType;
use timon_proto::mvccpb::Event;

use crate::mvcc::index::RangeEnd;

/// etcd's watch filters (WatchCreateRequest.FilterType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    NoPut,
    NoDelete,
}

pub(super) struct Interest {
    key: Vec<u8>,
    range_end: Vec<u8>,
    no_put: bool,
    no_delete: bool,
}

impl Interest {
    pub fn new(key: Vec<u8>, range_end: Vec<u8>, filters: Vec<Filter>) -> Self {
        Self {
            key,
            range_end,
            no_put: filters.contains(&Filter::NoPut),
            no_delete: filters.contains(&Filter::NoDelete),
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn range_end(&self) -> &[u8] {
        &self.range_end
    }

    fn covers(&self, key: &[u8]) -> bool {
        RangeEnd::from_raw(&self.range_end).contains(&self.key, key)
    }

    fn wants(&self, ev: &Event) -> bool {
        let filtered = if ev.r#type == EventType::Delete as i32 {
            self.no_delete
        } else {
            self.no_put
        };
        !filtered && ev.kv.as_ref().is_some_and(|kv| self.covers(&kv.key))
    }

    /// Whether this watcher wants every one of `events` (a revision's, or
    /// a catch-up read of its own range).
    pub fn wants_all(&self, events: &[Event]) -> bool {
        events.iter().all(|ev| self.wants(ev))
    }

    /// The events of one revision this watcher wants, in order.
    pub fn select(&self, events: &[Event]) -> Vec<Event> {
        events.iter().filter(|ev| self.wants(ev)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::mvccpb::KeyValue;

    fn put(key: &[u8]) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: key.to_vec(),
                create_revision: 1,
                mod_revision: 1,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    fn del(key: &[u8]) -> Event {
        Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue {
                key: key.to_vec(),
                mod_revision: 2,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn ranges_follow_etcds_range_end_convention() {
        let evs = [put(b"a"), put(b"ab"), put(b"b"), put(b"c")];
        let keys = |i: &Interest| -> Vec<Vec<u8>> { i.select(&evs).into_iter().map(|e| e.kv.unwrap().key).collect() };
        assert_eq!(keys(&Interest::new(b"a".to_vec(), vec![], vec![])), vec![b"a".to_vec()]);
        assert_eq!(keys(&Interest::new(b"ab".to_vec(), vec![0], vec![])).len(), 3);
        assert_eq!(keys(&Interest::new(b"a".to_vec(), b"b".to_vec(), vec![])).len(), 2);
    }

    #[test]
    fn filters_drop_puts_or_deletes() {
        let evs = [put(b"a"), del(b"a")];
        let no_put = Interest::new(b"a".to_vec(), vec![], vec![Filter::NoPut]);
        assert_eq!(no_put.select(&evs), vec![del(b"a")]);
        let no_del = Interest::new(b"a".to_vec(), vec![], vec![Filter::NoDelete]);
        assert_eq!(no_del.select(&evs), vec![put(b"a")]);
    }
}
