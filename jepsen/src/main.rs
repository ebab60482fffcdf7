//! The `timon-jepsen` command line: `run` one scenario, or the `quick` or
//! `long` suite; the last line printed is `N passed, N failed` (for `long`,
//! `Total: N checked operations` follows it). `check-bench` times the
//! checkers.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use timon_jepsen::run::{self, Report, Scenario, Server, Workload};
use timon_jepsen::{checkbench, nemesis, suite};

#[derive(Parser)]
#[command(about = "Jepsen-style fault injection against timon or etcd")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// The server under test (`both`: timon then etcd, for `long` only).
    #[arg(long, value_enum, default_value = "timon")]
    server: Servers,
    /// Its binary (default: $TIMON_BIN or the timon built next to this
    /// program, release then debug; /usr/bin/etcd or $ETCD_BIN for etcd).
    /// With `--server both` it is timon's.
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

/// `--server`: one server, or both in turn (the long suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Servers {
    Timon,
    Etcd,
    Both,
}

impl Servers {
    fn list(self) -> Vec<Server> {
        match self {
            Servers::Timon => vec![Server::Timon],
            Servers::Etcd => vec![Server::Etcd],
            Servers::Both => vec![Server::Timon, Server::Etcd],
        }
    }

    fn one(self) -> anyhow::Result<Server> {
        match self.list().as_slice() {
            [one] => Ok(*one),
            _ => anyhow::bail!("--server both is for the long suite; run one server at a time"),
        }
    }
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
    /// Run the long suite: every workload under every nemesis on 3 and 5
    /// members (on etcd, those whose nemesis applies); 120 s each unless
    /// --time-limit. Each finished scenario is appended to --out (JSON
    /// lines); at the end the Markdown table of the whole file is written
    /// next to it and the last line is `Total: N checked operations`.
    Long {
        #[command(flatten)]
        common: Common,
        /// Run each scenario with this many seeds: --seed, --seed + 1, ...
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Only the scenarios whose name contains one of these
        /// (comma-separated), e.g. `watch-kill-5n,etcd-lock`.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// The results file [default: <results>/long.jsonl]; the table is
        /// written to the same name with `.md`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the scenarios (and seeds) the results file already holds.
        #[arg(long)]
        resume: bool,
        /// Print the scenarios (and the skipped ones, with why) and stop.
        #[arg(long)]
        list: bool,
    },
    /// Time the checkers on generated register histories (and on recorded
    /// ones with --history), per 100k operations.
    CheckBench {
        /// Operations per generated history.
        #[arg(long, default_value_t = 100_000)]
        ops: usize,
        /// Concurrent clients; one history per value.
        #[arg(long, value_delimiter = ',', default_value = "5,10")]
        clients: Vec<i64>,
        /// Keys (registers) the operations spread over.
        #[arg(long, default_value_t = 3)]
        keys: usize,
        /// Share of operations that end `Info` (half of them took effect).
        #[arg(long, default_value_t = 0.05)]
        info: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Make one read stale: times a failing check.
        #[arg(long)]
        stale_read: bool,
        /// Recorded runs to time instead: results directories or
        /// history.jsonl files (kept with --keep).
        #[arg(long)]
        history: Vec<PathBuf>,
    },
}

