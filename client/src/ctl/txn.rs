//! `txn`: etcdctl's line-based transaction syntax, read from stdin.
//!
//! Three sections, each ended by a blank line: compares such as
//! `mod("k") > "0"` or `val("k") = "v"`, then the success operations, then
//! the failure operations, each written as a `put` / `get` / `del` command
//! line. Input that ends before the last blank line is an `EOF` error, as
//! in etcdctl.

use std::io::BufRead;

use clap::{Args, Parser, Subcommand};
use timon_client::{Compare, CompareResult, Op, TxnRequest};

use super::kv::{self, DelArgs, GetArgs, PutArgs};
use super::{exit, go, out, printer, Context, Failure};

#[derive(Debug, Clone, Args)]
pub struct TxnArgs {
    /// txn takes no positional arguments
    pub args: Vec<String>,
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub interactive: bool,
}

pub async fn run(ctx: &Context, args: TxnArgs) -> Result<(), Failure> {
    if !args.args.is_empty() {
        return Err(Failure::new(exit::BAD_ARGS, "txn command does not accept argument"));
    }
    let stdin = std::io::stdin();
    let mut reader = stdin.lock();
    let interactive = args.interactive;
    let request = parse(&mut reader, &mut |prompt| {
        if interactive {
            out(format!("{prompt}\n"));
        }
    })?;
    let client = ctx.client().await?;
    // etcdctl commits a txn without its command timeout.
    let response = client.txn_request(request).await?;
    out(printer::txn(ctx.format, &response)?);
    Ok(())
}

/// Reads the three sections, calling `prompt` before each.
pub fn parse(reader: &mut dyn BufRead, prompt: &mut dyn FnMut(&str)) -> Result<TxnRequest, Failure> {
    prompt("compares:");
    let mut compares = Vec::new();
    while let Some(line) = next_line(reader)? {
        compares.push(parse_compare(&line)?);
    }
    prompt("success requests (get, put, del):");
    let success = read_ops(reader)?;
    prompt("failure requests (get, put, del):");
    let failure = read_ops(reader)?;
    Ok(TxnRequest::new().when(compares).and_then(success).or_else(failure))
}

fn invalid_input(message: impl Into<String>) -> Failure {
    Failure::new(exit::INVALID_INPUT, message)
}

/// The next trimmed line, or `None` at the blank line closing a section.
/// A line without its newline is an error, matching Go's `ReadString`.
fn next_line(reader: &mut dyn BufRead) -> Result<Option<String>, Failure> {
    let mut buffer = Vec::new();
    reader
        .read_until(b'\n', &mut buffer)
        .map_err(|e| invalid_input(e.to_string()))?;
    if buffer.last() != Some(&b'\n') {
        return Err(invalid_input("EOF"));
    }
    let line = String::from_utf8_lossy(&buffer).trim().to_owned();
    Ok(if line.is_empty() { None } else { Some(line) })
}

fn read_ops(reader: &mut dyn BufRead) -> Result<Vec<Op>, Failure> {
    let mut ops = Vec::new();
    while let Some(line) = next_line(reader)? {
        ops.push(parse_op(&line)?);
    }
    Ok(ops)
}

/// `target("key") op "value"`, scanned like Go's `"%q) %s %q"`.
pub fn parse_compare(line: &str) -> Result<Compare, Failure> {
    let (target, rest) = line
        .split_once('(')
        .ok_or_else(|| invalid_input(format!("malformed comparison: {line}")))?;
    let mut key = Vec::new();
    let mut op = String::new();
    let mut value = Vec::new();
    let scanned = scan_compare(rest, &mut key, &mut op, &mut value);
    if scanned != 3 {
        return Err(invalid_input(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            go::quote(&key),
            go::quote(&value)
        )));
    }
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        // etcdctl panics here; an error is kinder.
        _ => {
            return Err(invalid_input(format!(
                "malformed comparison: {line} (unknown operator {op})"
            )))
        }
    };
    let number = || {
        kv::parse_int(&String::from_utf8_lossy(&value), 10)
            .map_err(|_| invalid_input(format!("invalid txn compare request: {line}")))
    };
    let compare = match target {
        "ver" | "version" => Compare::version(key).with(result, number()?),
        "c" | "create" => Compare::create_revision(key).with(result, number()?),
        "m" | "mod" => Compare::mod_revision(key).with(result, number()?),
        "val" | "value" => Compare::value(key).with(result, value.clone()),
        "lease" => Compare::lease(key).with(result, number()?),
        _ => {
            return Err(invalid_input(format!(
                "malformed comparison: {line} (unknown target {target})"
            )))
        }
    };
    Ok(compare)
}

/// Fills key, op and value in turn; returns how many were scanned.
fn scan_compare(input: &str, key: &mut Vec<u8>, op: &mut String, value: &mut Vec<u8>) -> usize {
    let Some((k, rest)) = go::scan_quoted(input) else {
        return 0;
    };
    *key = k;
    let Some(rest) = rest.strip_prefix(')') else {
        return 1;
    };
    let rest = rest.trim_start();
    let op_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if op_len == 0 {
        return 1;
    }
    *op = rest[..op_len].to_owned();
    let Some((v, _)) = go::scan_quoted(&rest[op_len..]) else {
        return 2;
    };
    *value = v;
    3
}

