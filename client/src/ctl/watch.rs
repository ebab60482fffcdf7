//! `watch`: etcdctl's `watch [options] [key or prefix] [range_end] [--]
//! [exec-command arg1 arg2 ...]`, with its argument checks (including the
//! `ETCDCTL_WATCH_KEY` / `ETCDCTL_WATCH_RANGE_END` variables), its output in
//! the simple, json and fields formats, and its exit: `watch is canceled by
//! the server` (exit 5) once the watch ends. `watch -i` reads `watch ...`
//! and `progress` lines from stdin, every watch printing as it goes, and
//! exits 3 at the end of the input, as etcdctl does.
//!
//! One difference from etcdctl, on purpose: etcdctl's clientv3 ends the
//! watch when its member loses its leader (`watch was canceled
//! (etcdserver: no leader)`); timonctl's watcher resumes on the next
//! `--endpoints` member without a gap (see the client's `watch` module) and
//! keeps printing.

use std::time::Duration;

use clap::{Args, Parser};
use timon_client::proto::etcdserverpb::{ResponseHeader, WatchResponse};
use timon_client::proto::mvccpb::event::EventType;
use timon_client::proto::mvccpb::KeyValue;
use timon_client::{is_progress_notify, Client, Error, Watch, Watcher};
use tokio::io::AsyncBufReadExt;

use super::json::{self, WatchJson};
use super::{err, exit, go, out, parse_error_message, printer, txn, Context, Failure};

/// etcdctl's `ExitInterrupted`: the watch ended.
const EXIT_INTERRUPTED: i32 = 5;

/// How long creating the watch may take. etcdctl waits for as long as its
/// client keeps retrying, i.e. without limit.
const CREATE_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// [key or prefix] [range_end]
    pub args: Vec<String>,
    /// [exec-command arg1 arg2 ...], run for every event
    #[arg(last = true)]
    pub exec: Vec<String>,
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prev_kv: bool,
}

/// How watch responses are printed (`-w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFormat {
    Simple {
        hex: bool,
    },
    Json,
    Fields,
    /// etcdctl accepts it and fails at the first response.
    Table,
}

impl WatchFormat {
    pub fn from_flag(write_out: &str, hex: bool) -> Option<WatchFormat> {
        match write_out {
            "simple" => Some(WatchFormat::Simple { hex }),
            "json" => Some(WatchFormat::Json),
            "fields" => Some(WatchFormat::Fields),
            "table" => Some(WatchFormat::Table),
            _ => None,
        }
    }
}

fn bad_args(message: impl Into<String>) -> Failure {
    Failure::new(exit::BAD_ARGS, message)
}

const BAD_ARGS_NUM: &str = "bad number of arguments";
const BAD_ARGS_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";
const BAD_ARGS_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";

/// What to watch and what to run, after etcdctl's `parseWatchArgs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub watch_args: Vec<String>,
    pub exec: Vec<String>,
}

/// etcdctl's checks, in its order. `raw` is the command line after the
/// `watch` word (etcdctl reads `os.Args` to find the `--` separator),
/// `env_key` / `env_range` the `ETCDCTL_WATCH_*` variables.
pub fn plan(args: &WatchArgs, raw: &[String], env_key: &str, env_range: &str) -> Result<Plan, Failure> {
    check_env(env_key, env_range)?;
    let separator = raw.iter().position(|a| a == "--");
    if separator.is_some_and(|at| at + 1 == raw.len()) {
        return Err(bad_args(BAD_ARGS_SEPARATOR));
    }
    if separator.is_none() && raw.is_empty() && env_key.is_empty() {
        return Err(bad_args(BAD_ARGS_NUM));
    }
    if !env_key.is_empty() && !args.args.is_empty() {
        return Err(bad_args(BAD_ARGS_CONFLICT_ENV));
    }
    Ok(with_env(args, env_key, env_range))
}

fn check_env(env_key: &str, env_range: &str) -> Result<(), Failure> {
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(bad_args(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            go::quote(env_range.as_bytes())
        )));
    }
    Ok(())
}

