//! timon patch (stale replication error): tests of `update_progress` with an
//! error response, see TIMON-PATCH.md.

use std::sync::Arc;

use maplit::btreeset;

use crate::engine::testing::UTConfig;
use crate::engine::Engine;
use crate::progress::Inflight;
use crate::progress::Progress;
use crate::replication::request_id::RequestId;
use crate::testing::log_id;
use crate::utime::UTime;
use crate::EffectiveMembership;
use crate::Membership;
use crate::MembershipState;
use crate::TokioInstant;
use crate::Vote;

/// Node 1, leader of voters {1, 2, 3}, with logs up to index 4.
fn leader() -> Engine<UTConfig> {
    let mut eng = Engine::default();
    eng.state.enable_validation(false); // Disable validation for incomplete state

    eng.config.id = 1;
    eng.state.vote = UTime::new(TokioInstant::now(), Vote::new_committed(2, 1));
    let m123 = Membership::<u64, ()>::new(vec![btreeset! {1,2,3}], None);
    eng.state.membership_state = MembershipState::new(
        Arc::new(EffectiveMembership::new(Some(log_id(1, 1, 1)), m123.clone())),
        Arc::new(EffectiveMembership::new(Some(log_id(1, 1, 1)), m123)),
    );
    eng.state.log_ids = crate::engine::LogIdList::new([log_id(1, 1, 1), log_id(2, 1, 4)]);
    eng.testing_new_leader();
    eng.output.take_commands();
    eng
}

/// Sets inflight request `id` to node 3.
fn send_to_3(eng: &mut Engine<UTConfig>, id: u64) -> u64 {
    let mut rh = eng.replication_handler();
    let p = rh.leader.progress.get_mut(&3).unwrap();
    p.inflight = Inflight::logs(Some(log_id(1, 1, 1)), Some(log_id(2, 1, 4))).with_id(id);
    id
}

fn inflight_to_3(eng: &mut Engine<UTConfig>) -> Inflight<u64> {
    eng.replication_handler().leader.progress.get(&3).inflight.clone()
}

/// Two AppendEntries to node 3 fail in a row and the error of the first
/// arrives after the second was sent: the stale error leaves the current
/// inflight request alone (unpatched 0.9.25 panics on a debug assertion here,
/// or resets the inflight in release).
#[test]
fn test_update_progress_ignores_stale_error() -> anyhow::Result<()> {
    let mut eng = leader();
    let stale = send_to_3(&mut eng, 8);
    let current = send_to_3(&mut eng, 9);
    let before = inflight_to_3(&mut eng);

    eng.replication_handler().update_progress(
        3,
        RequestId::new_append_entries(stale),
        Err("connection refused".to_string()),
    );

    assert_eq!(before, inflight_to_3(&mut eng));
    assert_eq!(Some(current), inflight_to_3(&mut eng).get_id());
    Ok(())
}

/// The error of the current request still resets it, and the leader sends
/// the logs again as a new request.
#[test]
fn test_update_progress_error_of_current_request_resets_it() -> anyhow::Result<()> {
    let mut eng = leader();
    let current = send_to_3(&mut eng, 9);

    eng.replication_handler().update_progress(
        3,
        RequestId::new_append_entries(current),
        Err("connection refused".to_string()),
    );

    assert_ne!(Some(current), inflight_to_3(&mut eng).get_id());
    Ok(())
}
