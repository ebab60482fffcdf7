//! `snapshot save | status | restore`: etcdctl 3.4's snapshot commands
//! (etcdutl's for status and restore in 3.5+), on etcd's backend format.
//! Save streams `Maintenance.Snapshot` into a file; status and restore read
//! the file with the server library (`timon_server::backup`), so a restore
//! writes exactly the data dir layout `timon` opens.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use timon_server::backup::{self, RestoreConfig};

use super::{exit, go, out, table, Context, Failure, Format};

/// etcdctl's `ExitInterrupted`, what a failed save exits with.
const EXIT_INTERRUPTED: i32 = 5;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stores an etcd node backend snapshot to a given file
    Save { filename: Vec<String> },
    /// Gets backend snapshot status of a given file
    Status { filename: Vec<String> },
    /// Restores an etcd member snapshot to an etcd directory
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    filename: Vec<String>,
    /// Path to the data directory
    #[arg(long, default_value = "")]
    data_dir: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(long, default_value = "http://localhost:2380")]
    initial_advertise_peer_urls: String,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    name: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    skip_hash_check: bool,
}

pub async fn run(ctx: &Context, command: SnapshotCommand) -> Result<(), Failure> {
    match command {
        SnapshotCommand::Save { filename } => save(ctx, &one(filename, "snapshot save expects one argument")?).await,
        SnapshotCommand::Status { filename } => {
            status(ctx, &one(filename, "snapshot status requires exactly one argument")?)
        }
        SnapshotCommand::Restore(args) => restore(args),
    }
}

fn one(mut args: Vec<String>, message: &str) -> Result<String, Failure> {
    match args.len() {
        1 => Ok(args.remove(0)),
        _ => Err(Failure::new(exit::BAD_ARGS, message)),
    }
}

/// etcd's `hasChecksum`: whole 512-byte sectors plus a 32-byte sha256.
fn has_checksum(len: u64) -> bool {
    backup::restore::has_checksum(len)
}

async fn save(ctx: &Context, path: &str) -> Result<(), Failure> {
    let endpoints = &ctx.global.endpoints;
    if endpoints.len() != 1 {
        return Err(Failure::new(
            exit::ERROR,
            format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                endpoints.join(" ")
            ),
        ));
    }
    let fail = |e: String| Failure::new(EXIT_INTERRUPTED, e);
    let client = ctx.client().await?;
    let part = format!("{path}.part");
    let result = async {
        let mut file = std::fs::File::create(&part).map_err(|e| fail(format!("could not open {part} ({e})")))?;
        let mut stream = client.snapshot().await.map_err(|e| fail(e.to_string()))?;
        let mut size = 0u64;
        while let Some(message) = stream.message().await.map_err(|e| fail(e.message().to_string()))? {
            file.write_all(&message.blob).map_err(|e| fail(e.to_string()))?;
            size += message.blob.len() as u64;
        }
        if !has_checksum(size) {
            return Err(fail(format!("sha256 checksum not found [bytes: {size}]")));
        }
        file.sync_all().map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&part, path).map_err(|e| fail(format!("could not rename {part} to {path} ({e})")))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result?;
    out(format!("Snapshot saved at {path}\n"));
    Ok(())
}

fn status(ctx: &Context, path: &str) -> Result<(), Failure> {
    let s = backup::status(std::path::Path::new(path)).map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    let row = vec![
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        go::humanize_bytes(s.total_size),
    ];
    match ctx.format {
        Format::Simple { .. } => out(format!("{}\n", row.join(", "))),
        Format::Table => out(table::render(&["hash", "revision", "total keys", "total size"], &[row])),
        Format::Json => out(format!(
            "{}\n",
            serde_json::to_string(&s).map_err(|e| Failure::new(exit::ERROR, e.to_string()))?
        )),
    }
    Ok(())
}

/// etcd's `VerifyBootstrap` for a restore: the member is named in
/// `--initial-cluster`, with the URLs it advertises.
fn verify_bootstrap(args: &RestoreArgs) -> Result<(), Failure> {
    let mut mine: Vec<&str> = Vec::new();
    for entry in args.initial_cluster.split(',').filter(|e| !e.is_empty()) {
        let Some((name, url)) = entry.split_once('=') else {
            return Err(Failure::new(
                exit::ERROR,
                format!("{entry} is not a valid key=value pair"),
            ));
        };
        if name == args.name {
            mine.push(url);
        }
    }
    if mine.is_empty() {
        return Err(Failure::new(
            exit::ERROR,
            format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                args.name
            ),
        ));
    }
    let mut advertised: Vec<&str> = args.initial_advertise_peer_urls.split(',').collect();
    advertised.sort_unstable();
    mine.sort_unstable();
    if mine != advertised {
        return Err(Failure::new(
            exit::ERROR,
            format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
                args.name,
                mine.join(","),
                args.initial_advertise_peer_urls
            ),
        ));
    }
    Ok(())
}

fn restore(args: RestoreArgs) -> Result<(), Failure> {
    let file = one(args.filename.clone(), "snapshot restore requires exactly one argument")?;
    verify_bootstrap(&args)?;
    let data_dir = match args.data_dir.as_str() {
        "" => PathBuf::from(format!("{}.etcd", args.name)),
        dir => PathBuf::from(dir),
    };
    let log = |msg: &str| {
        super::err(format!(
            "{{\"level\":\"info\",\"msg\":\"{msg}\",\"path\":{:?},\"data-dir\":{:?}}}\n",
            file,
            data_dir.display().to_string()
        ))
    };
    log("restoring snapshot");
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let cfg = RestoreConfig {
        snapshot: PathBuf::from(&file),
        data_dir: data_dir.clone(),
        skip_hash_check: args.skip_hash_check,
    };
    let result = backup::restore(&cfg, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let restored = result.map_err(|e| Failure::new(exit::ERROR, format!("{e:#}")))?;
    log("restored snapshot");
    super::err(format!(
        "restored revision {} (compacted at {}), {} revisions, {} leases, {} users, {} roles\n",
        restored.revision,
        restored.compact_revision,
        restored.revisions,
        restored.leases,
        restored.users,
        restored.roles
    ));
    Ok(())
}