/// The key (and range end) from the environment, then the arguments.
fn with_env(args: &WatchArgs, env_key: &str, env_range: &str) -> Plan {
    let mut watch_args = Vec::new();
    if !env_key.is_empty() {
        watch_args.push(env_key.to_owned());
        if !env_range.is_empty() {
            watch_args.push(env_range.to_owned());
        }
    }
    watch_args.extend(args.args.iter().cloned());
    Plan {
        watch_args,
        exec: args.exec.clone(),
    }
}

/// One line of `watch -i` (its words after `watch`), checked as etcdctl
/// checks it. A bad flag or argument count ends timonctl, as in etcdctl.
pub fn plan_line(words: &[String], env_key: &str, env_range: &str) -> Result<(WatchArgs, Plan), Failure> {
    if words.last().is_some_and(|w| w == "--") {
        return Err(bad_args(BAD_ARGS_SEPARATOR));
    }
    let parsed = Line::try_parse_from(words).map_err(|e| bad_args(parse_error_message(&e)))?;
    let args = parsed.args;
    let has_exec = words.iter().any(|w| w == "--");
    if !has_exec && env_key.is_empty() && args.args.is_empty() {
        return Err(bad_args(BAD_ARGS_NUM));
    }
    if !has_exec && !args.args.is_empty() && !env_key.is_empty() {
        return Err(bad_args(BAD_ARGS_CONFLICT_ENV));
    }
    let plan = with_env(&args, env_key, env_range);
    Ok((args, plan))
}

/// The flags of one `watch -i` line.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Line {
    #[command(flatten)]
    args: WatchArgs,
}

/// etcdctl's `getWatchChan`: the watch for `watch_args` and the flags, or
/// the text of what is wrong with them.
fn build_watch(client: &Client, watch_args: &[String], flags: &WatchArgs) -> Result<Watch, String> {
    let Some(key) = watch_args.first() else {
        return Err(BAD_ARGS_NUM.to_owned());
    };
    let mut watch = client.watch(key.as_str()).start_revision(flags.rev);
    if watch_args.len() == 2 {
        if flags.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".to_owned());
        }
        watch = watch.range_end(watch_args[1].as_str());
    }
    if flags.prefix {
        watch = watch.prefix();
    }
    if flags.prev_kv {
        watch = watch.prev_kv();
    }
    Ok(watch)
}

/// The command line after the first `watch` word.
fn raw_args() -> Vec<String> {
    std::env::args().skip(1).skip_while(|a| a != "watch").skip(1).collect()
}

pub async fn run(ctx: &Context, args: WatchArgs) -> Result<(), Failure> {
    let format = WatchFormat::from_flag(&ctx.global.write_out, ctx.global.hex)
        .ok_or_else(|| Failure::new(exit::BAD_FEATURE, "unsupported output format"))?;
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let (env_key, env_range) = (env("ETCDCTL_WATCH_KEY"), env("ETCDCTL_WATCH_RANGE_END"));
    if args.interactive {
        check_env(&env_key, &env_range)?;
        return interactive(ctx, format, &env_key, &env_range).await;
    }
    let plan = plan(&args, &raw_args(), &env_key, &env_range)?;
    let client = ctx.client_with_request_timeout(CREATE_TIMEOUT).await?;
    let watch = build_watch(&client, &plan.watch_args, &args).map_err(bad_args)?;
    print_watch(format, watch.await, &plan.exec).await?;
    Err(Failure::new(EXIT_INTERRUPTED, "watch is canceled by the server"))
}

/// etcdctl's `printWatchCh`: prints every response of the watch until it
/// ends (a watch that could not be created ends at once, cancelled).
async fn print_watch(
    format: WatchFormat,
    created: timon_client::Result<Watcher>,
    exec: &[String],
) -> Result<(), Failure> {
    match created {
        Ok(mut watcher) => {
            while let Some(item) = watcher.recv().await {
                match item {
                    Ok(response) => {
                        if is_progress_notify(&response) {
                            let revision = response.header.as_ref().map_or(0, |h| h.revision);
                            out(format!("progress notify: {revision}\n"));
                        }
                        out(render(format, &response)?);
                        run_exec(exec, &response).await?;
                    }
                    Err(error) => canceled(format, &error)?,
                }
            }
        }
        Err(error) => canceled(format, &error)?,
    }
    Ok(())
}

