//! The `timon-jepsen` command line: `run` one scenario, or the `quick`
//! suite; the last line printed is `N passed, N failed`.

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
    /// 3 or 5 members.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// Seconds of workload per scenario.
    #[arg(long, default_value_t = 30)]
    time_limit: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where results/<scenario>/<seed>/ go (kept only for failed runs).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    results: PathBuf,
    /// Keep the results directory of passing runs too.
    #[arg(long, visible_alias = "keep-results")]
    keep: bool,
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
    /// Run the quick suite: register under none, kill, pause, partition-leader, partition-random, kill-all.
    Quick {
        #[command(flatten)]
        common: Common,
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
        time_limit: Duration::from_secs(common.time_limit),
        seed: common.seed,
        results: common.results.clone(),
        keep: common.keep,
    })
}

fn print(report: &Report) {
    let verdict = if report.passed { "PASS" } else { "FAIL" };
    println!(
        "{verdict} {} seed {} in {:.1}s: {} ok, {} fail, {} info; checker: {}",
        report.scenario, report.seed, report.seconds, report.ops.ok, report.ops.fail, report.ops.info, report.checker
    );
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
            .map(|n| scenario(common, *n, Workload::Register))
            .collect::<anyhow::Result<_>>()?,
    };
    let (mut passed, mut failed) = (0, 0);
    for sc in &scenarios {
        let bar = run::progress_bar(&sc.name());
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
