use super::*;
use crate::check::ops::operations;
use crate::check::testgen::{info, inv, ok};
use crate::history::{Entry, History, Kind};

const A: &str = "jepsen/auth/a/";
const B: &str = "jepsen/auth/b/";

fn grant(role: &str, prefix: &str, perm: Perm) -> Op {
    Op::GrantPermission {
        role: role.into(),
        prefix: prefix.into(),
        perm,
    }
}
fn revoke(role: &str, prefix: &str) -> Op {
    Op::RevokePermission {
        role: role.into(),
        prefix: prefix.into(),
    }
}
/// u1 (role r1) reads `key`.
fn read(key: &str) -> Op {
    read_as("u1", "r1", key)
}
fn read_as(user: &str, role: &str, key: &str) -> Op {
    Op::AuthRead {
        user: user.into(),
        role: role.into(),
        key: key.into(),
        prefix: false,
        found: Some(1),
    }
}
fn write(key: &str) -> Op {
    Op::AuthWrite {
        user: "u1".into(),
        role: "r1".into(),
        key: key.into(),
        value: 7,
    }
}
fn failed(p: i64, t: u64, op: Op, error: &str) -> Entry {
    Entry {
        process: p,
        kind: Kind::Fail,
        time: t,
        op,
        revision: None,
        error: Some(error.into()),
    }
}
/// One operation of process `p` from `from` to `to`, ending `Ok`.
fn done(p: i64, from: u64, to: u64, op: Op) -> [Entry; 2] {
    [inv(p, from, op.clone()), ok(p, to, op, None)]
}

fn run(h: &[Entry]) -> Violations {
    check(&operations(&h.to_vec()).expect("well-formed history"))
}

fn flagged(h: &[Entry]) -> Vec<String> {
    let v = run(h);
    println!("{}\n{}", v.summary, v.found.join("\n"));
    v.found
}

/// The admin (process 0) grants READWRITE on A to r1, then revokes it.
fn granted_then_revoked() -> Vec<Entry> {
    [
        done(0, 10, 20, grant("r1", A, Perm::Readwrite)),
        done(0, 30, 40, revoke("r1", A)),
    ]
    .concat()
}

#[test]
fn a_read_and_a_write_after_a_completed_revoke_are_caught() {
    let mut h = granted_then_revoked();
    h.extend(done(1, 50, 60, read("jepsen/auth/a/1")));
    h.extend(done(2, 55, 65, write("jepsen/auth/a/2")));
    let found = flagged(&h);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("certainly lacked READ on jepsen/auth/a/1"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("revoke jepsen/auth/a/* from r1 ok"), "{}", found[0]);
    assert!(found[1].contains("certainly lacked WRITE"), "{}", found[1]);
}

#[test]
fn an_operation_concurrent_with_the_revoke_is_not_flagged() {
    let mut h = granted_then_revoked();
    // Invoked at 35, before the revoke completed at 40.
    h.extend(done(1, 35, 45, read("jepsen/auth/a/1")));
    assert!(flagged(&h).is_empty());
}

#[test]
fn an_operation_concurrent_with_a_later_grant_is_not_flagged() {
    let mut h = granted_then_revoked();
    h.extend(done(0, 70, 80, grant("r1", A, Perm::Read)));
    // Completed at 75, after the grant was invoked at 70.
    h.extend(done(1, 50, 75, read("jepsen/auth/a/1")));
    assert!(flagged(&h).is_empty());
    // Completed at 69: before the grant was invoked.
    let mut h = granted_then_revoked();
    h.extend(done(0, 70, 80, grant("r1", A, Perm::Read)));
    h.extend(done(1, 50, 69, read("jepsen/auth/a/1")));
    assert_eq!(flagged(&h).len(), 1);
}

