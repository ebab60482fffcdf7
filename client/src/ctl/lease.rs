//! `lease grant / revoke / timetolive / list / keep-alive`: etcdctl 3.4's
//! argument checks, messages, exit codes and simple output. Only the
//! simple format is rendered; `-w json` and `-w table` are refused.

use clap::{Args, Subcommand};
use timon_client::proto::etcdserverpb::{LeaseKeepAliveResponse, LeaseTimeToLiveResponse};

use super::{exit, go, out, Context, Failure, Format};

#[derive(Debug, Clone, Subcommand)]
pub enum LeaseCommand {
    /// Creates leases
    Grant(ArgList),
    /// Revokes leases
    Revoke(ArgList),
    /// Get lease information
    Timetolive(TimeToLiveArgs),
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    KeepAlive(KeepAliveArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ArgList {
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TimeToLiveArgs {
    /// <leaseID>
    pub args: Vec<String>,
    /// Get keys attached to this lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub keys: bool,
}

#[derive(Debug, Clone, Args)]
pub struct KeepAliveArgs {
    /// <leaseID>
    pub args: Vec<String>,
    /// Resets the keep-alive time to its original value and exits immediately
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub once: bool,
}

pub async fn run(ctx: &Context, command: LeaseCommand) -> Result<(), Failure> {
    if !matches!(ctx.format, Format::Simple { .. }) {
        return Err(Failure::new(
            exit::BAD_FEATURE,
            "only the simple output format is supported for lease",
        ));
    }
    match command {
        LeaseCommand::Grant(a) => grant(ctx, &a.args).await,
        LeaseCommand::Revoke(a) => revoke(ctx, &a.args).await,
        LeaseCommand::Timetolive(a) => time_to_live(ctx, &a).await,
        LeaseCommand::List => list(ctx).await,
        LeaseCommand::KeepAlive(a) => keep_alive(ctx, &a).await,
    }
}

fn bad_args(message: impl Into<String>) -> Failure {
    Failure::new(exit::BAD_ARGS, message)
}

/// Go's `strconv.ParseInt(text, base, 64)` error reason, or the value.
pub fn parse_int(text: &str, base: u32) -> Result<i64, &'static str> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err("invalid syntax");
    }
    let mut value: i128 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let digit = c.to_digit(base).ok_or("invalid syntax")?;
        value = value * i128::from(base) + i128::from(digit);
        if value > i128::from(i64::MAX) + 1 {
            overflow = true;
            value = i128::from(i64::MAX) + 1;
        }
    }
    let value = if negative { -value } else { value };
    if overflow || value > i128::from(i64::MAX) {
        return Err("value out of range");
    }
    Ok(value as i64)
}

/// etcdctl's `leaseFromArgs`: a hexadecimal lease ID.
pub fn lease_id(arg: &str) -> Result<i64, Failure> {
    parse_int(arg, 16).map_err(|reason| {
        bad_args(format!(
            "bad lease ID arg (strconv.ParseInt: parsing {}: {reason}), expecting ID in Hex",
            go::quote(arg.as_bytes())
        ))
    })
}

async fn grant(ctx: &Context, args: &[String]) -> Result<(), Failure> {
    let [ttl] = args else {
        return Err(bad_args("lease grant command needs TTL argument"));
    };
    let ttl = parse_int(ttl, 10).map_err(|reason| {
        bad_args(format!(
            "bad TTL (strconv.ParseInt: parsing {}: {reason})",
            go::quote(ttl.as_bytes())
        ))
    })?;
    let client = ctx.client().await?;
    let resp = ctx
        .timed(client.lease_grant(ttl, 0))
        .await
        .map_err(|f| Failure::new(exit::ERROR, format!("failed to grant lease ({})", f.message)))?;
    out(format!("lease {:016x} granted with TTL({}s)\n", resp.id, resp.ttl));
    Ok(())
}

