//! etcd's log line format: zap's production encoder as etcd 3.4/3.5
//! configure it (`client/pkg/logutil/zap.go`), as a tracing-subscriber
//! [`FormatEvent`].
//!
//! JSON (the default, `--log-format json`), one object per line:
//! `{"level":"info","ts":"2026-12-06T04:52:07.212Z","caller":"embed/serve.go:98","msg":"ready to serve client requests","address":"127.0.0.1:2379"}`
//! - `level`: lower case (`debug`, `info`, `warn`, `error`; tracing's
//!   `trace` is `debug`, the lowest zap level etcd uses);
//! - `ts`: zap's ISO 8601 encoder, milliseconds, always in UTC (`Z`);
//! - `logger`: only for raft's own lines (target `raft`), as etcd 3.5;
//! - `caller`: zap's short caller, the file's directory and name and the line;
//! - `msg`, then the event's fields in the order they were given, numbers
//!   and booleans as JSON values, everything else as strings.
//!
//! Console (`--log-format console`): zap's console encoder, the same parts
//! separated by tabs, the fields as one JSON object.

use std::fmt;

use serde_json::Value;
use time::macros::format_description;
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of raft's lines (`tracing::info!(target: RAFT_TARGET, ...)`),
/// written with `"logger":"raft"` as etcd 3.5 writes its raft library's.
pub const RAFT_TARGET: &str = "raft";

/// JSON or console lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Console,
}

/// The [`FormatEvent`] writing zap's lines.
#[derive(Debug, Clone, Copy)]
pub struct ZapFormat {
    pub encoding: Encoding,
}

/// zap's level names, as etcd's `LowercaseLevelEncoder` writes them.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// zap's ISO 8601 time with milliseconds, in UTC.
pub fn timestamp(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.format(&format).unwrap_or_default()
}

/// zap's `ShortCallerEncoder`: the last directory and the file name, and
/// the line (`raft/node.rs:120` for `server/src/raft/node.rs`).
pub fn short_caller(file: &str, line: Option<u32>) -> String {
    let mut parts = file.rsplitn(3, ['/', '\\']);
    let name = parts.next().unwrap_or(file);
    let short = match parts.next() {
        Some(dir) => format!("{dir}/{name}"),
        None => name.to_string(),
    };
    match line {
        Some(line) => format!("{short}:{line}"),
        None => short,
    }
}

/// One log line's parts, before encoding.
pub struct Line<'a> {
    pub level: &'a str,
    pub ts: String,
    pub logger: Option<&'a str>,
    pub caller: String,
    pub msg: String,
    pub fields: Vec<(String, Value)>,
}

impl Line<'_> {
    /// The line, without its newline.
    pub fn encode(&self, encoding: Encoding) -> String {
        match encoding {
            Encoding::Json => {
                let mut out = String::with_capacity(128);
                out.push('{');
                push_pair(&mut out, "level", &Value::from(self.level), ":");
                out.push(',');
                push_pair(&mut out, "ts", &Value::from(self.ts.as_str()), ":");
                if let Some(logger) = self.logger {
                    out.push(',');
                    push_pair(&mut out, "logger", &Value::from(logger), ":");
                }
                out.push(',');
                push_pair(&mut out, "caller", &Value::from(self.caller.as_str()), ":");
                out.push(',');
                push_pair(&mut out, "msg", &Value::from(self.msg.as_str()), ":");
                for (k, v) in &self.fields {
                    out.push(',');
                    push_pair(&mut out, k, v, ":");
                }
                out.push('}');
                out
            }
            Encoding::Console => {
                let mut out = format!("{}\t{}", self.ts, self.level);
                if let Some(logger) = self.logger {
                    out.push('\t');
                    out.push_str(logger);
                }
                out.push('\t');
                out.push_str(&self.caller);
                out.push('\t');
                out.push_str(&self.msg);
                if !self.fields.is_empty() {
                    // zap's console encoder writes the fields as spaced JSON.
                    out.push_str("\t{");
                    for (i, (k, v)) in self.fields.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        push_pair(&mut out, k, v, ": ");
                    }
                    out.push('}');
                }
                out
            }
        }
    }
}