/// `watch -i`: one command per line until the input ends. Each watch prints
/// from a task of its own; a failure there (a failed exec command, `-w
/// table`) ends timonctl as it ends etcdctl.
async fn interactive(ctx: &Context, format: WatchFormat, env_key: &str, env_range: &str) -> Result<(), Failure> {
    let client = ctx.client_with_request_timeout(CREATE_TIMEOUT).await?;
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    loop {
        let mut buffer = Vec::new();
        let read = input.read_until(b'\n', &mut buffer).await;
        let line = match read {
            Ok(_) if buffer.last() == Some(&b'\n') => {
                buffer.pop();
                String::from_utf8_lossy(&buffer).into_owned()
            }
            Ok(_) => return Err(read_error("EOF")),
            Err(e) => return Err(read_error(&e.to_string())),
        };
        let words = txn::argify(&line)?;
        match words.first().map(String::as_str) {
            None => err(format!("Invalid command: {line} (watch and progress supported)\n")),
            Some("watch") => {
                if words.len() < 2 && env_key.is_empty() {
                    err(format!(
                        "Invalid command {line} (command type or key is not provided)\n"
                    ));
                    continue;
                }
                let (flags, plan) = plan_line(&words[1..], env_key, env_range)?;
                let watch = match build_watch(&client, &plan.watch_args, &flags) {
                    Ok(watch) => watch,
                    Err(reason) => {
                        err(format!("Invalid command {line} ({reason})\n"));
                        continue;
                    }
                };
                // Like clientv3's Watch, wait for the creation before the
                // next line.
                let created = watch.await;
                tokio::spawn(async move {
                    if let Err(failure) = print_watch(format, created, &plan.exec).await {
                        if !failure.message.is_empty() {
                            err(format!("Error: {}\n", failure.message));
                        }
                        std::process::exit(failure.code);
                    }
                });
            }
            Some("progress") => client.request_progress().await?,
            Some(_) => err(format!("Invalid command {line} (only support watch)\n")),
        }
    }
}

fn read_error(reason: &str) -> Failure {
    Failure::new(
        exit::INVALID_INPUT,
        format!("Error reading watch request line: {reason}"),
    )
}

/// What etcdctl prints for the response that ends a watch.
fn canceled(format: WatchFormat, error: &Error) -> Result<(), Failure> {
    err(format!("watch was canceled ({error})\n"));
    let (header, compact_revision) = match error {
        Error::Compacted {
            header,
            compact_revision,
        } => (*header, *compact_revision),
        _ => (None, 0),
    };
    let compacted = compact_revision != 0;
    let json = WatchJson {
        header: header.as_ref(),
        // clientv3 builds the compacted response from etcd's (no events);
        // the one for a closed stream has a nil event list.
        events: compacted.then_some(&[]),
        compact_revision,
        canceled: true,
        created: false,
    };
    out(render_parts(format, &json)?);
    Ok(())
}

pub fn render(format: WatchFormat, response: &WatchResponse) -> Result<Vec<u8>, Failure> {
    render_parts(
        format,
        &WatchJson {
            header: response.header.as_ref(),
            events: Some(&response.events),
            compact_revision: response.compact_revision,
            canceled: response.canceled,
            created: response.created,
        },
    )
}

