//! `timon-bench scale` end to end at tiny sizes: every part on a debug
//! timon and etcd 3.4.23, checking that the pipeline measured what it
//! loaded (every key counted, every object listed, no failed request).
//! No timing assertion: the numbers of a debug build at these sizes mean
//! nothing.

mod common;

use common::timon_bin;
use serde_json::Value;

const KEYS: u64 = 2000;
const LIST_OBJECTS: u64 = 700;
/// 6 MiB of 10 KiB objects: over tonic's default 4 MiB limit of a received message.
const BIG_LIST_OBJECTS: u64 = 600;
const REVISIONS: u64 = 1000;

fn run_scale() -> Value {
    let timon = timon_bin();
    let numbers = [
        ("--keys", KEYS),
        ("--list-objects", LIST_OBJECTS),
        ("--big-list-objects", BIG_LIST_OBJECTS),
        ("--compaction-revisions", REVISIONS),
        ("--compaction-keys", 100),
        ("--key-space-size", 100),
        ("--clients", 4),
        ("--conns", 2),
        ("--write-rate", 100),
    ];
    let mut args: Vec<String> = vec!["scale".into(), "--timon-bin".into(), timon.display().to_string()];
    args.extend(["--etcd-bin", "/usr/bin/etcd", "--big-size", "4MiB"].map(String::from));
    for (flag, n) in numbers {
        args.extend([flag.to_string(), n.to_string()]);
    }
    for flag in ["--duration", "--settle", "--baseline", "--tail"] {
        args.extend([flag.to_string(), "500ms".to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_json(&args)
}

fn servers(part: &Value) -> Vec<&Value> {
    let runs: Vec<&Value> = part.as_array().expect("a list per part").iter().collect();
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["timon", "etcd"], "{part}");
    runs
}

/// A throughput run with successes and no errors.
fn assert_ran(report: &Value) {
    assert!(report["count"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}

#[test]
fn every_part_measures_what_it_loaded_on_timon_and_etcd() {
    let out = run_scale();
    for r in servers(&out["keys"]) {
        assert_eq!(r["counted"], KEYS, "{r}");
        for store in ["empty", "loaded"] {
            assert_ran(&r[store]["put"]);
            assert_ran(&r[store]["range"]);
        }
        for step in ["after_compaction", "after_defrag"] {
            let disks = r[step].as_array().unwrap();
            assert_eq!(disks.len(), 3, "{r}");
            assert!(disks.iter().all(|d| d["du"].as_u64().unwrap() > 0), "{step}: {r}");
        }
        for peaks in ["peak_rss_after_load_kib", "peak_rss_end_kib"] {
            assert!(
                r[peaks].as_array().unwrap().iter().all(|k| k.as_u64().unwrap() > 0),
                "{peaks}: {r}"
            );
        }
        assert!(r["restart_serve_secs"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in servers(&out["lists"]) {
        let lists = r["lists"].as_array().unwrap();
        let expect = [
            ("paginated", LIST_OBJECTS, LIST_OBJECTS.div_ceil(500)),
            ("unpaginated", BIG_LIST_OBJECTS, 1),
        ];
        assert_eq!(lists.len(), expect.len(), "{r}");
        for (list, (name, objects, pages)) in lists.iter().zip(expect) {
            assert_eq!(list["name"], name, "{r}");
            assert_eq!(list["error"], Value::Null, "{list}");
            assert_eq!(list["listed"], objects, "{list}");
            assert_eq!(list["pages"], pages, "{list}");
            let m = &list["memory"];
            assert!(m["rss_before_kib"].as_u64().unwrap() > 0, "{list}");
            assert!(m["rss_max_kib"].as_u64() >= m["rss_before_kib"].as_u64(), "{list}");
            assert!(m["peak_after_kib"].as_u64() >= m["peak_before_kib"].as_u64(), "{list}");
        }
    }
    for r in servers(&out["big"]) {
        assert!(r["keys"].as_u64().unwrap() > 0, "{r}");
        assert!(r["db_size"].as_u64() >= r["target"].as_u64(), "{r}");
        assert_ran(&r["empty_put"]);
        assert_ran(&r["big_put"]);
    }
    for r in servers(&out["compaction"]) {
        assert!(r["compact_revision"].as_u64().unwrap() > REVISIONS, "{r}");
        // Both compact in the background and count it in etcd's histogram.
        assert_eq!(r["finished_by"], "histogram", "{r}");
        assert_eq!(r["answer_error"], Value::Null, "{r}");
        assert!(r["finished_secs"].as_f64() >= r["answer_secs"].as_f64(), "{r}");
        let phases = r["phases"].as_array().unwrap();
        let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["baseline", "compaction", "after"], "{r}");
        for p in phases {
            assert_eq!(p["errors"], 0, "{p}");
        }
        assert!(phases[0]["writes"].as_u64().unwrap() > 0, "{r}");
        assert!(phases[2]["writes"].as_u64().unwrap() > 0, "{r}");
    }
}
