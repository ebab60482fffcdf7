//! `timonctl`'s command line: etcdctl v3's syntax, output formats, error
//! lines (`Error: ...` on stderr) and exit codes.
//!
//! # Layout
//! - `mod.rs`: global flags, dispatch, exit codes, the connection.
//! - `kv.rs`: put / get / del flags and their translation into requests
//!   (shared with txn, whose lines are put / get / del commands).
//! - `txn.rs`: etcdctl's line-based txn syntax read from stdin.
//! - `endpoint.rs`: endpoint status / health (`--cluster` included).
//! - `member.rs`: member list / add / remove / promote / update.
//! - `lease.rs`: lease grant / revoke / timetolive / list / keep-alive.
//! - `auth.rs`: auth enable / disable / status, user and role commands.
//! - `lock.rs`: lock and elect (sessions, held until a signal).
//! - `watch.rs`: watch, its argument rules, output formats and exec mode.
//! - `snapshot.rs`: snapshot save / status / restore (etcd's backend format).
//! - `printer.rs`: the simple and json renderings of KV responses.
//! - `json.rs`: Go `encoding/json`-compatible rendering of etcd messages.
//! - `table.rs`: the ASCII tables of `-w table`.
//! - `go.rs`: Go formatting helpers (durations, quoting, byte sizes).

mod auth;
mod endpoint;
use timon_go as go;
mod json;
mod kv;
mod lease;
mod lock;
mod member;
mod printer;
mod snapshot;
mod table;
mod txn;
mod watch;

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use timon_client::{Client, ConnectOptions};

/// etcdctl's exit codes (`ctlv3/command/error.go`).
pub mod exit {
    pub const ERROR: i32 = 1;
    pub const BAD_CONNECTION: i32 = 2;
    pub const INVALID_INPUT: i32 = 3;
    pub const BAD_FEATURE: i32 = 4;
    pub const BAD_ARGS: i32 = 128;
}

#[derive(Debug, Parser)]
#[command(
    name = "timonctl",
    version,
    about = "A command line client for timon and etcd (etcdctl v3 compatible)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// gRPC endpoints
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        env = "ETCDCTL_ENDPOINTS"
    )]
    pub endpoints: Vec<String>,
    /// set the output format (json, simple, table)
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple",
        env = "ETCDCTL_WRITE_OUT"
    )]
    pub write_out: String,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub hex: bool,
    /// dial timeout for client connections
    #[arg(long, global = true, default_value = "2s", env = "ETCDCTL_DIAL_TIMEOUT")]
    pub dial_timeout: String,
    /// timeout for short running command (excluding dial timeout)
    #[arg(long, global = true, default_value = "5s", env = "ETCDCTL_COMMAND_TIMEOUT")]
    pub command_timeout: String,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    pub cacert: Option<PathBuf>,
    /// identify secure client using this TLS certificate file
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    pub cert: Option<PathBuf>,
    /// identify secure client using this TLS key file
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    pub key: Option<PathBuf>,
    /// skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY")]
    pub insecure_skip_tls_verify: bool,
    /// disable transport security for client connections
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_value = "true",
        default_missing_value = "true", action = clap::ArgAction::Set, env = "ETCDCTL_INSECURE_TRANSPORT")]
    pub insecure_transport: bool,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, global = true, env = "ETCDCTL_USER")]
    pub user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD")]
    pub password: Option<String>,
}

