//! `put`, `get`, `del` and `compaction`: their flags, the validation
//! etcdctl performs (same messages, same exit codes, same order of checks),
//! and their translation into client requests. The translation functions
//! are shared with `txn`, whose lines are put / get / del commands.
//!
//! Boolean flags take an optional `=true` / `=false`, as cobra's do
//! (`--prefix=false`), hence their long `#[arg]` attributes.

use std::future::IntoFuture;
use std::io::Read;

use clap::Args;
use timon_client::{DeleteRequest, GetRequest, PutRequest, SortOrder, SortTarget};

use super::{exit, go, out, printer, Context, Failure, Format};

#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    /// <key> <value> (<value> can also be given from stdin)
    pub args: Vec<String>,
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub ignore_lease: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// <key> [range_end]
    pub args: Vec<String>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub keys_only: bool,
    /// Get only the count (json output only)
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub print_value_only: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DelArgs {
    /// <key> [range_end]
    pub args: Vec<String>,
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub from_key: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompactionArgs {
    /// <revision>
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub physical: bool,
}

fn bad_args(message: impl Into<String>) -> Failure {
    Failure::new(exit::BAD_ARGS, message)
}

/// Builds the Put request. The value comes from the second argument or, if
/// `stdin` is given, from all of standard input (etcdctl's `argOrStdin`).
pub fn put_request(args: &PutArgs, stdin: Option<&mut dyn Read>) -> Result<PutRequest, Failure> {
    const NEEDS_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    let key = args.args.first().ok_or_else(|| bad_args(NEEDS_ARGS))?;
    if args.ignore_value && args.args.len() > 1 {
        return Err(bad_args("put command needs only 1 argument when 'ignore-value' is set"));
    }
    let value: Vec<u8> = if args.ignore_value {
        Vec::new()
    } else if let Some(value) = args.args.get(1) {
        value.clone().into_bytes()
    } else {
        let mut buffer = Vec::new();
        let read = stdin.map(|reader| reader.read_to_end(&mut buffer));
        if !matches!(read, Some(Ok(_))) || buffer.is_empty() {
            return Err(bad_args(NEEDS_ARGS));
        }
        buffer
    };
    let lease = parse_int(&args.lease, 16).map_err(|e| bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    let mut request = PutRequest::new(key.as_str(), value);
    if lease != 0 {
        request = request.lease(lease);
    }
    if args.prev_kv {
        request = request.prev_kv();
    }
    if args.ignore_value {
        request = request.ignore_value();
    }
    if args.ignore_lease {
        request = request.ignore_lease();
    }
    Ok(request)
}

/// Builds the Range request, checking flags in etcdctl's order.
pub fn get_request(args: &GetArgs) -> Result<GetRequest, Failure> {
    let key = args
        .args
        .first()
        .ok_or_else(|| bad_args("get command needs one argument as key and an optional argument as range_end"))?;
    if args.prefix && args.from_key {
        return Err(bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if args.keys_only && args.count_only {
        return Err(bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let mut request = GetRequest::new(key.as_str());
    match args.consistency.as_str() {
        "s" => request = request.serializable(),
        "l" => {}
        other => {
            return Err(Failure::new(
                exit::BAD_FEATURE,
                format!("unknown consistency flag {}", go::quote(other.as_bytes())),
            ))
        }
    }
    if let Some(end) = args.args.get(1) {
        if args.prefix || args.from_key {
            return Err(too_many_arguments());
        }
        request = request.range_end(end.as_str());
    }
    request = request.limit(args.limit);
    if args.rev > 0 {
        request = request.revision(args.rev);
    }
    let order = match args.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(Failure::new(
                exit::BAD_FEATURE,
                format!("bad sort order {}", args.order),
            ))
        }
    };
    let target = match args.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(Failure::new(
                exit::BAD_FEATURE,
                format!("bad sort target {}", args.sort_by),
            ))
        }
    };
    request = request.sort(target, order);
    if args.prefix {
        request = request.prefix();
    }
    if args.from_key {
        request = request.from_key();
    }
    if args.keys_only {
        request = request.keys_only();
    }
    if args.count_only {
        request = request.count_only();
    }
    Ok(request)
}

/// Builds the DeleteRange request, checking arguments in etcdctl's order.
pub fn delete_request(args: &DelArgs) -> Result<DeleteRequest, Failure> {
    if args.args.is_empty() || args.args.len() > 2 {
        return Err(bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    if args.prefix && args.from_key {
        return Err(bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut request = DeleteRequest::new(args.args[0].as_str());
    if let Some(end) = args.args.get(1) {
        if args.prefix || args.from_key {
            return Err(too_many_arguments());
        }
        request = request.range_end(end.as_str());
    }
    if args.prefix {
        request = request.prefix();
    }
    if args.prev_kv {
        request = request.prev_kv();
    }
    if args.from_key {
        request = request.from_key();
    }
    Ok(request)
}

fn too_many_arguments() -> Failure {
    bad_args("too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
}

/// Go's `strconv.ParseInt(text, base, 64)`, with its error text.
pub fn parse_int(text: &str, base: u32) -> Result<i64, String> {
    let quoted = go::quote(text.as_bytes());
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(format!("strconv.ParseInt: parsing {quoted}: invalid syntax"));
    }
    let signed = if negative {
        format!("-{digits}")
    } else {
        digits.to_owned()
    };
    i64::from_str_radix(&signed, base).map_err(|_| format!("strconv.ParseInt: parsing {quoted}: value out of range"))
}

pub async fn put(ctx: &Context, args: PutArgs) -> Result<(), Failure> {
    let request = put_request(&args, Some(&mut std::io::stdin()))?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.put_request(request).into_future()).await?;
    out(printer::put(ctx.format, &response)?);
    Ok(())
}

pub async fn get(ctx: &Context, args: GetArgs) -> Result<(), Failure> {
    let request = get_request(&args)?;
    if args.count_only && matches!(ctx.format, Format::Simple { .. }) {
        return Err(bad_args("`--count-only` is only for `--write-out=json`"));
    }
    let client = ctx.client().await?;
    let response = ctx.timed(client.get_request(request).into_future()).await?;
    if args.print_value_only && !matches!(ctx.format, Format::Simple { .. }) {
        return Err(bad_args("print-value-only is only for `--write-out=simple`"));
    }
    out(printer::get(ctx.format, &response, args.print_value_only)?);
    Ok(())
}

pub async fn del(ctx: &Context, args: DelArgs) -> Result<(), Failure> {
    let request = delete_request(&args)?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.delete_request(request).into_future()).await?;
    out(printer::delete(ctx.format, &response)?);
    Ok(())
}

pub async fn compaction(ctx: &Context, args: CompactionArgs) -> Result<(), Failure> {
    if args.args.len() != 1 {
        return Err(bad_args("compaction command needs 1 argument"));
    }
    let revision = parse_int(&args.args[0], 10).map_err(|e| Failure::new(exit::ERROR, e))?;
    let client = ctx.client().await?;
    let mut compact = client.compact(revision);
    if args.physical {
        compact = compact.physical();
    }
    ctx.timed(compact.into_future()).await?;
    out(format!("compacted revision {revision}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Get {
        #[command(flatten)]
        args: GetArgs,
    }

    fn get(line: &[&str]) -> Result<timon_client::proto::etcdserverpb::RangeRequest, Failure> {
        let parsed = Get::try_parse_from(line).map_err(|e| Failure::new(-1, e.to_string()))?;
        get_request(&parsed.args).map(GetRequest::into_inner)
    }

    #[test]
    fn get_flags_map_to_request_fields() {
        let r = get(&[
            "k",
            "--prefix",
            "--limit",
            "2",
            "--rev",
            "7",
            "--keys-only",
            "--consistency",
            "s",
        ])
        .expect("valid");
        assert_eq!(r.range_end, b"l".to_vec());
        assert_eq!((r.limit, r.revision, r.keys_only, r.serializable), (2, 7, true, true));
        let r = get(&["k", "--order", "descend", "--sort-by", "modify"]).expect("valid");
        assert_eq!(r.sort_order, SortOrder::Descend as i32);
        assert_eq!(r.sort_target, SortTarget::Mod as i32);
    }

    #[test]
    fn get_rejects_what_etcdctl_rejects() {
        assert_eq!(get(&[]).map_err(|f| f.code), Err(exit::BAD_ARGS));
        assert_eq!(get(&["a", "b", "--prefix"]).map_err(|f| f.code), Err(exit::BAD_ARGS));
        assert_eq!(
            get(&["a", "--prefix", "--from-key"]).map_err(|f| f.code),
            Err(exit::BAD_ARGS)
        );
        let bad = get(&["a", "--consistency", "x"]).expect_err("bad consistency");
        assert_eq!(
            (bad.code, bad.message.as_str()),
            (exit::BAD_FEATURE, "unknown consistency flag \"x\"")
        );
        assert_eq!(
            get(&["a", "--order", "up"]).map_err(|f| f.message),
            Err("bad sort order up".into())
        );
    }

    #[test]
    fn lease_is_parsed_as_hex_like_strconv() {
        assert_eq!(parse_int("ff", 16), Ok(255));
        assert_eq!(
            parse_int("0x1", 16),
            Err("strconv.ParseInt: parsing \"0x1\": invalid syntax".to_owned())
        );
        assert!(parse_int("8000000000000000", 16).is_err());
    }

    #[test]
    fn put_value_from_stdin_when_only_key_given() {
        let args = PutArgs {
            args: vec!["k".into()],
            lease: "0".into(),
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
        };
        let mut stdin: &[u8] = b"from stdin\n";
        let request = put_request(&args, Some(&mut stdin)).expect("value read").into_inner();
        assert_eq!(request.value, b"from stdin\n".to_vec());
        assert_eq!(put_request(&args, None).map_err(|f| f.code), Err(exit::BAD_ARGS));
    }
}