fn binary(common: &Common, server: Server) -> anyhow::Result<PathBuf> {
    let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
    match (&common.binary, server, common.server) {
        (Some(b), Server::Timon, _) | (Some(b), Server::Etcd, Servers::Etcd) => return Ok(b.clone()),
        _ => {}
    }
    match server {
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

fn scenario(common: &Common, server: Server, nemesis: nemesis::Kind, workload: Workload) -> anyhow::Result<Scenario> {
    Ok(Scenario {
        server,
        binary: binary(common, server)?,
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
        "{verdict} {} seed {} in {:.1}s: {} ok, {} fail, {} info{events}; {} checked in {:.2}s by {}",
        report.scenario,
        report.seed,
        report.seconds,
        report.ops.ok,
        report.ops.fail,
        report.ops.info,
        report.checked,
        report.checker_seconds,
        report.checker
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

/// The long suite's scenarios after --only and --resume, and the skipped
/// ones with why.
struct LongPlan {
    run: Vec<Scenario>,
    skipped: Vec<(String, &'static str)>,
    already: usize,
}

fn long_plan(common: &Common, seeds: u64, only: &[String], done: &[suite::Row]) -> anyhow::Result<LongPlan> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let mut plan = LongPlan {
        run: Vec::new(),
        skipped: Vec::new(),
        already: 0,
    };
    for p in suite::plan(&common.server.list()) {
        for seed in common.seed..common.seed.saturating_add(seeds) {
            let sc = Scenario {
                nodes: p.nodes,
                seed,
                time_limit: Duration::from_secs(common.time_limit.unwrap_or(120)),
                ..scenario(common, p.server, p.nemesis, p.workload)?
            };
            let name = sc.name();
            if !wanted(&name) {
                continue;
            }
            if let Some(why) = p.skipped {
                if seed == common.seed {
                    plan.skipped.push((name, why));
                }
            } else if done.iter().any(|r| r.scenario == name && r.seed == seed) {
                plan.already += 1;
            } else {
                plan.run.push(sc);
            }
        }
    }
    Ok(plan)
}

async fn main_async(cli: Cli) -> anyhow::Result<bool> {
    let checker = run::full_check();
    let mut results: Option<PathBuf> = None;
    let mut skipped = Vec::new();
    let commit = suite::checkout_commit();
    let scenarios = match &cli.command {
        Cmd::Run {
            workload,
            nemesis,
            common,
        } => vec![scenario(common, common.server.one()?, *nemesis, *workload)?],
        Cmd::Quick { common } => {
            let server = common.server.one()?;
            run::QUICK
                .iter()
                .map(|n| (Workload::Register, *n))
                .chain(run::QUICK_OTHERS)
                .map(|(w, n)| scenario(common, server, n, w))
                .collect::<anyhow::Result<_>>()?
        }
        Cmd::Long {
            common,
            seeds,
            only,
            out,
            resume,
            list,
        } => {
            let out = out.clone().unwrap_or_else(|| common.results.join("long.jsonl"));
            let done = if *resume { suite::load(&out)? } else { Vec::new() };
            let plan = long_plan(common, *seeds, only, &done)?;
            if *list {
                for sc in &plan.run {
                    println!("{} seed {}", sc.name(), sc.seed);
                }
                for (name, why) in &plan.skipped {
                    println!("skip {name}: {why}");
                }
                println!(
                    "{} to run, {} skipped, {} already in {}",
                    plan.run.len(),
                    plan.skipped.len(),
                    plan.already,
                    out.display()
                );
                return Ok(true);
            }
            if plan.already > 0 {
                println!(
                    "{} scenario runs already in {}, not run again",
                    plan.already,
                    out.display()
                );
            }
            for (name, why) in &plan.skipped {
                println!("SKIP {name}: {why}");
            }
            results = Some(out);
            // The table covers the whole results file: what the whole
            // plan skips, whatever --only kept.
            skipped = long_plan(common, *seeds, &[], &[])?.skipped;
            plan.run
        }
        Cmd::CheckBench {
            ops,
            clients,
            keys,
            info,
            seed,
            stale_read,
            history,
        } => {
            for h in history {
                checkbench::bench_recorded(h)?;
            }
            if history.is_empty() {
                for &c in clients {
                    checkbench::bench_generated(checkbench::Shape {
                        ops: *ops,
                        clients: c,
                        keys: *keys,
                        info: *info,
                        seed: *seed,
                        stale_read: *stale_read,
                    })?;
                }
            }
            return Ok(true);
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
        if let Some(out) = &results {
            let row = suite::Row::new(&report, sc.server, sc.nodes, sc.time_limit.as_secs(), &commit);
            if let Err(e) = suite::append(out, &row) {
                println!("    could not append to {}: {e:#}", out.display());
            }
        }
        if report.passed {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    if let Some(out) = &results {
        let rows = suite::load(out)?;
        let table = out.with_extension("md");
        std::fs::write(&table, suite::markdown(&rows, &skipped))?;
        println!(
            "{} scenario runs in {} (table: {})",
            rows.len(),
            out.display(),
            table.display()
        );
        println!("{}", suite::total_line(&suite::counted(&rows, &skipped).0));
    }
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
