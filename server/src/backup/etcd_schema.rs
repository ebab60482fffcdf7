//! etcd's backend schema: the bucket names and the encodings of the values
//! timon exchanges with etcd (`mvcc/kvstore.go`, `mvcc/revision.go`,
//! `lease/lessor.go`, `auth/store.go`, `etcdserver/api/membership/store.go`
//! in etcd 3.4; `term` is 3.5's). The `key` bucket's layout is timon's own
//! [`Cf::Kv`](crate::storage::Cf::Kv) layout, byte for byte.

/// Every bucket etcd 3.4-3.6 creates, in bbolt's (byte) order.
pub const BUCKETS: [&[u8]; 10] = [
    ALARM,
    AUTH,
    AUTH_ROLES,
    AUTH_USERS,
    CLUSTER,
    KEY,
    LEASE,
    MEMBERS,
    MEMBERS_REMOVED,
    META,
];

pub const ALARM: &[u8] = b"alarm";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_ROLES: &[u8] = b"authRoles";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const CLUSTER: &[u8] = b"cluster";
pub const KEY: &[u8] = b"key";
pub const LEASE: &[u8] = b"lease";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const META: &[u8] = b"meta";

/// Keys of the `meta` bucket.
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
pub const TERM: &[u8] = b"term";

/// Keys of the `auth` bucket.
pub const AUTH_ENABLED: &[u8] = b"authEnabled";
pub const AUTH_REVISION: &[u8] = b"authRevision";

/// etcd's `leasepb.Lease`, the value of the `lease` bucket (keyed by the
/// lease ID as 8 big-endian bytes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Lease {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// The main revision of an encoded revision (`finishedCompactRev` and the
/// `key` bucket's keys); `None` when too short.
pub fn main_revision(bytes: &[u8]) -> Option<i64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?) as i64)
}
