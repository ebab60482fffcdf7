//! Fault windows: when each fault was on and what it did, read back from
//! the nemesis entries of a history (process -1). A window opens when the
//! fault is invoked and closes when the heal after it completes; a fault
//! still on when the history ends closes at the history's last entry.

use serde::Serialize;

use crate::history::{Entry, Kind, Op};

/// One fault, from injection to heal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Nanoseconds since the run started: the fault's invocation.
    pub start: u64,
    /// The heal's completion.
    pub end: u64,
    /// The nemesis (`kill-all`, `link-delay`, ...).
    pub nemesis: String,
    /// What it did (`kill -9 all members`), or why it could not.
    pub action: String,
    /// False when the injection failed (nothing, or not all of it, happened).
    pub injected: bool,
    /// Whether the heal after it reported success.
    pub healed: bool,
}

/// The windows of `history`, in time order.
pub fn windows(history: &[Entry]) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    let mut open: Option<Window> = None;
    let mut healing = false;
    for e in history.iter().filter(|e| e.process < 0) {
        let Op::Nemesis { action } = &e.op else { continue };
        match (e.kind, action == "heal") {
            (Kind::Invoke, true) => healing = true,
            (Kind::Invoke, false) => {
                open = Some(Window {
                    start: e.time,
                    end: e.time,
                    nemesis: action.clone(),
                    action: String::new(),
                    injected: false,
                    healed: false,
                });
            }
            (kind, false) => {
                if let Some(w) = open.as_mut() {
                    w.injected = kind == Kind::Ok;
                    w.action = match (&e.error, kind) {
                        (Some(err), Kind::Fail) => format!("failed: {err}"),
                        _ => action.clone(),
                    };
                }
            }
            (kind, true) => {
                if healing {
                    if let Some(mut w) = open.take() {
                        w.end = e.time;
                        w.healed = kind == Kind::Ok;
                        out.push(w);
                    }
                }
                healing = false;
            }
        }
    }
    if let Some(mut w) = open {
        w.end = history.last().map_or(w.start, |e| e.time);
        out.push(w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(kind: Kind, time: u64, action: &str, error: Option<&str>) -> Entry {
        Entry {
            process: -1,
            kind,
            time,
            op: Op::Nemesis {
                action: action.to_string(),
            },
            revision: None,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn a_window_spans_injection_to_heal() {
        let h = vec![
            n(Kind::Invoke, 10, "kill-all", None),
            n(Kind::Ok, 12, "kill -9 all members", None),
            n(Kind::Invoke, 50, "heal", None),
            n(Kind::Ok, 55, "heal", None),
            n(Kind::Invoke, 90, "kill-all", None),
            n(Kind::Fail, 91, "kill-all", Some("boom")),
        ];
        let w = windows(&h);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].start, w[0].end), (10, 55));
        assert_eq!(w[0].action, "kill -9 all members");
        assert!(w[0].injected && w[0].healed);
        // Never healed: closes at the last entry.
        assert_eq!((w[1].start, w[1].end), (90, 91));
        assert_eq!(w[1].action, "failed: boom");
        assert!(!w[1].injected && !w[1].healed);
    }
}
