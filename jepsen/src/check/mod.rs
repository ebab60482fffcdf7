//! Checkers: each reads a history and says whether it is explained by a
//! correct system.
//!
//! - `ops`: pairs invocations with completions (the view every checker reads).
//! - `register`: the sequential model of one key (value, mod_revision).
//! - `linearizable`: per-key linearizability of reads, writes and cas.
//! - `unknown`: how long each `Info` op of a key may still take effect.
//! - `revisions`: revisions unique and rising with real time, across keys.
//! - `watch`: recorded watch streams against the acknowledged writes and
//!   against each other.
//! - `list`: paginated lists are snapshots of the writes at their revision.
//! - `lock`: lock holds exclusive and fencing revisions rising (the lock
//!   workload).
//! - `lease`: leased keys live exactly as long as their leases (the lease
//!   workload).
//! - `auth`: no read or write succeeded while its role certainly lacked the
//!   permission (the auth workload).
//!
//! `check_all` runs them all and returns one `Verdict` per checker.

pub mod auth;
pub mod lease;
pub mod linearizable;
pub mod list;
pub mod lock;
pub mod ops;
pub mod register;
pub mod revisions;
pub mod unknown;
pub mod watch;

#[cfg(test)]
mod linearizable_tests;
pub mod testgen;

use crate::history::History;
use watch::RecordedWatch;

/// Whether a history is explained by a correct system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    Valid,
    Invalid,
    /// The checker could not decide (search budget exceeded, malformed history).
    Unknown,
}

/// One checker's conclusion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub valid: Validity,
    pub checker: &'static str,
    /// What was checked, or for `Invalid`/`Unknown` why, naming keys,
    /// revisions and operations.
    pub details: String,
}

/// Runs every checker with default limits.
pub fn check_all(history: &History, watches: &[RecordedWatch]) -> Vec<Verdict> {
    let ops = match ops::operations(history) {
        Ok(ops) => ops,
        Err(e) => {
            let details = format!("malformed history: {e}");
            return ["linearizable", "revisions", "watch"]
                .into_iter()
                .map(|checker| Verdict {
                    valid: Validity::Unknown,
                    checker,
                    details: details.clone(),
                })
                .collect();
        }
    };
    let lin = linearizable::check(&ops, &linearizable::Config::default());
    let lin_details = match lin.valid {
        Validity::Valid => {
            let states: usize = lin.keys.iter().map(|k| k.states).sum();
            format!(
                "{} keys linearizable ({states} configurations searched)",
                lin.keys.len()
            )
        }
        _ => lin
            .keys
            .iter()
            .filter_map(|k| k.explanation.as_deref())
            .collect::<Vec<_>>()
            .join(""),
    };
    vec![
        Verdict {
            valid: lin.valid,
            checker: "linearizable",
            details: lin_details,
        },
        revisions::check(&ops).into_verdict("revisions"),
        watch::check(&ops, watches).into_verdict("watch"),
    ]
}

/// A checker's list of violations, as a verdict.
#[derive(Debug, Clone, Default)]
pub struct Violations {
    /// What was checked, for a valid verdict.
    pub summary: String,
    pub found: Vec<String>,
}

impl Violations {
    /// Violations shown in a verdict; the rest are counted.
    const SHOW: usize = 20;

    pub fn into_verdict(self, checker: &'static str) -> Verdict {
        if self.found.is_empty() {
            return Verdict {
                valid: Validity::Valid,
                checker,
                details: self.summary,
            };
        }
        let mut details: Vec<String> = self.found.iter().take(Self::SHOW).cloned().collect();
        if self.found.len() > Self::SHOW {
            details.push(format!("... and {} more", self.found.len() - Self::SHOW));
        }
        Verdict {
            valid: Validity::Invalid,
            checker,
            details: details.join("\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testgen::*;
    use super::*;

    #[test]
    fn check_all_gives_one_verdict_per_checker() {
        let h = vec![
            inv(1, 0, write("a", 1)),
            ok(1, 1, write("a", 1), Some(2)),
            inv(1, 2, read0("a")),
            ok(1, 3, read("a", Some(1), Some(2)), Some(2)),
        ];
        let v = check_all(&h, &[]);
        let names: Vec<_> = v.iter().map(|v| (v.checker, v.valid)).collect();
        assert_eq!(
            names,
            [
                ("linearizable", Validity::Valid),
                ("revisions", Validity::Valid),
                ("watch", Validity::Valid)
            ]
        );
        let mut stale = h.clone();
        stale[3].op = read("a", None, None);
        let v = check_all(&stale, &[]);
        assert_eq!(v[0].valid, Validity::Invalid);
        println!("{}", v[0].details);
        let v = check_all(&h[1..].to_vec(), &[]);
        assert!(v
            .iter()
            .all(|v| v.valid == Validity::Unknown && v.details.contains("malformed")));
    }
}
