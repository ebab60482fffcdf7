//! `lock <name> [command args...]` and `elect [-l] <name> [proposal]`, as
//! etcdctl 3.4 runs them: a session lease (`--ttl`, 10 s for lock, 60 s
//! for elect) kept alive in the background, the lock or campaign through
//! the Lock and Election services, the owned key printed as `get` prints
//! it, then held until SIGINT or SIGTERM (lock, elect) or until the
//! command exits (lock with a command, which gets the key and the fencing
//! revision in `ETCD_LOCK_KEY` and `ETCD_LOCK_REV`). `elect -l` prints
//! every leader value until interrupted.

use std::future::IntoFuture;

use clap::Args;
use timon_client::{Client, Session};
use tokio::signal::unix::{signal, SignalKind};

use super::{exit, out, printer, Context, Failure};

#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// <lockname> [exec-command arg1 arg2 ...]
    pub args: Vec<String>,
    /// timeout for session
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
}

#[derive(Debug, Clone, Args)]
pub struct ElectArgs {
    /// <election-name> [proposal]
    pub args: Vec<String>,
    /// observation mode
    #[arg(short = 'l', long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub listen: bool,
}

/// clientv3's default session TTL, which `elect` uses.
const ELECT_SESSION_TTL: i64 = 60;

/// Resolves at the first SIGINT or SIGTERM.
async fn interrupted() {
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn failed(e: timon_client::Error) -> Failure {
    Failure::new(exit::ERROR, e.to_string())
}

/// Prints `key` as `get` prints it; false if it does not exist.
async fn print_key(ctx: &Context, client: &Client, key: &[u8]) -> Result<bool, Failure> {
    let resp = ctx.timed(client.get(key.to_vec()).into_future()).await?;
    let text = printer::get(super::Format::Simple { hex: false }, &resp, false)?;
    out(text);
    Ok(!resp.kvs.is_empty())
}

pub async fn lock(ctx: &Context, a: LockArgs) -> Result<(), Failure> {
    let Some((name, command)) = a.args.split_first() else {
        return Err(Failure::new(
            exit::BAD_ARGS,
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let client = ctx.client().await?;
    let mut session = Session::new(&client, a.ttl).await.map_err(failed)?;
    let stop = interrupted();
    tokio::pin!(stop);
    let held = tokio::select! {
        held = client.lock(name.as_bytes().to_vec(), session.lease()) => held.map_err(failed)?,
        () = &mut stop => return Err(Failure::new(exit::ERROR, "context canceled")),
    };
    let revision = held.header.as_ref().map_or(0, |h| h.revision);
    if let Some((program, arguments)) = command.split_first() {
        let status = tokio::process::Command::new(program)
            .args(arguments)
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&held.key).as_ref())
            .env("ETCD_LOCK_REV", revision.to_string())
            .status()
            .await;
        let unlocked = client.unlock(held.key.clone()).await;
        let _ = session.close().await;
        return match status {
            Ok(s) if s.success() => unlocked.map(|_| ()).map_err(failed),
            Ok(s) => Err(Failure::new(
                exit::ERROR,
                match s.code() {
                    Some(code) => format!("exit status {code}"),
                    None => format!("signal: {}", super::watch::signal_name(s)),
                },
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(
                exit::ERROR,
                format!(
                    "exec: {}: executable file not found in $PATH",
                    super::go::quote(program.as_bytes())
                ),
            )),
            Err(e) => Err(Failure::new(exit::ERROR, e.to_string())),
        };
    }
    if !print_key(ctx, &client, &held.key).await? {
        return Err(Failure::new(exit::ERROR, "lock lost on init"));
    }
    tokio::select! {
        () = &mut stop => {
            client.unlock(held.key).await.map_err(failed)?;
            let _ = session.close().await;
            Ok(())
        }
        () = session.done() => Err(Failure::new(exit::ERROR, "session expired")),
    }
}

pub async fn elect(ctx: &Context, a: ElectArgs) -> Result<(), Failure> {
    let bad = |m: &str| Err(Failure::new(exit::BAD_ARGS, m));
    match (a.args.as_slice(), a.listen) {
        ([name], true) => observe(ctx, name).await,
        ([_], false) => bad("no proposal argument but -l not set"),
        ([_, _], true) => bad("proposal given but -l is set"),
        ([name, proposal], false) => campaign(ctx, name, proposal).await,
        _ => bad("elect takes one election name argument and an optional proposal argument"),
    }
}

async fn observe(ctx: &Context, name: &str) -> Result<(), Failure> {
    let client = ctx.client().await?;
    let mut leaders = client.observe(name.as_bytes().to_vec()).await.map_err(failed)?;
    let stop = interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            next = leaders.next() => match next {
                Ok(Some(leader)) => {
                    let mut text = Vec::new();
                    if let Some(kv) = &leader.kv {
                        printer::key_value(&mut text, false, false, kv);
                    }
                    out(text);
                }
                _ => return Err(Failure::new(exit::ERROR, "elect: observer lost")),
            },
        }
    }
}

async fn campaign(ctx: &Context, name: &str, proposal: &str) -> Result<(), Failure> {
    let client = ctx.client().await?;
    let mut session = Session::new(&client, ELECT_SESSION_TTL).await.map_err(failed)?;
    let stop = interrupted();
    tokio::pin!(stop);
    let won = tokio::select! {
        won = client.campaign(name.as_bytes().to_vec(), proposal.as_bytes().to_vec(), session.lease()) => {
            won.map_err(failed)?
        }
        () = &mut stop => return Err(Failure::new(exit::ERROR, "context canceled")),
    };
    let leader = won.leader.unwrap_or_default();
    print_key(ctx, &client, &leader.key).await?;
    tokio::select! {
        () = &mut stop => {
            client.resign(leader).await.map_err(failed)?;
            let _ = session.close().await;
            Ok(())
        }
        () = session.done() => Err(Failure::new(exit::ERROR, "elect: session expired")),
    }
}