#[test]
fn a_grant_of_unknown_outcome_may_apply_at_any_later_time() {
    // The grant timed out at 15 (invoked at 5): it may land after the
    // revoke, so nothing after it is certain.
    let mut h = vec![
        inv(0, 5, grant("r1", A, Perm::Write)),
        info(0, 15, grant("r1", A, Perm::Write)),
    ];
    h.extend(done(3, 30, 40, revoke("r1", A)));
    h.extend(done(2, 50, 60, write("jepsen/auth/a/2")));
    assert!(flagged(&h).is_empty());
    // A READ grant of unknown outcome does not allow the write: caught.
    let mut h = vec![
        inv(0, 5, grant("r1", A, Perm::Read)),
        info(0, 15, grant("r1", A, Perm::Read)),
    ];
    h.extend(done(3, 30, 40, revoke("r1", A)));
    h.extend(done(2, 50, 60, write("jepsen/auth/a/2")));
    assert_eq!(flagged(&h).len(), 1);
}

#[test]
fn a_revoke_of_unknown_outcome_forbids_nothing() {
    let mut h = done(0, 10, 20, grant("r1", A, Perm::Readwrite)).to_vec();
    h.extend([inv(0, 30, revoke("r1", A)), info(0, 40, revoke("r1", A))]);
    h.extend(done(1, 50, 60, read("jepsen/auth/a/1")));
    assert!(flagged(&h).is_empty());
}

#[test]
fn a_failed_grant_changed_nothing() {
    let mut h = granted_then_revoked();
    h.extend([
        inv(0, 45, grant("r1", A, Perm::Read)),
        failed(0, 48, grant("r1", A, Perm::Read), "Unavailable: connection refused"),
    ]);
    h.extend(done(1, 46, 60, read("jepsen/auth/a/1")));
    assert_eq!(flagged(&h).len(), 1);
}

#[test]
fn granting_read_over_readwrite_takes_write_away_as_in_etcd() {
    let mut h = done(0, 10, 20, grant("r1", A, Perm::Readwrite)).to_vec();
    h.extend(done(0, 30, 40, grant("r1", A, Perm::Read)));
    h.extend(done(1, 50, 60, read("jepsen/auth/a/1")));
    h.extend(done(2, 50, 60, write("jepsen/auth/a/1")));
    let found = flagged(&h);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("writes jepsen/auth/a/1"), "{}", found[0]);
}

#[test]
fn a_role_never_granted_a_prefix_lacks_it_from_the_start() {
    // r2 has A; r1 never had anything: its read of A and of an unknown
    // prefix are caught, r2's read is fine.
    let mut h = done(0, 10, 20, grant("r2", A, Perm::Read)).to_vec();
    h.extend(done(1, 30, 40, read("jepsen/auth/a/1")));
    h.extend(done(2, 30, 40, read("jepsen/auth/x/1")));
    h.extend(done(3, 30, 40, read_as("u2", "r2", "jepsen/auth/a/1")));
    h.extend(done(4, 1, 5, read_as("u2", "r2", "jepsen/auth/a/1")));
    let found = flagged(&h);
    assert_eq!(found.len(), 3, "{found:?}");
    // Ops are reported in invocation order: u2's read before the grant first.
    assert!(found[0].contains("u2 (r2) reads jepsen/auth/a/1"), "{}", found[0]);
}

#[test]
fn overlapping_changes_are_taken_in_either_order() {
    // Two admins: the revoke (invoked first, completed last) may have
    // been applied before the grant: the read is fine.
    let mut h = done(0, 10, 50, revoke("r1", A)).to_vec();
    h.extend(done(5, 20, 40, grant("r1", A, Perm::Read)));
    h.extend(done(1, 60, 70, read("jepsen/auth/a/1")));
    assert!(flagged(&h).is_empty());
    // A grant completed before the revoke was invoked is overridden.
    let mut h = done(5, 1, 5, grant("r1", A, Perm::Read)).to_vec();
    h.extend(done(0, 10, 50, revoke("r1", A)));
    h.extend(done(1, 60, 70, read("jepsen/auth/a/1")));
    assert_eq!(flagged(&h).len(), 1);
}

