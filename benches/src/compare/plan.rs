//! Which workloads the comparison runs, and with which options. Every step
//! starts from the shared options (`--clients`, `--total`, sizes, ...) and
//! adjusts what the targets ask for: a 1-client put, 1000 watchers,
//! kubernetes-sized lists.

use anyhow::bail;
use serde::Serialize;

use crate::options::Common;
use crate::workload::{Consistency, Workload};

/// One row of the comparison: a workload and the options both servers get.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub workload: Workload,
    pub options: Common,
    /// Which members the clients dial.
    pub to: Members,
}

/// Which members a step's clients dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Members {
    /// Every member (connection i to member i mod 3).
    All,
    /// The leader only.
    Leader,
    /// One follower only: its writes are forwarded to the leader.
    Follower,
}

/// Knobs of the plan that are not shared workload options.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Watchers of the watch step (spread over `streams`).
    pub watchers: usize,
    pub streams: usize,
    /// Objects under the listed prefix in k8s-list.
    pub list_objects: u64,
}

/// Every step name, in the order they run.
pub const ALL: &[&str] = &[
    "put",
    "put-1client",
    "put-1client-f",
    "range-l",
    "range-s",
    "txn-put",
    "k8s-update",
    "k8s-list",
    "watch",
    "lease-keepalive",
];

/// The steps named in `only` (all of [`ALL`] if empty), in [`ALL`]'s order.
pub fn plan(base: &Common, knobs: &Knobs, only: &[String]) -> anyhow::Result<Vec<Step>> {
    if let Some(unknown) = only.iter().find(|n| !ALL.contains(&n.as_str())) {
        bail!("unknown workload {unknown:?}; known: {}", ALL.join(", "));
    }
    let mut steps = Vec::new();
    for &name in ALL {
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        let mut o = base.clone();
        let mut to = Members::All;
        let workload = match name {
            "put" => Workload::Put,
            "put-1client" | "put-1client-f" => {
                // One client in a closed loop is slow: a tenth of the requests.
                // Its latency depends on whether the member it dials leads
                // (a follower adds a hop to the leader and back), so each
                // server is measured on the same role: the leader, then a
                // follower.
                o.clients = 1;
                o.conns = 1;
                o.total = (base.total / 10).max(1);
                to = if name == "put-1client" {
                    Members::Leader
                } else {
                    Members::Follower
                };
                Workload::Put
            }
            "range-l" => Workload::Range {
                consistency: Consistency::L,
            },
            "range-s" => Workload::Range {
                consistency: Consistency::S,
            },
            "txn-put" => Workload::TxnPut { txn_ops: 1 },
            "k8s-update" => Workload::K8sUpdate,
            "k8s-list" => {
                // A list reads every object: a hundredth of the requests, and
                // at most 10 lists in flight (an apiserver's relists are few).
                o.key_space_size = knobs.list_objects;
                o.total = (base.total / 100).max(1);
                o.clients = base.clients.min(10);
                Workload::K8sList { limit: 500 }
            }
            "watch" => {
                // Each put fans out to every watcher: a tenth of the puts.
                o.total = (base.total / 10).max(1);
                Workload::Watch {
                    watchers: knobs.watchers,
                    streams: knobs.streams.min(knobs.watchers).max(1),
                }
            }
            "lease-keepalive" => Workload::LeaseKeepalive,
            other => unreachable!("{other} is in ALL"),
        };
        steps.push(Step {
            name: name.to_string(),
            workload,
            options: o,
            to,
        });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: Common,
    }

    fn base() -> Common {
        let mut c = T::parse_from(["t"]).c;
        c.clients = 100;
        c.total = 1000;
        c
    }

    const KNOBS: Knobs = Knobs {
        watchers: 1000,
        streams: 10,
        list_objects: 5000,
    };

    #[test]
    fn all_steps_in_order_with_their_adjustments() {
        let steps = plan(&base(), &KNOBS, &[]).unwrap();
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ALL);
        for (one, to) in [(&steps[1], Members::Leader), (&steps[2], Members::Follower)] {
            assert_eq!((one.options.clients, one.options.total, one.to), (1, 100, to));
        }
        assert!(steps
            .iter()
            .filter(|s| !s.name.starts_with("put-1client"))
            .all(|s| s.to == Members::All));
        let list = steps.iter().find(|s| s.name == "k8s-list").unwrap();
        assert_eq!(
            (list.options.key_space_size, list.options.total, list.options.clients),
            (5000, 10, 10)
        );
    }

    #[test]
    fn filter_keeps_order_and_rejects_unknown_names() {
        let steps = plan(&base(), &KNOBS, &["watch".into(), "put".into()]).unwrap();
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["put", "watch"]);
        assert!(plan(&base(), &KNOBS, &["nope".into()]).is_err());
    }
}
