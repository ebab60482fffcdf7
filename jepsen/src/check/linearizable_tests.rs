//! Tests of the linearizability checker: hand-written histories that must
//! pass or fail, random histories from a real sequential store, and timing.

use std::time::Instant;

use super::linearizable::{check, Config, Report};
use super::ops::operations;
use super::testgen::*;
use super::Validity;
use crate::history::History;

fn run(h: &History) -> Report {
    check(&operations(h).unwrap(), &Config::default())
}

fn assert_valid(h: &History) {
    let r = run(h);
    let why: Vec<_> = r.keys.iter().filter_map(|k| k.explanation.clone()).collect();
    assert_eq!(r.valid, Validity::Valid, "{}", why.join(""));
}

/// Asserts the history is invalid and returns the explanation.
fn assert_invalid(h: &History) -> String {
    let r = run(h);
    assert_eq!(r.valid, Validity::Invalid);
    r.keys.iter().filter_map(|k| k.explanation.clone()).collect()
}

#[test]
fn sequential_history_passes() {
    assert_valid(&vec![
        inv(1, 0, read0("k")),
        ok(1, 1, read("k", None, None), Some(1)),
        inv(1, 2, write("k", 1)),
        ok(1, 3, write("k", 1), Some(2)),
        inv(1, 4, read0("k")),
        ok(1, 5, read("k", Some(1), Some(2)), Some(2)),
        inv(1, 6, cas("k", 2, 2)),
        ok(1, 7, cas("k", 2, 2), Some(3)),
        inv(1, 8, read0("k")),
        ok(1, 9, read("k", Some(2), Some(3)), Some(3)),
    ]);
}

#[test]
fn concurrent_overlaps_may_linearize_either_way() {
    // The read overlaps both writes and sees the first; the second read
    // overlaps the second write and may see either.
    assert_valid(&vec![
        inv(1, 0, write("k", 1)),
        inv(2, 1, read0("k")),
        inv(3, 2, write("k", 2)),
        ok(3, 3, write("k", 2), Some(3)),
        ok(1, 4, write("k", 1), Some(2)),
        ok(2, 5, read("k", Some(1), Some(2)), Some(3)),
        inv(2, 6, read0("k")),
        ok(2, 7, read("k", Some(2), Some(3)), Some(3)),
    ]);
    // Equal times count as concurrent.
    assert_valid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 5, write("k", 1), Some(2)),
        inv(2, 5, read0("k")),
        ok(2, 6, read("k", None, None), Some(2)),
    ]);
}

#[test]
fn info_ops_may_or_may_not_take_effect() {
    // Took effect (seen later, long after the client gave up).
    assert_valid(&vec![
        inv(1, 0, write("k", 1)),
        info(1, 5, write("k", 1)),
        inv(2, 6, read0("k")),
        ok(2, 7, read("k", None, None), Some(1)),
        inv(2, 100, read0("k")),
        ok(2, 101, read("k", Some(1), Some(2)), Some(2)),
    ]);
    // Never took effect.
    assert_valid(&vec![
        inv(1, 0, write("k", 1)),
        info(1, 5, write("k", 1)),
        inv(2, 6, read0("k")),
        ok(2, 7, read("k", None, None), Some(1)),
    ]);
    // An info cas whose unobserved revision a later cas expects: kept in
    // the search, and it must take effect before that cas.
    assert_valid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 1, write("k", 1), Some(2)),
        inv(2, 2, cas("k", 2, 2)),
        info(2, 3, cas("k", 2, 2)),
        inv(3, 10, cas("k", 5, 3)),
        ok(3, 11, cas("k", 5, 3), Some(6)),
        inv(3, 12, read0("k")),
        ok(3, 13, read("k", Some(3), Some(6)), Some(6)),
    ]);
    // But an info op cannot take effect before it was invoked.
    assert_invalid(&vec![
        inv(2, 0, read0("k")),
        ok(2, 1, read("k", Some(1), None), Some(2)),
        inv(1, 2, write("k", 1)),
        info(1, 3, write("k", 1)),
    ]);
}

#[test]
fn failed_ops_did_not_happen() {
    assert_valid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 1, write("k", 1), Some(2)),
        inv(1, 2, cas("k", 7, 2)),
        fail(1, 3, cas("k", 7, 2)),
        inv(1, 4, read0("k")),
        ok(1, 5, read("k", Some(1), Some(2)), Some(2)),
    ]);
    assert_invalid(&vec![
        inv(1, 0, write("k", 1)),
        fail(1, 1, write("k", 1)),
        inv(1, 2, read0("k")),
        ok(1, 3, read("k", Some(1), None), Some(2)),
    ]);
}