#[test]
fn other_prefixes_and_other_roles_do_not_allow() {
    let mut h = done(0, 10, 20, grant("r1", B, Perm::Readwrite)).to_vec();
    h.extend(done(0, 10, 20, grant("r2", A, Perm::Readwrite)));
    h.extend(done(1, 30, 40, write("jepsen/auth/a/1")));
    h.extend(done(1, 41, 42, write("jepsen/auth/b/1")));
    assert_eq!(flagged(&h).len(), 1);
}

#[test]
fn a_denial_is_never_a_violation() {
    let mut h = done(0, 10, 20, grant("r1", A, Perm::Readwrite)).to_vec();
    h.extend([
        inv(1, 30, read("jepsen/auth/a/1")),
        failed(1, 40, read("jepsen/auth/a/1"), DENIED),
    ]);
    h.extend([
        inv(1, 50, write("jepsen/auth/a/1")),
        failed(
            1,
            60,
            write("jepsen/auth/a/1"),
            "InvalidArgument: etcdserver: revision of auth store is old",
        ),
    ]);
    let v = run(&h);
    assert!(v.found.is_empty());
    assert!(v.summary.contains("1 denied, 1 failed"), "{}", v.summary);
    assert!(v.summary.contains("1 denied while certainly allowed"), "{}", v.summary);
}

#[test]
fn a_write_of_unknown_outcome_is_not_a_success() {
    let mut h = granted_then_revoked();
    h.extend([
        inv(2, 50, write("jepsen/auth/a/2")),
        info(2, 60, write("jepsen/auth/a/2")),
    ]);
    let v = run(&h);
    assert!(v.found.is_empty());
    assert!(
        v.summary
            .contains("1 invoked while certainly forbidden (1 of them by a completed revoke"),
        "{}",
        v.summary
    );
}

/// How the simulated server treats permission changes.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// As etcd: each change takes effect at one point inside its interval
    /// (an `Info` one at any later time, or never).
    Correct,
    /// The planted bug: revokes are acknowledged but ignored.
    IgnoresRevokes,
}