fn render_parts(format: WatchFormat, response: &WatchJson<'_>) -> Result<Vec<u8>, Failure> {
    let events = response.events.unwrap_or_default();
    let mut text = Vec::new();
    match format {
        WatchFormat::Simple { hex } => {
            for event in events {
                text.extend_from_slice(event_type(event.r#type).as_bytes());
                text.push(b'\n');
                if let Some(prev) = &event.prev_kv {
                    printer::key_value(&mut text, hex, false, prev);
                }
                let kv = event.kv.clone().unwrap_or_default();
                printer::key_value(&mut text, hex, false, &kv);
            }
        }
        WatchFormat::Json => {
            text.extend_from_slice(json::watch(response).as_bytes());
            text.push(b'\n');
        }
        WatchFormat::Fields => {
            let header = response.header.cloned().unwrap_or_default();
            fields_header(&mut text, &header);
            for event in events {
                text.extend_from_slice(format!("\"Type\" : {}\n", event_type(event.r#type)).as_bytes());
                if let Some(prev) = &event.prev_kv {
                    fields_kv(&mut text, "Prev", prev);
                }
                fields_kv(&mut text, "", &event.kv.clone().unwrap_or_default());
            }
        }
        WatchFormat::Table => return Err(Failure::new(exit::BAD_FEATURE, "table not supported as output format")),
    }
    Ok(text)
}

/// Go's `String()` of mvccpb's event type.
fn event_type(value: i32) -> String {
    match EventType::try_from(value) {
        Ok(kind) => kind.as_str_name().to_owned(),
        Err(_) => value.to_string(),
    }
}

fn fields_header(text: &mut Vec<u8>, header: &ResponseHeader) {
    text.extend_from_slice(
        format!(
            "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
            header.cluster_id, header.member_id, header.revision, header.raft_term
        )
        .as_bytes(),
    );
}

fn fields_kv(text: &mut Vec<u8>, prefix: &str, kv: &KeyValue) {
    text.extend_from_slice(
        format!(
            "\"{prefix}Key\" : {}\n\"{prefix}CreateRevision\" : {}\n\"{prefix}ModRevision\" : {}\n\"{prefix}Version\" : {}\n\"{prefix}Value\" : {}\n\"{prefix}Lease\" : {}\n",
            go::quote(&kv.key),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            go::quote(&kv.value),
            kv.lease
        )
        .as_bytes(),
    );
}

/// Runs the exec command once per event, as etcdctl does: with the event in
/// `ETCD_WATCH_*` variables, its output on ours, and exit 1 when it fails.
async fn run_exec(exec: &[String], response: &WatchResponse) -> Result<(), Failure> {
    let Some((program, arguments)) = exec.split_first() else {
        return Ok(());
    };
    let revision = response.header.as_ref().map_or(0, |h| h.revision);
    for event in &response.events {
        let kv = event.kv.clone().unwrap_or_default();
        let status = tokio::process::Command::new(program)
            .args(arguments)
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", go::quote(event_type(event.r#type).as_bytes()))
            .env("ETCD_WATCH_KEY", go::quote(&kv.key))
            .env("ETCD_WATCH_VALUE", go::quote(&kv.value))
            .status()
            .await;
        let failure = match status {
            Ok(status) if status.success() => continue,
            Ok(status) => match status.code() {
                Some(code) => format!("exit status {code}"),
                None => format!("signal: {}", signal_name(status)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!(
                    "exec: {}: executable file not found in $PATH",
                    go::quote(program.as_bytes())
                )
            }
            Err(e) => e.to_string(),
        };
        let quoted: Vec<String> = exec.iter().map(|a| go::quote(a.as_bytes())).collect();
        err(format!("command [{}] error ({failure})\n", quoted.join(" ")));
        // etcdctl exits at once, without an `Error:` line.
        return Err(Failure::new(exit::ERROR, ""));
    }
    Ok(())
}

/// Go's name for the signal that ended a command (`syscall.Signal`).
pub(super) fn signal_name(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(1) => "hangup".to_owned(),
        Some(2) => "interrupt".to_owned(),
        Some(3) => "quit".to_owned(),
        Some(6) => "aborted".to_owned(),
        Some(9) => "killed".to_owned(),
        Some(11) => "segmentation fault".to_owned(),
        Some(13) => "broken pipe".to_owned(),
        Some(15) => "terminated".to_owned(),
        Some(other) => format!("signal {other}"),
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use timon_client::proto::mvccpb::Event;

    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Watch {
        #[command(flatten)]
        args: WatchArgs,
    }

    fn parse(line: &[&str]) -> WatchArgs {
        Watch::try_parse_from(line).expect("valid command line").args
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn plan_of(line: &[&str], env_key: &str, env_range: &str) -> Result<Plan, Failure> {
        plan(&parse(line), &strings(line), env_key, env_range)
    }

    #[test]
    fn exec_command_follows_the_separator() {
        let p = plan_of(&["foo", "--rev", "2", "--", "echo", "x"], "", "").expect("valid");
        assert_eq!(p.watch_args, strings(&["foo"]));
        assert_eq!(p.exec, strings(&["echo", "x"]));
        let failure = plan_of(&["foo", "--"], "", "").expect_err("no command");
        assert_eq!(
            (failure.code, failure.message.as_str()),
            (
                exit::BAD_ARGS,
                "bad number of arguments (found separator --, but no commands)"
            )
        );
    }

    #[test]
    fn environment_key_rules_match_etcdctl() {
        let p = plan_of(&["--prefix"], "foo", "").expect("key from env");
        assert_eq!(p.watch_args, strings(&["foo"]));
        let p = plan_of(&["--", "echo"], "a", "b").expect("range from env");
        assert_eq!((p.watch_args, p.exec), (strings(&["a", "b"]), strings(&["echo"])));
        assert_eq!(
            plan_of(&["foo"], "foo", "").map_err(|f| f.message),
            Err("bad number of arguments (found conflicting environment key)".to_owned())
        );
        assert_eq!(
            plan_of(&["foo"], "", "bar").map_err(|f| f.message),
            Err("ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=\"bar\"".to_owned())
        );
        assert_eq!(
            plan_of(&[], "", "").map_err(|f| f.message),
            Err(BAD_ARGS_NUM.to_owned())
        );
    }

    #[test]
    fn interactive_lines_are_checked_like_etcdctl() {
        let line = |words: &[&str], env_key: &str| plan_line(&strings(words), env_key, "");
        let (flags, plan) = line(&["k", "--prefix", "--rev", "3", "--", "echo", "x"], "").expect("valid");
        assert!(flags.prefix && flags.rev == 3);
        assert_eq!((plan.watch_args, plan.exec), (strings(&["k"]), strings(&["echo", "x"])));
        let (_, plan) = line(&["--prev-kv"], "env").expect("key from env");
        assert_eq!(plan.watch_args, strings(&["env"]));
        let message = |words: &[&str], env_key: &str| line(words, env_key).map(|_| ()).map_err(|f| (f.code, f.message));
        assert_eq!(
            message(&["k", "--"], ""),
            Err((exit::BAD_ARGS, BAD_ARGS_SEPARATOR.to_owned()))
        );
        assert_eq!(
            message(&["--prefix"], ""),
            Err((exit::BAD_ARGS, BAD_ARGS_NUM.to_owned()))
        );
        assert_eq!(
            message(&["k"], "env"),
            Err((exit::BAD_ARGS, BAD_ARGS_CONFLICT_ENV.to_owned()))
        );
        assert_eq!(
            message(&["--bogus", "k"], ""),
            Err((exit::BAD_ARGS, "unknown flag: --bogus".to_owned()))
        );
    }

    fn kv(key: &[u8], value: &[u8], revision: i64) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: 2,
            mod_revision: revision,
            version: 1,
            lease: 0,
        }
    }

    #[test]
    fn simple_and_fields_print_events_like_etcdctl() {
        let response = WatchResponse {
            header: Some(ResponseHeader {
                cluster_id: 7,
                member_id: 8,
                revision: 3,
                raft_term: 2,
            }),
            events: vec![Event {
                r#type: EventType::Put as i32,
                kv: Some(kv(b"k", b"new", 3)),
                prev_kv: Some(kv(b"k", b"old\"", 2)),
            }],
            ..WatchResponse::default()
        };
        assert_eq!(
            render(WatchFormat::Simple { hex: false }, &response),
            Ok(b"PUT\nk\nold\"\nk\nnew\n".to_vec())
        );
        let fields = String::from_utf8(render(WatchFormat::Fields, &response).expect("fields")).expect("utf8");
        assert_eq!(
            fields,
            "\"ClusterID\" : 7\n\"MemberID\" : 8\n\"Revision\" : 3\n\"RaftTerm\" : 2\n\"Type\" : PUT\n\
             \"PrevKey\" : \"k\"\n\"PrevCreateRevision\" : 2\n\"PrevModRevision\" : 2\n\"PrevVersion\" : 1\n\
             \"PrevValue\" : \"old\\\"\"\n\"PrevLease\" : 0\n\"Key\" : \"k\"\n\"CreateRevision\" : 2\n\
             \"ModRevision\" : 3\n\"Version\" : 1\n\"Value\" : \"new\"\n\"Lease\" : 0\n"
        );
        assert_eq!(
            render(WatchFormat::Table, &response).map_err(|f| f.code),
            Err(exit::BAD_FEATURE)
        );
    }
}