#[test]
fn stale_read_fails_with_an_explanation() {
    let why = assert_invalid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 1, write("k", 1), Some(2)),
        inv(1, 2, write("k", 2)),
        ok(1, 3, write("k", 2), Some(3)),
        inv(2, 4, read0("k")),
        ok(2, 5, read("k", Some(1), Some(2)), Some(3)),
    ]);
    assert!(why.contains("key \"k\": not linearizable"), "{why}");
    assert!(why.contains("longest linearizable prefix has 2 of its 3"), "{why}");
    assert!(why.contains("register after it: 2 (mod_revision 3)"), "{why}");
    assert!(why.contains("read k -> 1 (mod_revision 2) ok"), "{why}");
}

#[test]
fn lost_write_fails() {
    // An acknowledged write that a later read does not see.
    assert_invalid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 1, write("k", 1), Some(2)),
        inv(2, 2, read0("k")),
        ok(2, 3, read("k", None, None), Some(2)),
    ]);
}

#[test]
fn cas_against_the_wrong_revision_fails() {
    let why = assert_invalid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 1, write("k", 1), Some(2)),
        inv(1, 2, write("k", 2)),
        ok(1, 3, write("k", 2), Some(3)),
        inv(1, 4, cas("k", 2, 3)),
        ok(1, 5, cas("k", 2, 3), Some(4)),
    ]);
    assert!(why.contains("expected mod_revision is not the register's"), "{why}");
}

#[test]
fn wrong_mod_revision_and_decreasing_revisions_fail() {
    assert_invalid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 1, write("k", 1), Some(2)),
        inv(1, 2, read0("k")),
        ok(1, 3, read("k", Some(1), Some(3)), Some(3)),
    ]);
    assert_invalid(&vec![
        inv(1, 0, write("k", 1)),
        ok(1, 1, write("k", 1), Some(5)),
        inv(1, 2, write("k", 2)),
        ok(1, 3, write("k", 2), Some(4)),
    ]);
}

#[test]
fn keys_are_independent() {
    let r = run(&vec![
        inv(1, 0, write("a", 1)),
        ok(1, 1, write("a", 1), Some(2)),
        inv(1, 2, read0("b")),
        ok(1, 3, read("b", Some(1), None), Some(2)),
    ]);
    assert_eq!(r.valid, Validity::Invalid);
    let states: Vec<_> = r.keys.iter().map(|k| (k.key.as_str(), k.valid)).collect();
    assert_eq!(states, [("a", Validity::Valid), ("b", Validity::Invalid)]);
}

#[test]
fn exceeding_the_budget_is_unknown() {
    let h = generate(&Gen {
        seed: 7,
        keys: 1,
        ops: 400,
        clients: 5,
        info: 0.0,
        blind_cas: false,
    });
    let r = check(
        &operations(&h).unwrap(),
        &Config {
            max_states_per_key: 10,
            ..Config::default()
        },
    );
    assert_eq!(r.valid, Validity::Unknown);
    let why = r.keys[0].explanation.clone().unwrap_or_default();
    assert!(why.contains("gave up after"), "{why}");
}

#[test]
fn random_histories_pass_and_a_stale_read_fails() {
    for seed in 0..30 {
        let mut h = generate(&Gen {
            seed,
            keys: 3,
            ops: 300,
            clients: 5,
            info: 0.05,
            blind_cas: false,
        });
        assert_valid(&h);
        let at = make_stale_read(&mut h).expect("a read to make stale");
        let why = assert_invalid(&h);
        assert!(why.contains("not linearizable"), "seed {seed}, entry {at}: {why}");
    }
}

