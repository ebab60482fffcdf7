//! timon's logs, as etcd writes them: zap's JSON lines (`zap`), one object
//! per line, to the outputs of `--log-outputs`, at `--log-level`; zap's
//! console lines with `--log-format console`; tracing's plain text with
//! `--logger capnslog` (etcd 3.4's deprecated logger).
//!
//! timon logs through `tracing`; this module only installs the subscriber
//! ([`init`]) and formats its events (`zap`). The messages and fields of
//! the lines operators alert on are etcd's, at the code that measures or
//! sees the event (`raft::log_store` "slow fdatasync", `raft::leader_log`
//! leader changes, ...); docs/OPERATIONS.md lists them.
//!
//! `TIMON_LOG` (an `EnvFilter` directive such as `debug,openraft=info`)
//! overrides `--log-level`.

mod outputs;
pub mod zap;

use std::sync::OnceLock;

use time::OffsetDateTime;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub use outputs::Outputs;
use zap::{Encoding, Line, ZapFormat};

use crate::config::LoggingFlags;

/// What [`fatal`] writes with, once [`init`] ran.
static INSTALLED: OnceLock<(Outputs, Option<Encoding>)> = OnceLock::new();

/// Opens the outputs and installs the subscriber. An output that cannot be
/// opened is an error (nothing is logged then). In a process that already
/// has a subscriber (tests running several members) the first one stays.
pub fn init(flags: &LoggingFlags) -> anyhow::Result<()> {
    let outputs = Outputs::open(&flags.log_outputs)?;
    let level = match flags.log_level.as_str() {
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        // panic and fatal: zap's levels above error; tracing's highest is error.
        _ => "error",
    };
    let filter =
        EnvFilter::try_from_env("TIMON_LOG").unwrap_or_else(|_| EnvFilter::new(format!("{level},openraft=warn")));
    let encoding = match (flags.logger.as_str(), flags.log_format.as_str()) {
        ("capnslog", _) => None,
        (_, "console") => Some(Encoding::Console),
        _ => Some(Encoding::Json),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(outputs.clone());
    let installed = match encoding {
        Some(encoding) => tracing_subscriber::registry()
            .with(filter)
            .with(layer.event_format(ZapFormat { encoding }))
            .try_init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(layer.with_ansi(false))
            .try_init(),
    };
    if installed.is_ok() {
        let _ = INSTALLED.set((outputs, encoding));
        if encoding.is_some() {
            // A panic is a zap line too (etcd's lg.Panic level), with the
            // stack trace when RUST_BACKTRACE asks for one.
            std::panic::set_hook(Box::new(|info| {
                let msg = match (
                    info.payload().downcast_ref::<&str>(),
                    info.payload().downcast_ref::<String>(),
                ) {
                    (Some(s), _) => s.to_string(),
                    (_, Some(s)) => s.clone(),
                    _ => "panic".to_string(),
                };
                let (file, line) = info.location().map_or(("unknown", 0), |l| (l.file(), l.line()));
                let trace = std::backtrace::Backtrace::capture();
                let trace = match trace.status() {
                    std::backtrace::BacktraceStatus::Captured => Some(trace.to_string()),
                    _ => None,
                };
                write("panic", zap::short_caller(file, Some(line)), &msg, "stacktrace", trace);
            }));
        }
    }
    Ok(())
}

/// Writes one line outside tracing (levels tracing lacks), to the
/// configured outputs once [`init`] ran, else to stderr as zap JSON.
fn write(level: &str, caller: String, msg: &str, key: &str, value: Option<String>) {
    let (outputs, encoding) = match INSTALLED.get() {
        Some((outputs, encoding)) => (outputs.clone(), *encoding),
        None => (Outputs::stderr(), Some(Encoding::Json)),
    };
    let text = match encoding {
        Some(encoding) => Line {
            level,
            ts: zap::timestamp(OffsetDateTime::now_utc()),
            logger: None,
            caller,
            msg: msg.to_string(),
            fields: value.map(|v| (key.to_string(), v.into())).into_iter().collect(),
        }
        .encode(encoding),
        None => format!("timon: {msg}: {}", value.unwrap_or_default()),
    };
    outputs.write_line(format!("{text}\n").as_bytes());
}

/// Logs why timon stops, at zap's `fatal` level (which tracing lacks), as
/// etcd's `lg.Fatal` does, then the caller exits: to the configured outputs
/// once [`init`] ran, else to stderr as a zap JSON line.
#[track_caller]
pub fn fatal(msg: &str, error: &str) {
    let location = std::panic::Location::caller();
    let caller = zap::short_caller(location.file(), Some(location.line()));
    write("fatal", caller, msg, "error", Some(error.to_string()));
}
