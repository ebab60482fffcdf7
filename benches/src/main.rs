//! `timon-bench`: run one workload against any etcd-API endpoints, or
//! `compare` timon with etcd. See benches/README.md.

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use timon_bench::compare::{self, CompareArgs};
use timon_bench::defrag::{self, DefragArgs};
use timon_bench::options::Common;
use timon_bench::scale::{self, ScaleArgs};
use timon_bench::stall::{self, StallArgs};
use timon_bench::workload::{self, Workload};

#[derive(Parser)]
#[command(name = "timon-bench", about = "etcd-style benchmark for timon and etcd", version)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Run(Workload),
    /// Start a 3-member timon and a 3-member etcd cluster, run every workload
    /// on both and write benches/results/<date>.{json,svg}. Without
    /// --clients/--conns it uses 100 clients over 10 connections.
    Compare(CompareArgs),
    /// The longest write stall when the leader of a 3-member cluster gets
    /// SIGTERM, one client writing through the followers; timon and etcd.
    Stall(StallArgs),
    /// Write latency while one member defragments a store filled to --size
    /// (1 GiB), on timon and on etcd. Without --rate/--clients/--conns/
    /// --val-size it writes 500 puts/s of 1 KiB from 4 clients on 4 connections.
    Defrag(DefragArgs),
    /// Big stores, timon against etcd (issue 15): 1M keys, big lists, a
    /// 12 GiB member, a compaction of 1M revisions under writes; --parts
    /// picks some. Without --val-size/--duration/--clients/--conns the
    /// throughput runs put 1 KiB values for 10 s from 100 clients on 10
    /// connections.
    Scale(ScaleArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches)?;
    let defaulted = |id: &str| matches!(matches.value_source(id), None | Some(ValueSource::DefaultValue));
    match &cli.cmd {
        Cmd::Run(w) => {
            let report = workload::run(w, &cli.common, !cli.common.json).await?;
            if cli.common.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
        }
        Cmd::Compare(args) => {
            if defaulted("clients") {
                cli.common.clients = compare::DEFAULT_CLIENTS;
            }
            if defaulted("conns") {
                cli.common.conns = compare::DEFAULT_CONNS;
            }
            compare::run(args, &cli.common).await?;
        }
        Cmd::Stall(args) => stall::run(args).await?,
        Cmd::Defrag(args) => {
            if defaulted("rate") {
                cli.common.rate = defrag::DEFAULT_RATE;
            }
            if defaulted("clients") {
                cli.common.clients = defrag::DEFAULT_CLIENTS;
            }
            if defaulted("conns") {
                cli.common.conns = cli.common.clients;
            }
            if defaulted("val_size") {
                cli.common.val_size = defrag::DEFAULT_VALUE_SIZE;
            }
            defrag::run(args, &cli.common).await?;
        }
        Cmd::Scale(args) => {
            if defaulted("val_size") {
                cli.common.val_size = scale::DEFAULT_VALUE_SIZE;
            }
            if cli.common.duration.is_none() {
                cli.common.duration = Some(scale::DEFAULT_DURATION);
            }
            if defaulted("clients") {
                cli.common.clients = scale::DEFAULT_CLIENTS;
            }
            if defaulted("conns") {
                cli.common.conns = scale::DEFAULT_CONNS;
            }
            scale::run(args, &cli.common).await?;
        }
    }
    Ok(())
}