/// Checks a generated history and its stale-read mutation; prints the
/// times and returns both verdicts.
fn timed(name: &str, g: &Gen) -> (Validity, Validity) {
    let mut h = generate(g);
    let ops = operations(&h).unwrap();
    let started = Instant::now();
    let good = check(&ops, &Config::default());
    let good_time = started.elapsed();
    let states: usize = good.keys.iter().map(|k| k.states).sum();
    let searched: usize = good.keys.iter().map(|k| k.ops).sum();
    let infos = ops.iter().filter(|o| o.outcome == super::ops::Outcome::Info).count();
    make_stale_read(&mut h).expect("a read to make stale");
    let ops = operations(&h).unwrap();
    let started = Instant::now();
    let bad = check(&ops, &Config::default());
    let bad_time = started.elapsed();
    let bad_states: usize = bad.keys.iter().map(|k| k.states).sum();
    println!(
        "{name}: {} ops ({infos} info, {searched} searched): {:?} in {good_time:?} ({states} states); \
         with a stale read: {:?} in {bad_time:?} ({bad_states} states)",
        ops.len(),
        good.valid,
        bad.valid
    );
    (good.valid, bad.valid)
}

/// 5 keys × 2000 operations each, 5 clients, 5% info, and harder variants.
/// Run with --nocapture to see the times.
#[test]
fn timing_5_keys_2000_ops_each() {
    let g = Gen {
        seed: 42,
        keys: 5,
        ops: 10_000,
        clients: 5,
        info: 0.05,
        blind_cas: false,
    };
    assert_eq!(timed("5 keys x 2000", &g), (Validity::Valid, Validity::Invalid));
    let one_key = Gen {
        keys: 1,
        ops: 2000,
        ..g
    };
    assert_eq!(timed("1 key x 2000", &one_key), (Validity::Valid, Validity::Invalid));
    // Cas expecting revisions only the hidden info writes had: no pruning,
    // so pending info ops multiply the search; never a wrong verdict.
    let blind = Gen { blind_cas: true, ..g };
    let (good, bad) = timed("5 keys x 2000, blind cas", &blind);
    assert_ne!(good, Validity::Invalid);
    assert_ne!(bad, Validity::Valid);
}

fn verdict(h: &History, commute_reads: bool, budget: usize) -> (Validity, usize) {
    let r = check(
        &operations(h).unwrap(),
        &Config {
            max_states_per_key: budget,
            commute_reads,
        },
    );
    (r.valid, r.keys.iter().map(|k| k.states).sum())
}

/// Commuting reads never change a verdict: the plain search and the one
/// that takes commuting reads at once agree on random histories (valid
/// ones and ones with a stale read; info ops; cas expecting hidden
/// revisions; 1–3 keys; 2–10 clients) wherever the plain one decides.
#[test]
fn commuting_reads_give_the_plain_search_verdicts() {
    let mut compared = 0;
    for seed in 0..120u64 {
        let g = Gen {
            seed,
            keys: 1 + (seed % 3) as usize,
            ops: 150 + (seed as usize % 5) * 50,
            clients: 2 + (seed % 9) as i64,
            info: [0.0, 0.05, 0.2][(seed / 3 % 3) as usize],
            blind_cas: seed % 4 == 0,
        };
        let mut h = generate(&g);
        for stale in [false, true] {
            if stale && make_stale_read(&mut h).is_none() {
                continue;
            }
            let (plain, plain_states) = verdict(&h, false, 1_000_000);
            let (new, new_states) = verdict(&h, true, 1_000_000);
            if plain != Validity::Unknown {
                assert_eq!(new, plain, "seed {seed}, stale {stale}");
                compared += 1;
            }
            assert!(new_states <= plain_states, "seed {seed}: {new_states} > {plain_states}");
            if !g.blind_cas {
                assert_eq!(
                    new,
                    if stale { Validity::Invalid } else { Validity::Valid },
                    "seed {seed}"
                );
            }
        }
    }
    assert!(compared >= 200, "{compared}");
}

/// Ten clients on one key: a stale read made the plain search visit every
/// subset of concurrent reads and give up; with commuting reads it is
/// found within a small budget.
#[test]
fn a_stale_read_on_a_busy_key_is_invalid_not_unknown() {
    let mut h = generate(&Gen {
        seed: 1,
        keys: 1,
        ops: 10_000,
        clients: 10,
        info: 0.01,
        blind_cas: false,
    });
    make_stale_read(&mut h).expect("a read to make stale");
    let plain = verdict(&h, false, 100_000);
    let (v, states) = verdict(&h, true, 100_000);
    println!("plain search: {plain:?}; commuting reads: {v:?} after {states} states");
    assert_eq!(plain.0, Validity::Unknown, "{plain:?}");
    assert_eq!(v, Validity::Invalid, "{states} states");
}
