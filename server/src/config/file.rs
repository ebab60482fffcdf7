//! `--config-file`: etcd's YAML configuration. Its keys are the flag names
//! (lists for the list flags), with the TLS settings of each side under
//! `client-transport-security` and `peer-transport-security`. As in etcd,
//! a config file replaces the command line and the environment; keys that
//! are no etcd flag are ignored (etcd's YAML decoder ignores them too).

use std::path::Path;

use serde_yaml::Value;

/// The flags a config file stands for, as `--name=value` arguments.
pub fn args_from_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    args_from_yaml(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

pub fn args_from_yaml(text: &str) -> Result<Vec<String>, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let Value::Mapping(map) = doc else {
        return if doc.is_null() {
            Ok(vec![])
        } else {
            Err("not a YAML mapping".into())
        };
    };
    let mut args = Vec::new();
    for (key, value) in &map {
        let Some(key) = key.as_str() else { continue };
        match key {
            "client-transport-security" => security(&mut args, value, Side::Client)?,
            "peer-transport-security" => security(&mut args, value, Side::Peer)?,
            _ => push(&mut args, key, value),
        }
    }
    Ok(args)
}

#[derive(Clone, Copy)]
enum Side {
    Client,
    Peer,
}

fn security(args: &mut Vec<String>, value: &Value, side: Side) -> Result<(), String> {
    let Value::Mapping(map) = value else {
        return if value.is_null() {
            Ok(())
        } else {
            Err("transport security must be a mapping".into())
        };
    };
    for (key, value) in map {
        let Some(key) = key.as_str() else { continue };
        let flag = match (side, key) {
            (Side::Client, "crl-file") => "client-crl-file".to_owned(),
            (Side::Client, "allowed-hostname") => "client-cert-allowed-hostname".to_owned(),
            (Side::Client, other) => other.to_owned(),
            (Side::Peer, "allowed-cn") => "peer-cert-allowed-cn".to_owned(),
            (Side::Peer, "allowed-hostname") => "peer-cert-allowed-hostname".to_owned(),
            (Side::Peer, "auto-tls") => "peer-auto-tls".to_owned(),
            (Side::Peer, "trusted-ca-file") => "peer-trusted-ca-file".to_owned(),
            (Side::Peer, other) => format!("peer-{other}"),
        };
        push(args, &flag, value);
    }
    Ok(())
}

/// One `--key=value`; a list becomes comma-separated, null or an empty
/// string (the YAML's unset) adds nothing.
fn push(args: &mut Vec<String>, key: &str, value: &Value) {
    let text = match value {
        Value::Null => return,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.is_empty() => return,
        Value::String(s) => s.clone(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => return,
    };
    args.push(format!("--{key}={text}"));
}

#[cfg(test)]
mod tests {
    use super::args_from_yaml;

    #[test]
    fn keys_become_flags_and_security_sections_their_sides() {
        let yaml = "name: n1\ndata-dir: /var/lib/etcd\nsnapshot-count: 10000\nlog-outputs: [stderr]\n\
                    initial-cluster-token: ''\nenable-v2: false\n\
                    client-transport-security:\n  cert-file: /c.crt\n  client-cert-auth: true\n  auto-tls: false\n\
                    peer-transport-security:\n  cert-file: /p.crt\n  trusted-ca-file: /ca.crt\n  auto-tls: true\n";
        let args = args_from_yaml(yaml).unwrap();
        assert_eq!(
            args,
            [
                "--name=n1",
                "--data-dir=/var/lib/etcd",
                "--snapshot-count=10000",
                "--log-outputs=stderr",
                "--enable-v2=false",
                "--cert-file=/c.crt",
                "--client-cert-auth=true",
                "--auto-tls=false",
                "--peer-cert-file=/p.crt",
                "--peer-trusted-ca-file=/ca.crt",
                "--peer-auto-tls=true",
            ]
        );
        assert!(args_from_yaml("- a\n- b\n").is_err());
        assert_eq!(args_from_yaml("").unwrap(), Vec::<String>::new());
    }
}
