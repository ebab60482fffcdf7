//! Everything `scale` measured, one list per part (a server per entry),
//! printed as text tables or, with `--json`, as this struct.

use std::fmt::Write as _;

use serde::Serialize;

pub use crate::defrag::results::human;

use super::big::BigRun;
use super::compaction::CompactionRun;
use super::keys::KeysRun;
use super::lists::ListsRun;

#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub keys: Vec<KeysRun>,
    pub lists: Vec<ListsRun>,
    pub big: Vec<BigRun>,
    pub compaction: Vec<CompactionRun>,
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn join<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(" / ")
}

impl Results {
    pub fn text(&self) -> String {
        let mut s = String::new();
        if !self.keys.is_empty() {
            keys(&mut s, &self.keys);
        }
        if !self.lists.is_empty() {
            lists(&mut s, &self.lists);
        }
        if !self.big.is_empty() {
            big(&mut s, &self.big);
        }
        if !self.compaction.is_empty() {
            compaction(&mut s, &self.compaction);
        }
        s
    }
}

fn keys(s: &mut String, runs: &[KeysRun]) {
    let _ = writeln!(
        s,
        "\n== keys: 3 members; per member values are member1 / member2 / member3"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "{} (version {}): {} keys of {} B loaded in {:.0} s ({} Txns sent again), {} counted",
            r.label, r.version, r.keys, r.value_size, r.load_secs, r.load_retries, r.counted
        );
        let _ = writeln!(
            s,
            "  peak RSS MiB after the load {}, at the end {}",
            join(&r.peak_rss_after_load_kib, |k| mib(*k)),
            join(&r.peak_rss_end_kib, |k| mib(*k))
        );
        let _ = writeln!(
            s,
            "  compacted at {}{}: du {} (db size {})",
            r.compact_revision,
            r.compaction_error
                .as_ref()
                .map_or(String::new(), |e| format!(" (the call failed: {e})")),
            join(&r.after_compaction, |d| human(d.du)),
            join(&r.after_compaction, |d| human(d.db_size))
        );
        let _ = writeln!(
            s,
            "  after defrag ({} s): du {} (db size {})",
            join(&r.defrag_secs, |t| format!("{t:.1}")),
            join(&r.after_defrag, |d| human(d.du)),
            join(&r.after_defrag, |d| human(d.db_size))
        );
        let _ = writeln!(
            s,
            "  {} restarted after SIGTERM: served a linearizable Range {:.3} s after its spawn",
            r.restarted, r.restart_serve_secs
        );
        let _ = writeln!(
            s,
            "  {:<10} {:>12} {:>10} {:>8} {:>12} {:>10} {:>8}",
            "store", "put ops/s", "put p99", "errors", "range ops/s", "range p99", "errors"
        );
        for (name, t) in [("empty", &r.empty), ("loaded", &r.loaded)] {
            let _ = writeln!(
                s,
                "  {:<10} {:>12.0} {:>10.2} {:>8} {:>12.0} {:>10.2} {:>8}",
                name,
                t.put.rps,
                t.put.latency_ms.p99,
                t.put.errors,
                t.range.rps,
                t.range.latency_ms.p99,
                t.range.errors
            );
        }
    }
}

fn lists(s: &mut String, runs: &[ListsRun]) {
    let _ = writeln!(s, "\n== lists: served by one member of 3");
    let _ = writeln!(
        s,
        "{:<8} {:<12} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>12} {:>12} {:>10} {:>10}  error",
        "server",
        "list",
        "objects",
        "value B",
        "listed",
        "pages",
        "catch-up",
        "secs",
        "HWM before",
        "HWM after",
        "RSS before",
        "RSS max"
    );
    for r in runs {
        for l in &r.lists {
            let m = &l.memory;
            let _ = writeln!(
                s,
                "{:<8} {:<12} {:>8} {:>8} {:>8} {:>7} {:>9.3} {:>9.3} {:>12} {:>12} {:>10} {:>10}  {}",
                r.label,
                l.name,
                l.objects,
                l.value_size,
                l.listed,
                l.pages,
                l.catch_up_secs,
                l.secs,
                mib(m.peak_before_kib),
                mib(m.peak_after_kib),
                mib(m.rss_before_kib),
                mib(m.rss_max_kib),
                l.error.as_deref().unwrap_or("-")
            );
        }
        let retries: u64 = r.lists.iter().map(|l| l.load_retries).sum();
        let _ = writeln!(
            s,
            "  ({} {}, {}; memory in MiB; {retries} load Txns sent again)",
            r.label,
            r.member,
            if r.leader { "the leader" } else { "a follower" }
        );
    }
}

fn big(s: &mut String, runs: &[BigRun]) {
    let _ = writeln!(s, "\n== big: one member; put latency in ms");
    let _ = writeln!(
        s,
        "{:<8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>11} {:>11} {:>9} {:>9} {:>8}",
        "server",
        "quota",
        "db size",
        "du",
        "keys",
        "load s",
        "RSS MiB",
        "empty ops/s",
        "big ops/s",
        "empty p99",
        "big p99",
        "errors"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "{:<8} {:>10} {:>10} {:>10} {:>10} {:>9.0} {:>8} {:>11.0} {:>11.0} {:>9.2} {:>9.2} {:>8}",
            r.label,
            human(r.quota),
            human(r.db_size),
            human(r.du),
            r.keys,
            r.load_secs,
            mib(r.peak_rss_kib),
            r.empty_put.rps,
            r.big_put.rps,
            r.empty_put.latency_ms.p99,
            r.big_put.latency_ms.p99,
            r.empty_put.errors + r.big_put.errors
        );
        if r.load_retries > 0 {
            let _ = writeln!(s, "  ({}: {} load Txns sent again)", r.label, r.load_retries);
        }
    }
}

fn compaction(s: &mut String, runs: &[CompactionRun]) {
    let _ = writeln!(
        s,
        "\n== compaction (physical: false) under an open-loop writer; latency in ms from when each put was due"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "{} (version {}): {} puts ({} per revision) over {} keys of {} B, loaded in {:.0} s ({} Txns sent again); compacted at {}: answered after {:.3} s{}, finished after {:.3} s (by {}){}",
            r.label,
            r.version,
            r.revisions,
            r.puts_per_revision,
            r.keys,
            r.value_size,
            r.load_secs,
            r.load_retries,
            r.compact_revision,
            r.answer_secs,
            r.answer_error.as_ref().map_or(String::new(), |e| format!(" with {e}")),
            r.finished_secs,
            r.finished_by,
            if r.member_compaction_ms.is_empty() {
                String::new()
            } else {
                format!("; per member {} ms", join(&r.member_compaction_ms, |m| format!("{m:.0}")))
            }
        );
        let _ = writeln!(
            s,
            "  {:<11} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>15}",
            "phase", "secs", "writes", "errors", "p50 ms", "p99 ms", "max ms", "longest gap ms"
        );
        for p in &r.phases {
            let l = &p.latency_ms;
            let _ = writeln!(
                s,
                "  {:<11} {:>7.1} {:>7} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>15.1}",
                p.name, p.secs, p.writes, p.errors, l.p50, l.p99, l.max, p.longest_gap_ms
            );
        }
    }
}