impl GlobalArgs {
    /// etcdctl's rule: TLS when a CA, certificate or key is given, or when
    /// `--insecure-transport=false`; `--insecure-skip-tls-verify` then
    /// accepts any server certificate.
    pub fn tls(&self) -> Option<timon_client::ClientTls> {
        let any_file = self.cacert.is_some() || self.cert.is_some() || self.key.is_some();
        if !any_file && self.insecure_transport {
            return None;
        }
        Some(timon_client::ClientTls {
            ca_file: self.cacert.clone(),
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            insecure_skip_verify: self.insecure_skip_tls_verify,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Puts the given key into the store
    Put(kv::PutArgs),
    /// Gets the key or a range of keys
    Get(kv::GetArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(kv::DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(txn::TxnArgs),
    /// Compacts the event history in etcd
    Compaction(kv::CompactionArgs),
    /// Endpoint related commands
    Endpoint(endpoint::EndpointArgs),
    /// Membership related commands
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Watches events stream on keys or prefixes
    Watch(watch::WatchArgs),
    /// Lease related commands
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// Acquires a named lock
    Lock(lock::LockArgs),
    /// Observes and participates in leader election
    Elect(lock::ElectArgs),
    /// Enable or disable authentication
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// User related commands
    #[command(subcommand)]
    User(auth::UserCommand),
    /// Role related commands
    #[command(subcommand)]
    Role(auth::RoleCommand),
    /// Manages etcd node snapshots
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

/// A command that failed: printed as `Error: {message}`, exits with `code`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<timon_client::Error> for Failure {
    /// A request that ran out of time reads as clientv3's context error.
    fn from(error: timon_client::Error) -> Self {
        match error {
            timon_client::Error::Timeout { .. } => Failure::new(exit::ERROR, "context deadline exceeded"),
            other => Failure::new(exit::ERROR, other.to_string()),
        }
    }
}

/// The output format chosen with `-w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple { hex: bool },
    Json,
    Table,
}

/// What every command gets: the output format, timeouts and a way to dial.
pub struct Context {
    pub global: GlobalArgs,
    pub format: Format,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
}

impl Context {
    /// Connects to the `--endpoints`. An unreachable cluster reports what
    /// etcdctl reports for it, so scripts matching that text keep working.
    pub async fn client(&self) -> Result<Client, Failure> {
        self.client_for(&self.global.endpoints).await
    }

    /// Connects to the given endpoints only. Requests fail over between
    /// them and retry until `--command-timeout`, as clientv3 retries until
    /// its context expires.
    pub async fn client_for(&self, endpoints: &[String]) -> Result<Client, Failure> {
        self.connect(endpoints, self.command_timeout).await
    }

    /// Connects to the `--endpoints` with a request deadline other than
    /// `--command-timeout` (watch creation waits much longer).
    pub async fn client_with_request_timeout(&self, request_timeout: Duration) -> Result<Client, Failure> {
        self.connect(&self.global.endpoints, request_timeout).await
    }

    async fn connect(&self, endpoints: &[String], request_timeout: Duration) -> Result<Client, Failure> {
        let mut options = ConnectOptions::default()
            .with_connect_timeout(self.dial_timeout)
            .with_request_timeout(request_timeout);
        if let Some(tls) = self.global.tls() {
            options = options.with_tls(tls);
        }
        if let Some((user, password)) = self.credentials()? {
            options = options.with_user(user, password);
        }
        match Client::connect_with_options(endpoints, options).await {
            Ok(client) => Ok(client),
            Err(timon_client::Error::Connect { .. }) => Err(Failure::new(exit::ERROR, "context deadline exceeded")),
            // A failed authentication happens while dialing: etcdctl exits
            // with its bad-connection code.
            Err(e @ timon_client::Error::Rpc { .. }) => Err(Failure::new(exit::BAD_CONNECTION, e.to_string())),
            Err(other) => Err(Failure::new(exit::BAD_ARGS, other.to_string())),
        }
    }

    /// `--user name[:password]` and `--password` (etcdctl's `authCfgFromCmd`).
    fn credentials(&self) -> Result<Option<(String, String)>, Failure> {
        let Some(user) = self.global.user.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if let Some(password) = self.global.password.as_deref().filter(|p| !p.is_empty()) {
            return Ok(Some((user.to_string(), password.to_string())));
        }
        match user.split_once(':') {
            Some((u, p)) => Ok(Some((u.to_string(), p.to_string()))),
            None => {
                out("Password: ");
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
                Ok(Some((
                    user.to_string(),
                    line.trim_end_matches(['\r', '\n']).to_string(),
                )))
            }
        }
    }

    /// Runs one request under `--command-timeout`.
    pub async fn timed<T>(&self, request: impl Future<Output = timon_client::Result<T>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.command_timeout, request).await {
            Ok(result) => result.map_err(Failure::from),
            Err(_) => Err(Failure::new(exit::ERROR, "context deadline exceeded")),
        }
    }
}

/// Writes to stdout as the command goes, so interactive prompts appear
/// before input is read. Write errors (a closed pipe) are ignored, as
/// etcdctl's `fmt.Print` ignores them.
pub fn out(bytes: impl AsRef<[u8]>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes.as_ref());
    let _ = stdout.flush();
}

/// Writes to stderr.
pub fn err(bytes: impl AsRef<[u8]>) {
    let _ = std::io::stderr().lock().write_all(bytes.as_ref());
}

/// Parses the command line, runs the command and returns the exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return report_parse_error(error),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            err(format!("Error: {e}\n"));
            return exit::ERROR;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => 0,
        Err(failure) => {
            if !failure.message.is_empty() {
                err(format!("Error: {}\n", failure.message));
            }
            failure.code
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let format = match cli.global.write_out.as_str() {
        "simple" => Format::Simple { hex: cli.global.hex },
        "json" => Format::Json,
        "table" => Format::Table,
        // Only watch prints fields; it reads `-w` itself (`watch::WatchFormat`).
        "fields" if matches!(cli.command, Command::Watch(_)) => Format::Simple { hex: cli.global.hex },
        "fields" | "protobuf" => {
            return Err(Failure::new(
                exit::BAD_FEATURE,
                format!("{} output is not supported by timonctl", cli.global.write_out),
            ))
        }
        _ => return Err(Failure::new(exit::BAD_FEATURE, "unsupported output format")),
    };
    let dial_timeout = go::parse_duration(&cli.global.dial_timeout).map_err(|e| Failure::new(exit::ERROR, e))?;
    let command_timeout = go::parse_duration(&cli.global.command_timeout).map_err(|e| Failure::new(exit::ERROR, e))?;
    let ctx = Context {
        global: cli.global,
        format,
        dial_timeout,
        command_timeout,
    };
    match cli.command {
        Command::Put(args) => kv::put(&ctx, args).await,
        Command::Get(args) => kv::get(&ctx, args).await,
        Command::Del(args) => kv::del(&ctx, args).await,
        Command::Txn(args) => txn::run(&ctx, args).await,
        Command::Compaction(args) => kv::compaction(&ctx, args).await,
        Command::Endpoint(args) => endpoint::run(&ctx, args).await,
        Command::Member(command) => member::run(&ctx, command).await,
        Command::Watch(args) => watch::run(&ctx, args).await,
        Command::Lease(command) => lease::run(&ctx, command).await,
        Command::Lock(args) => lock::lock(&ctx, args).await,
        Command::Elect(args) => lock::elect(&ctx, args).await,
        Command::Auth(command) => auth::auth(&ctx, command).await,
        Command::User(command) => auth::user(&ctx, command).await,
        Command::Role(command) => auth::role(&ctx, command).await,
        Command::Snapshot(command) => snapshot::run(&ctx, command).await,
    }
}

/// Help and version go to stdout with exit 0; a bad command line is an
/// `Error:` line like cobra's, e.g. `Error: unknown flag: --foo`.
fn report_parse_error(error: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return 0;
        }
        _ => {}
    }
    err(format!("Error: {}\n", parse_error_message(&error)));
    exit::ERROR
}

