//! Column families and fixed meta keys: the on-disk layout in one place.

/// A column family. Each holds one kind of data so a scan of one never walks
/// another's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Raft log entries keyed by big-endian u64 index.
    RaftLog,
    /// Raft meta: vote, committed log id, last purged log id.
    RaftMeta,
    /// MVCC revisions: key = encoded revision, value = encoded mvccpb.KeyValue.
    Kv,
    /// State-machine meta: applied log id, membership, compaction progress.
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 4] = [Cf::RaftLog, Cf::RaftMeta, Cf::Kv, Cf::Meta];
    /// The state machine's column families: what etcd's backend file holds
    /// (its raft log is a separate WAL), so what dbSize and the quota count.
    pub const STATE: [Cf; 2] = [Cf::Kv, Cf::Meta];

    pub fn name(self) -> &'static str {
        match self {
            Cf::RaftLog => "raft_log",
            Cf::RaftMeta => "raft_meta",
            Cf::Kv => "kv",
            Cf::Meta => "meta",
        }
    }
}

/// The first key after every key starting with `prefix`: the end of a scan
/// over one of the prefixes below.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Keys in [`Cf::RaftMeta`].
pub mod raft_meta {
    pub const VOTE: &[u8] = b"vote";
    pub const COMMITTED: &[u8] = b"committed";
    pub const LAST_PURGED: &[u8] = b"last_purged";
    /// This member's ID and its cluster's ID, fixed when the data dir is
    /// first used. Local: never replicated, never in a snapshot.
    pub const IDENTITY: &[u8] = b"identity";
    /// The data dir's on-disk format version (u64, big-endian), written when
    /// the data dir is created (see `storage::format`). Local: never
    /// replicated, never in a snapshot.
    pub const FORMAT_VERSION: &[u8] = b"format_version";
}

/// Keys in [`Cf::Meta`].
pub mod meta {
    /// The raft log id of the last applied entry (written in the same batch
    /// as the entry's data).
    pub const APPLIED: &[u8] = b"applied";
    /// While a `Batch` entry is being applied: its log id and how many of
    /// its requests are applied (each is its own write), so a restart in
    /// the middle resumes after them instead of applying them twice.
    pub const APPLIED_PART: &[u8] = b"applied_part";
    /// The last membership config applied.
    pub const MEMBERSHIP: &[u8] = b"membership";
    /// The revision of the last compaction applied (i64, big-endian):
    /// reads below it are refused; storage may still hold what it drops
    /// until [`FINISHED_COMPACT_REV`] reaches it (etcd's
    /// `scheduledCompactRev`).
    pub const COMPACT_REV: &[u8] = b"compact_rev";
    /// The revision of the last compaction whose deletions are all written
    /// (i64, big-endian; etcd's `finishedCompactRev`). Missing in stores
    /// written before compaction ran in the background: there it equals
    /// [`COMPACT_REV`].
    pub const FINISHED_COMPACT_REV: &[u8] = b"finished_compact_rev";
    /// The current store revision (i64, big-endian); lets a restart keep the
    /// revision even when the latest revisions were compacted away.
    pub const CURRENT_REV: &[u8] = b"current_rev";
    /// Present (holding the snapshot's meta) while a snapshot install
    /// replaces the state machine; a member that finds it at start-up redoes
    /// the install from the snapshot file. Local: never in a snapshot.
    pub const INSTALLING: &[u8] = b"installing";
    /// Prefix of each member's published attributes (name, client URLs),
    /// followed by the member id as 8 big-endian bytes. Replicated.
    pub const MEMBER_ATTRS: &[u8] = b"member_attrs/";
    /// Prefix of the IDs of removed members (8 big-endian bytes each).
    /// Replicated.
    pub const REMOVED: &[u8] = b"removed/";
    /// Prefix of the lease table: the lease ID (i64 as 8 big-endian bytes)
    /// → its granted TTL in seconds (i64, big-endian). Replicated.
    pub const LEASE: &[u8] = b"lease/";
    /// Prefix of lease attachments: lease ID (8 big-endian bytes) followed
    /// by the attached key → empty. Replicated.
    pub const LEASE_KEY: &[u8] = b"lease_key/";
    /// The cluster id and this member's id.
    pub const CLUSTER: &[u8] = b"cluster";
    /// Whether auth is enabled: `[1]` or `[0]` (etcd's `authEnabled`);
    /// absent means disabled. Replicated.
    pub const AUTH_ENABLED: &[u8] = b"auth_enabled";
    /// The auth store's revision (u64, big-endian; etcd's `authRevision`),
    /// raised by every change of users, roles or the enabled flag.
    /// Replicated.
    pub const AUTH_REVISION: &[u8] = b"auth_revision";
    /// Prefix of the users: the user name → its `authpb.User`, protobuf
    /// encoded. Replicated.
    pub const AUTH_USER: &[u8] = b"auth_user/";
    /// Prefix of the roles: the role name → its `authpb.Role`, protobuf
    /// encoded. Replicated.
    pub const AUTH_ROLE: &[u8] = b"auth_role/";
    /// Prefix of the active alarms: the `AlarmMember`'s protobuf bytes
    /// (etcd's alarm bucket key) → empty. Replicated.
    pub const ALARM: &[u8] = b"alarm/";
}
