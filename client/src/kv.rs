//! Get, put and delete: plain request builders (usable as txn operations)
//! and their client-bound, awaitable twins.
//!
//! Option semantics follow etcd's Go client (clientv3) so that the same
//! calls produce the same wire requests: `prefix()` on an empty key means
//! "every key", `from_key()` on an empty key starts at `"\0"`.

use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use timon_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest as PbPutRequest, PutResponse, RangeRequest, RangeResponse,
};

use crate::client::Client;
use crate::retry::{self, Kind};

/// The `range_end` that etcd reads as "to the end of the keyspace".
const ALL_KEYS_END: &[u8] = b"\0";

/// The smallest key greater than every key starting with `prefix`; `"\0"`
/// (meaning "to the end") when no such key exists (all bytes are 0xff).
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    ALL_KEYS_END.to_vec()
}

/// Key and range end for "every key starting with `key`".
pub(crate) fn prefix_range(key: &mut Vec<u8>) -> Vec<u8> {
    if key.is_empty() {
        key.push(0);
        ALL_KEYS_END.to_vec()
    } else {
        prefix_range_end(key)
    }
}

/// Key and range end for "every key >= `key`".
pub(crate) fn from_key_range(key: &mut Vec<u8>) -> Vec<u8> {
    if key.is_empty() {
        key.push(0);
    }
    ALL_KEYS_END.to_vec()
}

/// A Range request under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GetRequest(RangeRequest);

impl GetRequest {
    /// Reads one key (or a range, with the options below).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        GetRequest(RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        })
    }

    /// Reads `[key, end)`.
    pub fn range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.0.range_end = end.into();
        self
    }

    /// Reads every key starting with the key.
    pub fn prefix(mut self) -> Self {
        self.0.range_end = prefix_range(&mut self.0.key);
        self
    }

    /// Reads every key greater than or equal to the key.
    pub fn from_key(mut self) -> Self {
        self.0.range_end = from_key_range(&mut self.0.key);
        self
    }

    /// Returns at most `limit` keys (0 means no limit).
    pub fn limit(mut self, limit: i64) -> Self {
        self.0.limit = limit;
        self
    }

    /// Reads at this store revision instead of the latest.
    pub fn revision(mut self, revision: i64) -> Self {
        self.0.revision = revision;
        self
    }

    /// Leaves values out of the response.
    pub fn keys_only(mut self) -> Self {
        self.0.keys_only = true;
        self
    }

    /// Returns only the count of matching keys.
    pub fn count_only(mut self) -> Self {
        self.0.count_only = true;
        self
    }

    /// Serves the read from the contacted member's local state, without
    /// a linearizability round trip.
    pub fn serializable(mut self) -> Self {
        self.0.serializable = true;
        self
    }

    /// Sorts the result. Ascending by key is what the server returns anyway,
    /// so (like clientv3) it is sent as "no sort": an explicit sort makes the
    /// server read the whole range before applying the limit.
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        let order = if target == SortTarget::Key && order == SortOrder::Ascend {
            SortOrder::None
        } else {
            order
        };
        self.0.sort_target = target as i32;
        self.0.sort_order = order as i32;
        self
    }

    /// Only keys whose mod revision is >= `revision`.
    pub fn min_mod_revision(mut self, revision: i64) -> Self {
        self.0.min_mod_revision = revision;
        self
    }

    /// Only keys whose mod revision is <= `revision`.
    pub fn max_mod_revision(mut self, revision: i64) -> Self {
        self.0.max_mod_revision = revision;
        self
    }

    /// Only keys whose create revision is >= `revision`.
    pub fn min_create_revision(mut self, revision: i64) -> Self {
        self.0.min_create_revision = revision;
        self
    }

    /// Only keys whose create revision is <= `revision`.
    pub fn max_create_revision(mut self, revision: i64) -> Self {
        self.0.max_create_revision = revision;
        self
    }

    /// The wire request.
    pub fn into_inner(self) -> RangeRequest {
        self.0
    }
}

/// A Put request under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutRequest(PbPutRequest);

impl PutRequest {
    /// Stores `value` under `key`.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        PutRequest(PbPutRequest {
            key: key.into(),
            value: value.into(),
            ..PbPutRequest::default()
        })
    }

    /// Attaches the key to a lease.
    pub fn lease(mut self, lease: i64) -> Self {
        self.0.lease = lease;
        self
    }

    /// Returns the key-value pair as it was before this put.
    pub fn prev_kv(mut self) -> Self {
        self.0.prev_kv = true;
        self
    }

    /// Keeps the current value (the key must exist).
    pub fn ignore_value(mut self) -> Self {
        self.0.ignore_value = true;
        self
    }

    /// Keeps the current lease (the key must exist).
    pub fn ignore_lease(mut self) -> Self {
        self.0.ignore_lease = true;
        self
    }

    /// The wire request.
    pub fn into_inner(self) -> PbPutRequest {
        self.0
    }
}

/// A DeleteRange request under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteRequest(DeleteRangeRequest);

impl DeleteRequest {
    /// Deletes one key (or a range, with the options below).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        DeleteRequest(DeleteRangeRequest {
            key: key.into(),
            ..DeleteRangeRequest::default()
        })
    }

    /// Deletes `[key, end)`.
    pub fn range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.0.range_end = end.into();
        self
    }

    /// Deletes every key starting with the key.
    pub fn prefix(mut self) -> Self {
        self.0.range_end = prefix_range(&mut self.0.key);
        self
    }

    /// Deletes every key greater than or equal to the key.
    pub fn from_key(mut self) -> Self {
        self.0.range_end = from_key_range(&mut self.0.key);
        self
    }

    /// Returns the deleted key-value pairs.
    pub fn prev_kv(mut self) -> Self {
        self.0.prev_kv = true;
        self
    }

    /// The wire request.
    pub fn into_inner(self) -> DeleteRangeRequest {
        self.0
    }
}

