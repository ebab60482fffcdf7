//! timon patch: a target receiving a snapshot still gets heartbeats.

use std::sync::Arc;

use maplit::btreeset;

use crate::engine::testing::UTConfig;
use crate::engine::Command;
use crate::engine::Engine;
use crate::progress::Inflight;
use crate::progress::Progress;
use crate::testing::log_id;
use crate::utime::UTime;
use crate::EffectiveMembership;
use crate::Membership;
use crate::MembershipState;
use crate::TokioInstant;
use crate::Vote;

fn eng() -> Engine<UTConfig> {
    let mut eng = Engine::default();
    eng.state.enable_validation(false); // Disable validation for incomplete state

    eng.config.id = 1;
    eng.state.committed = Some(log_id(2, 1, 3));
    eng.state.vote = UTime::new(TokioInstant::now(), Vote::new_committed(3, 1));
    eng.state.log_ids.append(log_id(1, 1, 1));
    eng.state.log_ids.append(log_id(2, 1, 3));
    let m = Membership::<u64, ()>::new(vec![btreeset! {1,2,3}], None);
    eng.state.membership_state = MembershipState::new(
        Arc::new(EffectiveMembership::new(Some(log_id(1, 1, 1)), m.clone())),
        Arc::new(EffectiveMembership::new(Some(log_id(1, 1, 1)), m)),
    );
    eng.testing_new_leader();
    eng.state.server_state = eng.calc_server_state();

    eng
}

#[test]
fn test_a_target_receiving_a_snapshot_is_sent_heartbeats() -> anyhow::Result<()> {
    let mut eng = eng();
    {
        let l = eng.leader_handler()?;
        // 3 is being sent a snapshot.
        let _ = l.leader.progress.update_with(&3, |ent| {
            ent.inflight = Inflight::snapshot(Some(log_id(2, 1, 3))).with_id(5);
        });
    }
    eng.output.clear_commands();

    eng.leader_handler()?.send_heartbeat();

    let to_3: Vec<_> = eng
        .output
        .take_commands()
        .into_iter()
        .filter(|c| matches!(c, Command::Replicate { target: 3, .. }))
        .collect();
    // Without the patch: nothing for 3 until the snapshot is done.
    assert_eq!(
        vec![Command::Replicate {
            target: 3,
            req: Inflight::None,
        }],
        to_3
    );
    // The snapshot stays in flight.
    let l = eng.leader_handler()?;
    assert_eq!(
        &Inflight::snapshot(Some(log_id(2, 1, 3))).with_id(5),
        &l.leader.progress.get(&3).inflight
    );
    Ok(())
}
