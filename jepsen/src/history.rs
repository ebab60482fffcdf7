//! A history: what clients asked and what they were told, in real time, as
//! Jepsen records it. Every operation appears twice: its invocation, then
//! its completion (`Ok`, `Fail` when it certainly did not happen, `Info`
//! when its outcome is unknown, e.g. a timeout). Checkers read histories;
//! workloads and clients write them.

use serde::{Deserialize, Serialize};

/// Which half of an operation an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// What an operation does, with its arguments and (on completion) result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Op {
    /// Read a key: the value (None: absent) and its mod_revision.
    Read {
        key: String,
        value: Option<u64>,
        mod_revision: Option<i64>,
    },
    /// Write a value (values are unique per history).
    Write { key: String, value: u64 },
    /// Compare-and-set on the key's mod_revision: write `value` if the key
    /// still has mod_revision `expect` (0: absent).
    Cas { key: String, expect: i64, value: u64 },
    /// Delete the key if it still has mod_revision `expect` (a guarded
    /// delete, as the Kubernetes apiserver's).
    Delete { key: String, expect: i64 },
    /// Lock `name` holding `lease` (the lock workload). The completion
    /// carries the lock key the server answered; its revision (the header
    /// revision) is the fencing token.
    Acquire {
        name: String,
        lease: i64,
        key: Option<String>,
    },
    /// Unlock `key` (an acquired lock key).
    Release { key: String },
    /// Write `value` to the lock workload's owner key only if the writer's
    /// lock key `lock` still exists (Txn: create_revision(lock) > 0).
    Fenced { lock: String, value: u64 },
    /// Grant a lease of `ttl` seconds; the completion carries its id.
    Grant { ttl: i64, lease: Option<i64> },
    /// Renew `lease` once; the completion carries the TTL the server
    /// answered (a TTL of 0 or less is recorded as a failure: not found).
    KeepAlive { lease: i64, ttl: Option<i64> },
    /// Revoke `lease`.
    Revoke { lease: i64 },
    /// Put `key` = `value` attached to `lease` (the lease workload; each
    /// of its keys is written once, by this op).
    LeasedPut { key: String, lease: i64, value: u64 },
    /// Read a key of the lease workload: its value, None when absent.
    LeasedRead { key: String, value: Option<u64> },
    /// Log in as `user` (the auth workload; the token is not recorded).
    Authenticate { user: String },
    /// Give `role` the permission `perm` on every key under `prefix`
    /// (RoleGrantPermission with range_end = the prefix's end). As in etcd,
    /// it replaces the role's permission of that exact range, if any.
    GrantPermission { role: String, prefix: String, perm: Perm },
    /// Remove `role`'s permission on exactly the range of `prefix`
    /// (RoleRevokePermission).
    RevokePermission { role: String, prefix: String },
    /// A linearizable Range by `user` (whose only role is `role`) of `key`,
    /// or of every key under `key` when `prefix`; the completion carries
    /// how many keys it found.
    AuthRead {
        user: String,
        role: String,
        key: String,
        prefix: bool,
        found: Option<u64>,
    },
    /// A Put of `key` = `value` by `user` (whose only role is `role`).
    AuthWrite {
        user: String,
        role: String,
        key: String,
        value: u64,
    },
    /// A nemesis action (kill, pause, partition, ...), for the timeline.
    Nemesis { action: String },
}

/// A key permission's type (etcd's `authpb.Permission.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Perm {
    Read,
    Write,
    Readwrite,
}

impl Perm {
    /// Whether a permission of this type allows `needed` (Read or Write):
    /// READWRITE allows both, as etcd's permission cache merges it into
    /// both the read and the write ranges.
    pub fn allows(self, needed: Perm) -> bool {
        self == Perm::Readwrite || self == needed
    }

    pub fn name(self) -> &'static str {
        match self {
            Perm::Read => "READ",
            Perm::Write => "WRITE",
            Perm::Readwrite => "READWRITE",
        }
    }
}

impl Op {
    /// Reads and writes of one key, the operations the register,
    /// linearizability and revision checkers model.
    pub fn is_register(&self) -> bool {
        matches!(
            self,
            Op::Read { .. } | Op::Write { .. } | Op::Cas { .. } | Op::Delete { .. }
        )
    }
}

/// One line of a history (history.jsonl).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The client (one outstanding operation at a time) or -1 for the nemesis.
    pub process: i64,
    pub kind: Kind,
    /// Nanoseconds since the run started, from a monotonic clock.
    pub time: u64,
    #[serde(flatten)]
    pub op: Op,
    /// The revision the server answered with (header revision), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Why it failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub type History = Vec<Entry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_as_json_lines() {
        let e = Entry {
            process: 3,
            kind: Kind::Ok,
            time: 42,
            op: Op::Cas {
                key: "k".into(),
                expect: 7,
                value: 9,
            },
            revision: Some(8),
            error: None,
        };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"process":3,"kind":"ok","time":42,"f":"cas","key":"k","expect":7,"value":9,"revision":8}"#
        );
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), e);
    }
}
