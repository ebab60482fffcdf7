//! From what the user typed to what clap parses: Go's flag spellings, etcd
//! 3.6's renamed flags and feature gates, and every etcd flag timon does
//! not act on (taken out and reported, so an etcd unit file or kubeadm
//! manifest starts timon as it starts etcd). Only a flag that no etcd
//! version has is left for clap to refuse.

use std::collections::BTreeSet;

use super::etcd_flags::{Kind, ETCD_FLAGS, FEATURE_GATES, FEATURE_GATES_36, RENAMED_IN_36};

/// The arguments for clap, and the etcd flags given that timon only accepts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    pub args: Vec<String>,
    pub not_acted_on: Vec<String>,
}

/// `known` holds the long names clap defines (without dashes).
pub fn prepare(args: impl IntoIterator<Item = String>, known: &BTreeSet<String>) -> Result<Prepared, String> {
    let mut out = Prepared::default();
    let mut iter = normalize_go_flags(args).into_iter();
    if let Some(program) = iter.next() {
        out.args.push(program);
    }
    let mut gates: Vec<String> = Vec::new();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--").filter(|f| !f.is_empty()) else {
            out.args.push(arg);
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.to_owned(), None),
        };
        let name = RENAMED_IN_36
            .iter()
            .find(|(_, new)| *new == name && !known.contains(*new))
            .map(|(old, _)| old.to_string())
            .unwrap_or(name);
        if name == "feature-gates" {
            let value = match value {
                Some(v) => v,
                None => iter.next().ok_or("flag needs an argument: -feature-gates")?,
            };
            gates.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        if known.contains(&name) || name == "help" || name == "version" {
            out.args.push(match value {
                Some(v) => format!("--{name}={v}"),
                None => format!("--{name}"),
            });
            continue;
        }
        match ETCD_FLAGS.iter().find(|f| f.name == name) {
            Some(f) => {
                if f.kind == Kind::Value && value.is_none() {
                    iter.next().ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                }
                out.not_acted_on.push(format!("--{name}"));
            }
            // Unknown to every etcd: clap refuses it with its message.
            None => out.args.push(arg),
        }
    }
    for gate in gates {
        let (gate_name, on) = match gate.split_once('=') {
            Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
            None => return Err(format!("missing bool value for {gate}")),
        };
        if !matches!(on.as_str(), "true" | "false") {
            return Err(format!(
                "invalid value of {gate_name}={on}, err: strconv.ParseBool: parsing {on:?}: invalid syntax"
            ));
        }
        if !FEATURE_GATES_36.iter().any(|(g, _)| *g == gate_name) {
            return Err(format!("unrecognized feature gate: {gate_name}"));
        }
        match FEATURE_GATES.iter().find(|(_, g)| *g == gate_name) {
            Some((old, _)) if known.contains(*old) => out.args.push(format!("--{old}={on}")),
            _ => out.not_acted_on.push(format!("--feature-gates={gate_name}")),
        }
    }
    Ok(out)
}

/// Go's flag package accepts `-name value` as well as `--name value`; etcd
/// users' unit files use both.
pub fn normalize_go_flags(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let single_dash_long = a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
            if i > 0 && single_dash_long && a.as_bytes()[1].is_ascii_alphabetic() {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

/// `ETCD_*` variables naming etcd flags that timon does not act on.
pub fn env_not_acted_on(known: &BTreeSet<String>) -> Vec<String> {
    std::env::vars()
        .filter_map(|(k, _)| {
            let flag = k.strip_prefix("ETCD_")?.to_ascii_lowercase().replace('_', "-");
            (!known.contains(&flag) && ETCD_FLAGS.iter().any(|f| f.name == flag)).then_some(k)
        })
        .collect()
}
