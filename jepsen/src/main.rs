//! The `timon-jepsen` command line: `run` one scenario, or the `quick` or
//! `long` suite; the last line printed is `N passed, N failed`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use timon_jepsen::nemesis;
use timon_jepsen::run::{self, Report, Scenario, Server, Workload};

#[derive(Parser)]
#[command(about = "Jepsen-style fault injection against timon or etcd")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// The server under test.
    #[arg(long, value_enum, default_value = "timon")]
    server: Server,
    /// Its binary (default: $TIMON_BIN or the timon built next to this
    /// program, release then debug; /usr/bin/etcd or $ETCD_BIN for etcd).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// 3 or 5 members (the long suite chooses per scenario).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// Seconds of workload per scenario [default: 30; long suite: 120].
    #[arg(long)]
    time_limit: Option<u64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where results/<scenario>/<seed>/ go (kept only for failed runs).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    results: PathBuf,
    /// Keep the results directory of passing runs too.
    #[arg(long, visible_alias = "keep-results")]
    keep: bool,
    /// The tokens of the auth workload's members (etcd's --auth-token).
    #[arg(long, value_enum, default_value = "simple")]
    auth_token: run::AuthToken,
    /// Mutual TLS on the members' client and peer ports, as kubeadm runs
    /// etcd (a test PKI is made in each run's directory with openssl).
    #[arg(long)]
    tls: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario.
    Run {
        #[arg(long, value_enum, default_value = "register")]
        workload: Workload,
        #[arg(long, value_enum)]
        nemesis: nemesis::Kind,
        #[command(flatten)]
        common: Common,
    },
    /// Run the quick suite: register under none, kill, pause, partition-leader,
    /// partition-random, kill-all; watch under kill; kubernetes under partition-random;
    /// lock under partition-leader; lease under kill; auth under kill and partition-leader.
    Quick {
        #[command(flatten)]
        common: Common,
    },
    /// Run the long suite: every workload under every nemesis on 3 members,
    /// and under the partitions on 5 too; 120 s each unless --time-limit.
    Long {
        #[command(flatten)]
        common: Common,
        /// Run each scenario with this many seeds: --seed, --seed + 1, ...
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Only the scenarios whose name contains this, e.g. `watch-kill-5n`.
        #[arg(long)]
        only: Option<String>,
    },
}

fn binary(common: &Common) -> anyhow::Result<PathBuf> {
    if let Some(b) = &common.binary {
        return Ok(b.clone());
    }
    let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
    match common.server {
        Server::Etcd => Ok(from_env("ETCD_BIN").unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))),
        Server::Timon => {
            if let Some(b) = from_env("TIMON_BIN") {
                return Ok(b);
            }
            let exe = std::env::current_exe()?;
            let target = exe
                .parent()
                .and_then(|p| p.parent())
                .map(PathBuf::from)
                .unwrap_or_default();
            ["release", "debug"]
                .iter()
                .map(|profile| target.join(profile).join("timon"))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no timon binary under {}; run `cargo build -p timon-server --bin timon` or pass --binary",
                        target.display()
                    )
                })
        }
    }
}

fn scenario(common: &Common, nemesis: nemesis::Kind, workload: Workload) -> anyhow::Result<Scenario> {
    Ok(Scenario {
        server: common.server,
        binary: binary(common)?,
        nodes: usize::try_from(common.nodes)?,
        workload,
        nemesis,
        time_limit: Duration::from_secs(common.time_limit.unwrap_or(30)),
        seed: common.seed,
        results: common.results.clone(),
        keep: common.keep,
        auth_token: common.auth_token,
        tls: common.tls,
    })
}

fn print(report: &Report) {
    let verdict = if report.passed { "PASS" } else { "FAIL" };
    let mut events = String::new();
    if report.watch_events > 0 {
        events.push_str(&format!(", {} watch events", report.watch_events));
    }
    if report.lists > 0 {
        events.push_str(&format!(", {} lists", report.lists));
    }
    println!(
        "{verdict} {} seed {} in {:.1}s: {} ok, {} fail, {} info{events}; checker: {}",
        report.scenario, report.seed, report.seconds, report.ops.ok, report.ops.fail, report.ops.info, report.checker
    );
    for n in &report.notes {
        println!("    {n}");
    }
    for p in report.problems.iter().take(20) {
        println!("    {p}");
    }
    if let Some(dir) = &report.dir {
        println!("    results kept in {}", dir.display());
    }
}

async fn main_async(cli: Cli) -> anyhow::Result<bool> {
    let checker = run::full_check();
    let scenarios = match &cli.command {
        Cmd::Run {
            workload,
            nemesis,
            common,
        } => vec![scenario(common, *nemesis, *workload)?],
        Cmd::Quick { common } => run::QUICK
            .iter()
            .map(|n| (Workload::Register, *n))
            .chain(run::QUICK_OTHERS)
            .map(|(w, n)| scenario(common, n, w))
            .collect::<anyhow::Result<_>>()?,
        Cmd::Long { common, seeds, only } => {
            let mut all = Vec::new();
            for (workload, nemesis, nodes) in run::long() {
                for seed in common.seed..common.seed.saturating_add(*seeds) {
                    all.push(Scenario {
                        nodes,
                        seed,
                        time_limit: Duration::from_secs(common.time_limit.unwrap_or(120)),
                        ..scenario(common, nemesis, workload)?
                    });
                }
            }
            all.retain(|sc| sc.applies() && only.as_ref().is_none_or(|o| sc.name().contains(o.as_str())));
            all
        }
    };
    let (mut passed, mut failed) = (0, 0);
    let total = scenarios.len();
    for (i, sc) in scenarios.iter().enumerate() {
        let label = if total > 1 {
            format!("[{}/{total}] {}", i + 1, sc.name())
        } else {
            sc.name()
        };
        let bar = run::progress_bar(&label);
        let report = run::run(sc, &checker, &bar).await;
        bar.finish_and_clear();
        print(&report);
        if report.passed {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let ok = runtime.block_on(async {
        tokio::select! {
            r = main_async(cli) => r,
            // Returning drops the running scenario, whose Cluster kills its members.
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted");
                Ok(false)
            }
        }
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(if ok { 0 } else { 1 });
}