/// A bad command line in cobra's words (also used for the lines of
/// `watch -i`, which etcdctl parses with the same flag library).
pub fn parse_error_message(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let invalid = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(arg.clone()),
        _ => None,
    };
    match (error.kind(), invalid) {
        (ErrorKind::UnknownArgument, Some(arg)) if arg.starts_with("--") => {
            format!("unknown flag: {}", arg.split('=').next().unwrap_or_default())
        }
        (ErrorKind::UnknownArgument, Some(arg)) if arg.starts_with('-') => {
            let short = arg.trim_start_matches('-').chars().next().unwrap_or('-');
            format!("unknown shorthand flag: '{short}' in {arg}")
        }
        (ErrorKind::InvalidSubcommand, Some(command)) => {
            format!("unknown command \"{command}\" for \"timonctl\"")
        }
        (ErrorKind::ValueValidation, Some(arg)) => {
            // Only the integer flags can fail validation; word it as
            // cobra + strconv do.
            let flag = arg.split_whitespace().next().unwrap_or_default().to_owned();
            let value = match error.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(value)) => value.clone(),
                _ => String::new(),
            };
            let quoted = format!("{value:?}");
            format!("invalid argument {quoted} for \"{flag}\" flag: strconv.ParseInt: parsing {quoted}: invalid syntax")
        }
        _ => {
            let rendered = error.render().to_string();
            rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned()
        }
    }
}