fn push_pair(out: &mut String, key: &str, value: &Value, separator: &str) {
    out.push_str(&Value::from(key).to_string());
    out.push_str(separator);
    out.push_str(&value.to_string());
}

/// Collects `message` and the other fields of an event, in order.
#[derive(Default)]
struct Fields {
    msg: String,
    fields: Vec<(String, Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.msg = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                }
            }
            // The `log` crate's metadata, already in `caller`.
            name if name.starts_with("log.") => {}
            name => self.fields.push((name.to_string(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::from(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for ZapFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = Fields::default();
        event.record(&mut fields);
        let caller = match meta.file() {
            Some(file) => short_caller(file, meta.line()),
            None => meta.target().to_string(),
        };
        let line = Line {
            level: level_name(meta.level()),
            ts: timestamp(OffsetDateTime::now_utc()),
            logger: (meta.target() == RAFT_TARGET).then_some(RAFT_TARGET),
            caller,
            msg: fields.msg,
            fields: fields.fields,
        };
        writeln!(writer, "{}", line.encode(self.encoding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_caller_keeps_the_directory_and_the_file_as_zap_does() {
        assert_eq!(short_caller("server/src/raft/node.rs", Some(12)), "raft/node.rs:12");
        assert_eq!(short_caller("src/main.rs", Some(3)), "src/main.rs:3");
        assert_eq!(short_caller("main.rs", Some(3)), "main.rs:3");
        assert_eq!(
            short_caller(
                "/root/.cargo/registry/src/x/openraft-0.9.25/src/core/raft_core.rs",
                Some(7)
            ),
            "core/raft_core.rs:7"
        );
    }

    #[test]
    fn timestamps_are_zaps_iso8601_with_milliseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_796_532_727_212_345_678).unwrap();
        assert_eq!(timestamp(at), "2026-12-06T04:52:07.212Z");
    }

    fn sample() -> Line<'static> {
        Line {
            level: "info",
            ts: "2026-12-06T04:52:07.212Z".into(),
            logger: None,
            caller: "embed/serve.go:140".into(),
            msg: "serving client traffic insecurely; this is strongly discouraged!".into(),
            fields: vec![
                ("address".into(), Value::from("127.0.0.1:2379")),
                ("n".into(), Value::from(3u64)),
            ],
        }
    }

    #[test]
    fn json_lines_are_etcds() {
        // etcd 3.5.1's line, with a number field added.
        assert_eq!(
            sample().encode(Encoding::Json),
            r#"{"level":"info","ts":"2026-12-06T04:52:07.212Z","caller":"embed/serve.go:140","msg":"serving client traffic insecurely; this is strongly discouraged!","address":"127.0.0.1:2379","n":3}"#
        );
        let mut raft = sample();
        raft.logger = Some(RAFT_TARGET);
        raft.fields.clear();
        raft.msg = "raft.node: 1 elected leader 1 at term 2".into();
        assert_eq!(
            raft.encode(Encoding::Json),
            r#"{"level":"info","ts":"2026-12-06T04:52:07.212Z","logger":"raft","caller":"embed/serve.go:140","msg":"raft.node: 1 elected leader 1 at term 2"}"#
        );
    }

    #[test]
    fn console_lines_are_zaps_console_encoder() {
        assert_eq!(
            sample().encode(Encoding::Console),
            "2026-12-06T04:52:07.212Z\tinfo\tembed/serve.go:140\tserving client traffic insecurely; this is strongly discouraged!\t{\"address\": \"127.0.0.1:2379\", \"n\": 3}"
        );
    }

    #[test]
    fn quotes_and_newlines_in_messages_stay_one_json_line() {
        let mut line = sample();
        line.msg = "a \"quoted\"\nmessage".into();
        let text = line.encode(Encoding::Json);
        assert!(!text.contains('\n'));
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["msg"], "a \"quoted\"\nmessage");
    }
}
