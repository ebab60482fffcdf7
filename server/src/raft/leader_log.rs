//! Leader changes in etcd's words: the lines etcd's raft library logs
//! (`raft/node.go`, `raft/raft.go`; `"logger":"raft"` in etcd 3.5), which
//! operators alert on:
//! - `<id> became leader at term <t>`, `<id> became candidate at term <t>`,
//!   `<id> became follower at term <t>` when this member's role changes;
//! - `raft.node: <id> elected leader <leader> at term <t>` when a member
//!   without a leader learns one;
//! - `raft.node: <id> changed leader from <old> to <new> at term <t>`;
//! - `raft.node: <id> lost leader <old> at term <t>`.
//!
//! IDs in hex, as etcd prints them. The lines come from openraft's metrics,
//! which every role change and term change updates. The same changes count
//! `etcd_server_leader_changes_seen_total` as etcd counts it (`etcdserver/
//! raft.go`: a leader that is not the last one known; losing one is not a
//! change).

use openraft::ServerState;

use super::types;
use crate::logs::zap::RAFT_TARGET;

/// What the lines are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    state: ServerState,
    leader: Option<u64>,
    term: u64,
}

/// The lines a change from `old` to `new` logs on member `id`.
fn lines(id: u64, old: Seen, new: Seen) -> Vec<String> {
    let term = new.term;
    let mut out = Vec::new();
    if new.state != old.state || (new.term != old.term && new.state == ServerState::Candidate) {
        match new.state {
            ServerState::Leader => out.push(format!("{id:x} became leader at term {term}")),
            ServerState::Candidate => out.push(format!("{id:x} became candidate at term {term}")),
            ServerState::Follower => out.push(format!("{id:x} became follower at term {term}")),
            ServerState::Learner | ServerState::Shutdown => {}
        }
    }
    match (old.leader, new.leader) {
        (None, Some(l)) => out.push(format!("raft.node: {id:x} elected leader {l:x} at term {term}")),
        (Some(o), Some(l)) if o != l => out.push(format!(
            "raft.node: {id:x} changed leader from {o:x} to {l:x} at term {term}"
        )),
        (Some(o), None) => out.push(format!("raft.node: {id:x} lost leader {o:x} at term {term}")),
        _ => {}
    }
    out
}

/// Whether etcd counts the step from `old` to `new` in
/// `etcd_server_leader_changes_seen_total`: a leader learned that is not the
/// last one this member knew (none counts as known, so a leader lost and
/// found again counts).
fn is_leader_change(old: Seen, new: Seen) -> bool {
    new.leader.is_some() && new.leader != old.leader
}

/// Logs this member's leader changes until raft stops.
pub fn spawn(raft: &types::Raft, id: u64) {
    let mut rx = raft.metrics();
    tokio::spawn(async move {
        let seen = |m: &openraft::RaftMetrics<u64, types::Member>| Seen {
            state: m.state,
            leader: m.current_leader,
            term: m.current_term,
        };
        let mut last = Seen {
            state: ServerState::Follower,
            leader: None,
            term: 0,
        };
        loop {
            let now = seen(&*rx.borrow_and_update());
            for line in lines(id, last, now) {
                tracing::info!(target: RAFT_TARGET, "{line}");
            }
            if is_leader_change(last, now) {
                crate::disk_metrics::METRICS.leader_changes.inc();
            }
            last = now;
            if now.state == ServerState::Shutdown || rx.changed().await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(state: ServerState, leader: Option<u64>, term: u64) -> Seen {
        Seen { state, leader, term }
    }

    #[test]
    fn elections_and_leader_changes_are_etcds_raft_lines() {
        let f = ServerState::Follower;
        assert_eq!(
            lines(0xa, at(f, None, 1), at(ServerState::Candidate, None, 2)),
            ["a became candidate at term 2"]
        );
        assert_eq!(
            lines(
                0xa,
                at(ServerState::Candidate, None, 2),
                at(ServerState::Leader, Some(0xa), 2)
            ),
            ["a became leader at term 2", "raft.node: a elected leader a at term 2"]
        );
        assert_eq!(
            lines(0xb, at(f, Some(0xa), 2), at(f, None, 3)),
            ["raft.node: b lost leader a at term 3"]
        );
        assert_eq!(
            lines(0xb, at(f, Some(0xa), 2), at(f, Some(0xc), 3)),
            ["raft.node: b changed leader from a to c at term 3"]
        );
        assert_eq!(
            lines(0xa, at(ServerState::Leader, Some(0xa), 2), at(f, Some(0xc), 3)),
            [
                "a became follower at term 3",
                "raft.node: a changed leader from a to c at term 3"
            ]
        );
        assert!(lines(0xb, at(f, Some(0xa), 2), at(f, Some(0xa), 2)).is_empty());
    }

    #[test]
    fn a_leader_learned_counts_a_leader_lost_does_not() {
        let f = ServerState::Follower;
        let change = |old, new| is_leader_change(at(f, old, 2), at(f, new, 3));
        assert!(change(None, Some(0xa)));
        assert!(change(Some(0xa), Some(0xc)));
        assert!(!change(Some(0xa), None));
        assert!(!change(Some(0xa), Some(0xa)));
        assert!(!change(None, None));
    }
}