async fn revoke(ctx: &Context, args: &[String]) -> Result<(), Failure> {
    let [id] = args else {
        return Err(bad_args("lease revoke command needs 1 argument"));
    };
    let id = lease_id(id)?;
    let client = ctx.client().await?;
    ctx.timed(client.lease_revoke(id))
        .await
        .map_err(|f| Failure::new(exit::ERROR, format!("failed to revoke lease ({})", f.message)))?;
    out(format!("lease {id:016x} revoked\n"));
    Ok(())
}

/// etcdctl's simple `TimeToLive` line.
pub fn time_to_live_line(resp: &LeaseTimeToLiveResponse, keys: bool) -> String {
    if resp.granted_ttl == 0 && resp.ttl == -1 {
        return format!("lease {:016x} already expired\n", resp.id);
    }
    let mut text = format!(
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        resp.id, resp.granted_ttl, resp.ttl
    );
    if keys {
        let keys: Vec<String> = resp
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        text.push_str(&format!(", attached keys([{}])", keys.join(" ")));
    }
    text.push('\n');
    text
}

async fn time_to_live(ctx: &Context, a: &TimeToLiveArgs) -> Result<(), Failure> {
    let [id] = a.args.as_slice() else {
        return Err(bad_args("lease timetolive command needs lease ID as argument"));
    };
    let id = lease_id(id)?;
    let client = ctx.client().await?;
    let resp = ctx
        .timed(client.lease_time_to_live(id, a.keys))
        .await
        .map_err(|f| Failure::new(exit::BAD_CONNECTION, f.message))?;
    out(time_to_live_line(&resp, a.keys));
    Ok(())
}

async fn list(ctx: &Context) -> Result<(), Failure> {
    let client = ctx.client().await?;
    let resp = ctx
        .timed(client.lease_leases())
        .await
        .map_err(|f| Failure::new(exit::BAD_CONNECTION, f.message))?;
    let mut text = format!("found {} leases\n", resp.leases.len());
    for lease in &resp.leases {
        text.push_str(&format!("{:016x}\n", lease.id));
    }
    out(text);
    Ok(())
}

fn keep_alive_line(resp: &LeaseKeepAliveResponse) -> String {
    format!("lease {:016x} keepalived with TTL({})\n", resp.id, resp.ttl)
}

async fn keep_alive(ctx: &Context, a: &KeepAliveArgs) -> Result<(), Failure> {
    let [id] = a.args.as_slice() else {
        return Err(bad_args("lease keep-alive command needs lease ID as argument"));
    };
    let id = lease_id(id)?;
    let client = ctx.client().await?;
    if a.once {
        let resp = ctx
            .timed(client.lease_keep_alive_once(id))
            .await
            .map_err(|f| Failure::new(exit::BAD_CONNECTION, f.message))?;
        out(keep_alive_line(&resp));
        return Ok(());
    }
    let mut keep_alive = client.lease_keep_alive(id);
    // Like clientv3, failing renewals are retried until the lease's TTL has
    // passed since the last good one; the output ends when the lease is gone.
    let mut alive_until: Option<std::time::Instant> = None;
    while let Some(answer) = keep_alive.next().await {
        match answer {
            Ok(resp) => {
                alive_until = Some(std::time::Instant::now() + std::time::Duration::from_secs(resp.ttl.max(0) as u64));
                out(keep_alive_line(&resp));
            }
            Err(_) if alive_until.is_some_and(|t| std::time::Instant::now() < t) => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                keep_alive = client.lease_keep_alive(id);
            }
            Err(e) => return Err(Failure::new(exit::BAD_CONNECTION, e.to_string())),
        }
    }
    out(format!("lease {id:016x} expired or revoked.\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn parse_int_is_gos() {
        assert_eq!(parse_int("694d7b3a1c2e8f01", 16), Ok(0x694d7b3a1c2e8f01));
        assert_eq!(parse_int("-1", 16), Ok(-1));
        assert_eq!(parse_int("zz", 16), Err("invalid syntax"));
        assert_eq!(parse_int("", 10), Err("invalid syntax"));
        assert_eq!(parse_int("8000000000000000", 16), Err("value out of range"));
        assert_eq!(parse_int("-8000000000000000", 16), Ok(i64::MIN));
    }
}
