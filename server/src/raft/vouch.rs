//! Senders this member's membership does not name yet, vouched for by its
//! peers.
//!
//! Peer admission (`service.rs`) refuses a sender missing from this
//! member's membership. But a member that lags knows only the
//! configurations in the log it has: one that joined replays the log from
//! its first entry (whose configuration names neither it nor any member
//! added since), one that was down while members were replaced restarts
//! with the configuration of the day it stopped. Its leader may have
//! joined after that configuration, and refused, it would never send the
//! entries that name it: the member would stay behind for ever (the
//! harness's `member-replace` nemesis found it: the second replacement
//! never caught up from the first one, now leader).
//!
//! So an unknown sender makes this member ask the peers it knows
//! (`ClusterInfo`, at most once per [`ASK_EVERY`]) which members the
//! cluster has; a sender one of them names is admitted from then on. A
//! stranger, whom no peer names, stays refused. etcd needs no such step:
//! its pipeline handler takes raft messages from any sender with the
//! cluster's ID (only removed members are refused), which also lets a
//! stranger with that ID act as a leader.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::network::{ask_cluster_info, PeerDialer};

/// How often the peers are asked at most.
pub const ASK_EVERY: Duration = Duration::from_secs(1);
/// How long one peer may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The members the peers named when last asked.
#[derive(Default)]
pub struct Vouched {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    members: HashSet<u64>,
    asked: Option<Instant>,
    asking: bool,
}

impl Vouched {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Whether a peer named `id` as a member when last asked.
    pub fn contains(&self, id: u64) -> bool {
        self.state.lock().expect("vouched lock").members.contains(&id)
    }

    /// Asks the members at `peer_urls` in the background which members
    /// cluster `cluster_id` has, unless that is under way or was asked
    /// within [`ASK_EVERY`]. The answers (of this cluster) replace what
    /// was vouched for before.
    pub fn ask(self: &Arc<Self>, dialer: PeerDialer, cluster_id: u64, peer_urls: Vec<String>) {
        {
            let mut state = self.state.lock().expect("vouched lock");
            if state.asking || state.asked.is_some_and(|at| at.elapsed() < ASK_EVERY) {
                return;
            }
            state.asking = true;
        }
        let vouched = self.clone();
        tokio::spawn(async move {
            let mut members = HashSet::new();
            for url in &peer_urls {
                if let Ok(info) = ask_cluster_info(&dialer, url, ANSWER_TIMEOUT).await {
                    if info.cluster_id == cluster_id {
                        members.extend(info.members.iter().map(|m| m.id));
                    }
                }
            }
            let mut state = vouched.state.lock().expect("vouched lock");
            state.members = members;
            state.asked = Some(Instant::now());
            state.asking = false;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nobody_is_vouched_for_when_no_peer_answers_and_asking_is_rate_limited() {
        let vouched = Vouched::new();
        // A port nothing listens on: the ask fails fast and vouches for no one.
        let url = "http://127.0.0.1:1".to_string();
        vouched.ask(PeerDialer::new(None), 7, vec![url.clone()]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while vouched.state.lock().unwrap().asking {
            assert!(Instant::now() < deadline, "the ask never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!vouched.contains(1));
        let asked = vouched.state.lock().unwrap().asked;
        assert!(asked.is_some());
        vouched.ask(PeerDialer::new(None), 7, vec![url]);
        assert!(!vouched.state.lock().unwrap().asking, "asked again within ASK_EVERY");
    }
}