#[derive(Parser)]
#[command(no_binary_name = true)]
struct OpLine {
    #[command(subcommand)]
    op: OpCommand,
}

#[derive(Subcommand)]
enum OpCommand {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// One operation line: a put / get / del command with etcdctl's flags.
pub fn parse_op(line: &str) -> Result<Op, Failure> {
    let words = argify(line)?;
    if words.len() < 2 {
        return Err(invalid_input(format!("invalid txn compare request: {line}")));
    }
    let parsed = OpLine::try_parse_from(&words).map_err(|_| invalid_input(format!("invalid txn request: {line}")))?;
    Ok(match parsed.op {
        OpCommand::Put(args) => kv::put_request(&args, None)?.into(),
        OpCommand::Get(args) => kv::get_request(&args)?.into(),
        OpCommand::Del(args) => kv::delete_request(&args)?.into(),
    })
}

/// Splits a line into words the way etcdctl does: `"double quoted"` words
/// with Go escapes, `'single quoted'` words taken literally, otherwise runs
/// of non-space characters (a stray quote that closes nothing is skipped).
pub fn argify(line: &str) -> Result<Vec<String>, Failure> {
    let mut words = Vec::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        match c {
            '"' => match double_quoted_len(rest) {
                Some(len) => {
                    let (word, _) = go::scan_quoted(&rest[..len]).ok_or_else(|| invalid_input("invalid syntax"))?;
                    words.push(String::from_utf8_lossy(&word).into_owned());
                    rest = &rest[len..];
                }
                None => rest = &rest[1..],
            },
            '\'' => match rest[1..].find('\'') {
                Some(end) => {
                    words.push(rest[1..end + 1].to_owned());
                    rest = &rest[end + 2..];
                }
                None => rest = &rest[1..],
            },
            c if c.is_whitespace() => rest = &rest[c.len_utf8()..],
            _ => {
                let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
                words.push(rest[..len].to_owned());
                rest = &rest[len..];
            }
        }
    }
    Ok(words)
}

/// Length of a `"..."` word at the start of `text`, honouring `\"`.
fn double_quoted_len(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_client::proto::etcdserverpb::compare::{CompareTarget, TargetUnion};
    use timon_client::proto::etcdserverpb::request_op::Request;

    fn parse_text(text: &str) -> Result<TxnRequest, Failure> {
        let mut prompts = Vec::new();
        let result = parse(&mut text.as_bytes(), &mut |p| prompts.push(p.to_owned()));
        assert!(prompts.len() <= 3);
        result
    }

    #[test]
    fn three_sections_become_compares_success_and_failure() {
        let txn = parse_text("mod(\"a\") > \"0\"\nval(\"b\") = \"x y\"\n\nput a 2\nget a --prefix\n\ndel a\n\n")
            .expect("valid")
            .into_inner();
        assert_eq!(txn.compare.len(), 2);
        assert_eq!(txn.compare[0].target, CompareTarget::Mod as i32);
        assert_eq!(txn.compare[0].result, CompareResult::Greater as i32);
        assert_eq!(txn.compare[1].target_union, Some(TargetUnion::Value(b"x y".to_vec())));
        assert_eq!(txn.success.len(), 2);
        match &txn.success[1].request {
            Some(Request::RequestRange(r)) => assert_eq!(r.range_end, b"b".to_vec()),
            other => panic!("expected a range, got {other:?}"),
        }
        assert_eq!(txn.failure.len(), 1);
    }

    #[test]
    fn input_ending_early_is_eof() {
        let failure = parse_text("\n\n").expect_err("missing failure section");
        assert_eq!((failure.code, failure.message.as_str()), (exit::INVALID_INPUT, "EOF"));
        assert!(parse_text("\n\n\n").is_ok());
        assert_eq!(parse_text("\n\n\nput a b").map_err(|f| f.code).err(), None);
    }

    #[test]
    fn compare_errors_use_etcdctl_messages() {
        let bad = parse_compare("bogus").expect_err("no paren");
        assert_eq!(bad.message, "malformed comparison: bogus");
        let bad = parse_compare("mod(\"a\") >").expect_err("no value");
        assert_eq!(bad.message, "malformed comparison: mod(\"a\") >; got mod(\"a\") > \"\"");
        let bad = parse_compare("foo(\"a\") = \"1\"").expect_err("unknown target");
        assert_eq!(
            bad.message,
            "malformed comparison: foo(\"a\") = \"1\" (unknown target foo)"
        );
        let bad = parse_compare("ver(\"a\") = \"x\"").expect_err("not a number");
        assert_eq!(bad.message, "invalid txn compare request: ver(\"a\") = \"x\"");
    }

    #[test]
    fn op_lines_use_etcdctl_errors() {
        let bad = parse_op("put").expect_err("too short");
        assert_eq!(bad.message, "invalid txn compare request: put");
        let bad = parse_op("watch a").expect_err("unknown command");
        assert_eq!(
            (bad.code, bad.message.as_str()),
            (exit::INVALID_INPUT, "invalid txn request: watch a")
        );
    }

    #[test]
    fn argify_handles_quotes() {
        let words = argify(r#"put "a key" 'it''s' x\y "tab\tbed""#).expect("valid");
        assert_eq!(words, vec!["put", "a key", "it", "s", "x\\y", "tab\tbed"]);
        assert_eq!(argify("put \"open k").expect("valid"), vec!["put", "open", "k"]);
    }
}