/// A history of one admin and three workers against a simulated server:
/// every operation takes effect at a random point strictly inside its
/// interval, and a worker's request is allowed by the permissions the
/// server holds at that point.
fn simulate(seed: u64, server: Server) -> History {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    let mut rng = StdRng::seed_from_u64(seed);
    // (effect time, what): admin effects and worker requests in one timeline.
    enum Effect {
        Change(String, String, Option<Perm>),
        Request(usize),
    }
    let mut h: History = Vec::new();
    let mut effects: Vec<(u64, Effect)> = Vec::new();
    let prefixes = [A, B];
    // The admin, process 0: one change at a time.
    let mut t = 1;
    let mut process = 0;
    while t < 10_000 {
        let role = ["r1", "r2"][rng.gen_range(0..2)].to_string();
        let prefix = prefixes[rng.gen_range(0..2)].to_string();
        let perm = [Some(Perm::Read), Some(Perm::Write), Some(Perm::Readwrite), None][rng.gen_range(0..4)];
        let op = match perm {
            Some(p) => grant(&role, &prefix, p),
            None => revoke(&role, &prefix),
        };
        let end = t + rng.gen_range(2..40);
        h.push(inv(process, t, op.clone()));
        match rng.gen_range(0..10) {
            0 => {
                h.push(failed(process, end, op, "Unavailable: connection refused"));
            }
            1 => {
                h.push(info(process, end, op));
                process += 10;
                if rng.gen_bool(0.5) {
                    effects.push((t + 1 + rng.gen_range(0..2000), Effect::Change(role, prefix, perm)));
                }
            }
            _ => {
                h.push(ok(process, end, op, None));
                effects.push((rng.gen_range(t + 1..end), Effect::Change(role, prefix, perm)));
            }
        }
        t = end + rng.gen_range(1..30);
    }
    // Workers 1..=3 (u1/r1, u2/r2, u1/r1), requests recorded at their effect.
    let mut requests = Vec::new();
    for w in 1..=3i64 {
        let (user, role) = if w == 2 { ("u2", "r2") } else { ("u1", "r1") };
        let mut t = 1 + w as u64;
        while t < 10_000 {
            let prefix = [A, B, "jepsen/auth/x/"][rng.gen_range(0..3)];
            let key = format!("{prefix}{}", rng.gen_range(0..2));
            let op = if rng.gen_bool(0.5) {
                read_as(user, role, &key)
            } else {
                Op::AuthWrite {
                    user: user.into(),
                    role: role.into(),
                    key,
                    value: t,
                }
            };
            let end = t + rng.gen_range(2..20);
            effects.push((rng.gen_range(t + 1..end), Effect::Request(requests.len())));
            requests.push((w, t, end, op));
            t = end + rng.gen_range(1..5);
        }
    }
    effects.sort_by_key(|(t, _)| *t);
    let mut perms: HashMap<(String, String), Perm> = HashMap::new();
    for (_, effect) in effects {
        match effect {
            Effect::Change(role, prefix, Some(p)) => {
                perms.insert((role, prefix), p);
            }
            Effect::Change(role, prefix, None) => {
                if server == Server::Correct {
                    perms.remove(&(role, prefix));
                }
            }
            Effect::Request(i) => {
                let (w, start, end, op) = &requests[i];
                let (role, key, needed) = request(op).expect("a request");
                let allowed = perms
                    .iter()
                    .any(|((r, p), perm)| r == role && key.starts_with(p.as_str()) && perm.allows(needed));
                h.push(inv(*w, *start, op.clone()));
                h.push(match allowed {
                    true => ok(*w, *end, op.clone(), None),
                    false => failed(*w, *end, op.clone(), DENIED),
                });
            }
        }
    }
    h.sort_by_key(|e| e.time);
    h
}

#[test]
fn histories_of_a_correct_server_pass() {
    for seed in 0..100 {
        let v = run(&simulate(seed, Server::Correct));
        assert!(v.found.is_empty(), "seed {seed}: {}", v.found.join("\n"));
        assert!(!v.summary.starts_with("0 "), "{}", v.summary);
    }
}

#[test]
fn a_server_that_ignores_revokes_is_caught() {
    let caught = (0..20)
        .filter(|&seed| !run(&simulate(seed, Server::IgnoresRevokes)).found.is_empty())
        .count();
    assert_eq!(caught, 20, "only {caught} of 20 histories flagged");
}

#[test]
fn the_final_permissions_must_be_what_the_changes_left() {
    let ops = operations(
        &[
            granted_then_revoked(),
            done(0, 50, 60, grant("r1", B, Perm::Read)).to_vec(),
            vec![
                inv(0, 70, grant("r1", B, Perm::Write)),
                info(0, 80, grant("r1", B, Perm::Write)),
            ],
        ]
        .concat(),
    )
    .unwrap();
    let held = |perms: &[(&str, Perm)]| FinalRole {
        member: "n1".into(),
        role: "r1".into(),
        perms: perms.iter().map(|(p, t)| (p.to_string(), *t)).collect(),
    };
    // B: READ, or WRITE if the unknown grant was applied.
    assert!(check_final(&ops, &[held(&[(B, Perm::Read)]), held(&[(B, Perm::Write)])]).is_empty());
    // A lost revoke, a lost grant.
    let p = check_final(&ops, &[held(&[(A, Perm::Readwrite), (B, Perm::Read)]), held(&[])]);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains("n1 holds READWRITE on jepsen/auth/a/* for r1 after the run; the changes leave nothing"),
        "{}",
        p[0]
    );
    assert!(p[1].contains("holds nothing on jepsen/auth/b/*"), "{}", p[1]);
}