/// An awaitable Range request; see [`GetRequest`] for the options.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until awaited"]
pub struct Get {
    client: Client,
    request: GetRequest,
}

forward_options!(Get.request {
    /// See [`GetRequest::range_end`].
    fn range_end(end: impl Into<Vec<u8>>);
    /// See [`GetRequest::prefix`].
    fn prefix();
    /// See [`GetRequest::from_key`].
    fn from_key();
    /// See [`GetRequest::limit`].
    fn limit(limit: i64);
    /// See [`GetRequest::revision`].
    fn revision(revision: i64);
    /// See [`GetRequest::keys_only`].
    fn keys_only();
    /// See [`GetRequest::count_only`].
    fn count_only();
    /// See [`GetRequest::serializable`].
    fn serializable();
    /// See [`GetRequest::sort`].
    fn sort(target: SortTarget, order: SortOrder);
    /// See [`GetRequest::min_mod_revision`].
    fn min_mod_revision(revision: i64);
    /// See [`GetRequest::max_mod_revision`].
    fn max_mod_revision(revision: i64);
    /// See [`GetRequest::min_create_revision`].
    fn min_create_revision(revision: i64);
    /// See [`GetRequest::max_create_revision`].
    fn max_create_revision(revision: i64);
});

await_as!(Get => RangeResponse, |this| async move {
    let request = this.request.into_inner();
    let needs_leader = !request.serializable;
    this.client
        .call(Kind::Read, |channel| {
            let request = retry::request(request.clone(), needs_leader);
            async move { KvClient::new(channel).range(request).await }
        })
        .await
});

/// An awaitable Put request; see [`PutRequest`] for the options.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until awaited"]
pub struct Put {
    client: Client,
    request: PutRequest,
}

forward_options!(Put.request {
    /// See [`PutRequest::lease`].
    fn lease(lease: i64);
    /// See [`PutRequest::prev_kv`].
    fn prev_kv();
    /// See [`PutRequest::ignore_value`].
    fn ignore_value();
    /// See [`PutRequest::ignore_lease`].
    fn ignore_lease();
});

await_as!(Put => PutResponse, |this| async move {
    let request = this.request.into_inner();
    this.client
        .call(Kind::Write, |channel| {
            let request = retry::request(request.clone(), true);
            async move { KvClient::new(channel).put(request).await }
        })
        .await
});

/// An awaitable DeleteRange request; see [`DeleteRequest`] for the options.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until awaited"]
pub struct Delete {
    client: Client,
    request: DeleteRequest,
}

forward_options!(Delete.request {
    /// See [`DeleteRequest::range_end`].
    fn range_end(end: impl Into<Vec<u8>>);
    /// See [`DeleteRequest::prefix`].
    fn prefix();
    /// See [`DeleteRequest::from_key`].
    fn from_key();
    /// See [`DeleteRequest::prev_kv`].
    fn prev_kv();
});

await_as!(Delete => DeleteRangeResponse, |this| async move {
    let request = this.request.into_inner();
    this.client
        .call(Kind::Write, |channel| {
            let request = retry::request(request.clone(), true);
            async move { KvClient::new(channel).delete_range(request).await }
        })
        .await
});

impl Client {
    /// Reads `key`; chain options, then `.await`.
    pub fn get(&self, key: impl Into<Vec<u8>>) -> Get {
        self.get_request(GetRequest::new(key))
    }

    /// Sends a prepared [`GetRequest`].
    pub fn get_request(&self, request: GetRequest) -> Get {
        Get {
            client: self.clone(),
            request,
        }
    }

    /// Writes `key = value`; chain options, then `.await`.
    pub fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Put {
        self.put_request(PutRequest::new(key, value))
    }

    /// Sends a prepared [`PutRequest`].
    pub fn put_request(&self, request: PutRequest) -> Put {
        Put {
            client: self.clone(),
            request,
        }
    }

    /// Deletes `key`; chain options, then `.await`.
    pub fn delete(&self, key: impl Into<Vec<u8>>) -> Delete {
        self.delete_request(DeleteRequest::new(key))
    }

    /// Sends a prepared [`DeleteRequest`].
    pub fn delete_request(&self, request: DeleteRequest) -> Delete {
        Delete {
            client: self.clone(),
            request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_below_ff() {
        assert_eq!(prefix_range_end(b"foo"), b"fop".to_vec());
        assert_eq!(prefix_range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0".to_vec());
    }

    #[test]
    fn empty_prefix_means_every_key() {
        let r = GetRequest::new("").prefix().into_inner();
        assert_eq!((r.key, r.range_end), (b"\0".to_vec(), b"\0".to_vec()));
    }

    #[test]
    fn from_key_on_empty_key_starts_at_nul() {
        let r = DeleteRequest::new("").from_key().into_inner();
        assert_eq!((r.key, r.range_end), (b"\0".to_vec(), b"\0".to_vec()));
        let r = GetRequest::new("k").from_key().into_inner();
        assert_eq!((r.key, r.range_end), (b"k".to_vec(), b"\0".to_vec()));
    }

    #[test]
    fn ascending_key_sort_is_sent_as_no_sort() {
        let r = GetRequest::new("k")
            .sort(SortTarget::Key, SortOrder::Ascend)
            .into_inner();
        assert_eq!(r.sort_order, SortOrder::None as i32);
        let r = GetRequest::new("k")
            .sort(SortTarget::Value, SortOrder::Ascend)
            .into_inner();
        assert_eq!(
            (r.sort_target, r.sort_order),
            (SortTarget::Value as i32, SortOrder::Ascend as i32)
        );
    }
}
