//! timon patch (leadership transfer): `Engine::handle_transfer_leader` and the
//! vote request it lets through, see TIMON-PATCH.md.

use std::sync::Arc;

use maplit::btreeset;

use crate::core::ServerState;
use crate::engine::testing::UTConfig;
use crate::engine::Command;
use crate::engine::Engine;
use crate::engine::LogIdList;
use crate::raft::VoteRequest;
use crate::testing::log_id;
use crate::utime::UTime;
use crate::EffectiveMembership;
use crate::Membership;
use crate::TokioInstant;
use crate::Vote;

/// Node `id`, a follower of leader 1 (committed vote at term 2, lease fresh),
/// in voters {1, 2, 3}, with logs up to index 3.
fn follower(id: u64) -> Engine<UTConfig> {
    let mut eng = Engine::default();
    eng.state.enable_validation(false); // Disable validation for incomplete state

    eng.config.id = id;
    eng.state.vote = UTime::new(TokioInstant::now(), Vote::new_committed(2, 1));
    eng.state.server_state = ServerState::Follower;
    eng.state.log_ids = LogIdList::new(vec![log_id(1, 1, 1), log_id(2, 1, 3)]);
    let m123 = Membership::<u64, ()>::new(vec![btreeset! {1,2,3}], None);
    eng.state.membership_state.set_effective(Arc::new(EffectiveMembership::new(Some(log_id(1, 1, 1)), m123)));
    eng
}

fn vote_req_from_2() -> VoteRequest<u64> {
    VoteRequest {
        vote: Vote::new(3, 2),
        last_log_id: Some(log_id(2, 1, 3)),
    }
}

/// Without a transfer, the leader lease rejects node 2's vote request.
#[test]
fn test_vote_req_rejected_by_lease_without_transfer() -> anyhow::Result<()> {
    let mut eng = follower(3);
    let resp = eng.handle_vote_req(vote_req_from_2());
    assert!(!resp.vote_granted);
    assert_eq!(Vote::new_committed(2, 1), *eng.state.vote_ref());
    Ok(())
}

/// A voter told that leader 1 hands over to node 2 grants node 2's vote
/// request although the lease has not expired.
#[test]
fn test_transfer_leader_disables_lease() -> anyhow::Result<()> {
    let mut eng = follower(3);
    let elected = eng.handle_transfer_leader(&Vote::new_committed(2, 1), &2, Some(&log_id(2, 1, 3)));
    assert!(!elected);
    assert_eq!(0, eng.output.take_commands().len());

    let resp = eng.handle_vote_req(vote_req_from_2());
    assert!(resp.vote_granted);
    assert_eq!(Vote::new(3, 2), *eng.state.vote_ref());
    Ok(())
}

/// A transfer from another leader's vote changes nothing.
#[test]
fn test_transfer_leader_from_other_vote_is_ignored() -> anyhow::Result<()> {
    let mut eng = follower(3);
    let elected = eng.handle_transfer_leader(&Vote::new_committed(1, 1), &2, None);
    assert!(!elected);
    assert!(!eng.handle_vote_req(vote_req_from_2()).vote_granted);
    Ok(())
}

/// The transferee campaigns at once, at the next term.
#[test]
fn test_transfer_leader_transferee_elects() -> anyhow::Result<()> {
    let mut eng = follower(2);
    let elected = eng.handle_transfer_leader(&Vote::new_committed(2, 1), &2, Some(&log_id(2, 1, 3)));
    assert!(elected);
    assert_eq!(Vote::new(3, 2), *eng.state.vote_ref());
    assert_eq!(ServerState::Candidate, eng.state.server_state);
    let sends_vote = eng.output.take_commands().iter().any(|c| matches!(c, Command::SendVote { .. }));
    assert!(sends_vote);
    Ok(())
}

/// A transferee whose log is behind the leader's does not campaign.
#[test]
fn test_transfer_leader_transferee_behind_does_not_elect() -> anyhow::Result<()> {
    let mut eng = follower(2);
    let elected = eng.handle_transfer_leader(&Vote::new_committed(2, 1), &2, Some(&log_id(2, 1, 4)));
    assert!(!elected);
    assert_eq!(Vote::new_committed(2, 1), *eng.state.vote_ref());
    Ok(())
}
