//! timon patch: the policy's purge does not lower a purge asked for
//! through `Trigger::purge_log` that is still waiting.

use crate::engine::testing::UTConfig;
use crate::engine::Engine;
use crate::engine::LogIdList;
use crate::raft_state::LogStateReader;
use crate::testing::log_id;

fn eng() -> Engine<UTConfig> {
    let mut eng = Engine::default();
    eng.state.enable_validation(false); // Disable validation for incomplete state

    eng.state.log_ids = LogIdList::new(vec![log_id(0, 0, 0), log_id(1, 1, 1), log_id(1, 1, 20)]);
    eng.config.max_in_snapshot_log_to_keep = 10;
    eng.config.purge_batch_size = 1;
    eng.state.snapshot_meta.last_log_id = Some(log_id(1, 1, 18));
    eng
}

#[test]
fn test_a_waiting_purge_further_than_the_policy_is_kept() -> anyhow::Result<()> {
    let mut eng = eng();
    // Asked for up to 15, not yet carried out; the policy would say 8.
    eng.state.purge_upto = Some(log_id(1, 1, 15));

    eng.log_handler().schedule_policy_based_purge();

    assert_eq!(Some(&log_id(1, 1, 15)), eng.state.purge_upto());
    Ok(())
}

#[test]
fn test_the_policy_raises_a_purge_behind_it() -> anyhow::Result<()> {
    let mut eng = eng();
    eng.state.purge_upto = Some(log_id(1, 1, 3));

    eng.log_handler().schedule_policy_based_purge();

    assert_eq!(Some(&log_id(1, 1, 8)), eng.state.purge_upto());
    Ok(())
}
