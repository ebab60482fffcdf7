//! What a comparison produced: per workload, each server's report (the
//! median run by throughput when there were several rounds), every run, and
//! each member's peak RSS right after the workload; ratios timon/etcd.
//! This is the JSON written to `benches/results/<date>.json`.

use serde::{Deserialize, Serialize};

use crate::report::Report;

/// The report note holding the CPU time (µs) the server's members used
/// during the measured part of the workload (its setup left out).
pub const SERVER_CPU_US: &str = "server_cpu_us";

/// The report note holding the CPU time (µs) the load generator itself
/// (this process, all its threads) used during the workload. On a machine
/// it shares with the members, each request costs both.
pub const BENCH_CPU_US: &str = "bench_cpu_us";

/// One server's result for one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    /// The run reported (median throughput over `runs`).
    pub report: Report,
    /// Every round's run, in the order they ran.
    pub runs: Vec<Report>,
    /// VmHWM of each member (KiB) read right after this workload's last run:
    /// the peak since the cluster started.
    pub peak_rss_kib: Vec<u64>,
}

impl Side {
    /// Chooses the median run by throughput.
    pub fn new(runs: Vec<Report>, peak_rss_kib: Vec<u64>) -> Side {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|a, b| runs[*a].rps.total_cmp(&runs[*b].rps));
        let report = runs[order[order.len() / 2]].clone();
        Side {
            report,
            runs,
            peak_rss_kib,
        }
    }

    /// CPU µs the members used per successful request of the reported run.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        self.per_op(SERVER_CPU_US)
    }

    /// CPU µs the load generator used per successful request of the
    /// reported run.
    pub fn bench_cpu_us_per_op(&self) -> Option<f64> {
        self.per_op(BENCH_CPU_US)
    }

    fn per_op(&self, note: &str) -> Option<f64> {
        let us = *self.report.notes.get(note)?;
        (self.report.count > 0).then(|| us as f64 / self.report.count as f64)
    }

    /// The share of the machine's `cpus` that members and load generator
    /// kept busy during the reported run (1.0: every core all the time).
    /// Near 1, throughput is bound by their CPU per request.
    pub fn busy(&self, cpus: usize) -> Option<f64> {
        let us = self.report.notes.get(SERVER_CPU_US)? + self.report.notes.get(BENCH_CPU_US)?;
        let capacity = self.report.total_secs * cpus as f64 * 1e6;
        (capacity > 0.0).then(|| us as f64 / capacity)
    }

    /// The largest member's peak RSS in KiB.
    pub fn max_rss_kib(&self) -> u64 {
        self.peak_rss_kib.iter().copied().max().unwrap_or(0)
    }
}

/// timon divided by etcd; None where etcd's value is 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratios {
    /// Throughput: above 1 means timon is faster.
    pub rps: Option<f64>,
    /// p99 latency: below 1 means timon is faster.
    pub p99: Option<f64>,
    /// Peak RSS of the largest member: below 1 means timon uses less.
    pub peak_rss: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub timon: Side,
    pub etcd: Side,
    pub ratios: Ratios,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl Row {
    pub fn new(name: &str, timon: Side, etcd: Side) -> Row {
        let ratios = Ratios {
            rps: ratio(timon.report.rps, etcd.report.rps),
            p99: ratio(timon.report.latency_ms.p99, etcd.report.latency_ms.p99),
            peak_rss: ratio(timon.max_rss_kib() as f64, etcd.max_rss_kib() as f64),
        };
        Row {
            name: name.to_string(),
            timon,
            etcd,
            ratios,
        }
    }
}

/// The members' CPU µs per request at which timon's throughput would be
/// `target` times etcd's, were both bound by CPU (see [`Side::busy`]): the
/// machine's cores serve members and load generator alike, so throughput
/// is cores / (members' + load generator's CPU per request), and
///
/// `timon members <= (etcd members + etcd load generator) / target - timon load generator`
///
/// None without the CPU notes, or when even free members would not do.
pub fn members_cpu_for(target: f64, row: &Row) -> Option<f64> {
    let etcd = row.etcd.cpu_us_per_op()? + row.etcd.bench_cpu_us_per_op()?;
    let budget = etcd / target - row.timon.bench_cpu_us_per_op()?;
    (budget > 0.0).then_some(budget)
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// UTC stamp; also the result files' name.
    pub date: String,
    /// Free text from `--label` (e.g. "debug build").
    pub label: String,
    pub cpus: usize,
    pub timon_bin: String,
    pub etcd_bin: String,
    pub rounds: usize,
    /// The settings both clusters were started with.
    pub settings: serde_json::Value,
    /// The steps and their options.
    pub plan: serde_json::Value,
    pub rows: Vec<Row>,
}
