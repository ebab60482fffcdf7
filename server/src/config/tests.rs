use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn parse(args: &[&str]) -> Result<Config, clap::Error> {
    let mut v = vec!["timon".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    Config::parse_args(v)
}

#[test]
fn lease_checkpoint_interval_defaults_to_5m_and_is_at_least_1s() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.lease_checkpoint_interval(), Ok(Some(Duration::from_secs(300))));
    let c = parse(&["--experimental-lease-checkpoint-interval", "10ms"]).unwrap();
    assert_eq!(c.lease_checkpoint_interval(), Ok(Some(Duration::from_secs(1))));
    let c = parse(&["--experimental-lease-checkpoint-interval", "2s"]).unwrap();
    assert_eq!(c.lease_checkpoint_interval(), Ok(Some(Duration::from_secs(2))));
    let c = parse(&["--experimental-enable-lease-checkpoint=false"]).unwrap();
    assert_eq!(c.lease_checkpoint_interval(), Ok(None));
    let c = parse(&["--experimental-lease-checkpoint-interval", "x"]).unwrap();
    assert!(c.lease_checkpoint_interval().is_err());
}

#[test]
fn progress_notify_interval_in_both_spellings() {
    let c = parse(&["--experimental-watch-progress-notify-interval", "2s"]).unwrap();
    assert_eq!(c.progress_notify_interval(), Ok(Duration::from_secs(2)));
    let c = parse(&["--watch-progress-notify-interval=5s"]).unwrap();
    assert_eq!(c.progress_notify_interval(), Ok(Duration::from_secs(5)));
    let c = parse(&["--experimental-watch-progress-notify-interval", "soon"]).unwrap();
    assert!(c.validate().is_err());
}

#[test]
fn defaults_are_etcds() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.member.name, "default");
    assert_eq!(c.data_dir(), PathBuf::from("default.etcd"));
    assert_eq!(c.member.listen_client_urls, "http://localhost:2379");
    assert_eq!(c.cluster.initial_advertise_peer_urls, "http://localhost:2380");
    assert_eq!(c.member.max_request_bytes, 1_572_864);
    assert_eq!(c.member.max_txn_ops, 128);
    assert_eq!(c.tls.tls_min_version, "TLS1.2");
    assert_eq!(c.tls.self_signed_cert_validity, 1);
    assert_eq!(
        c.initial_members().unwrap(),
        vec![InitialMember {
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()]
        }]
    );
    c.validate().unwrap();
    assert!(c.ignored_flags().is_empty());
}

#[test]
fn go_style_single_dash_and_equals() {
    let c = parse(&["-name", "n1", "--data-dir=/tmp/x", "-max-txn-ops=5"]).unwrap();
    assert_eq!(c.member.name, "n1");
    assert_eq!(c.data_dir(), PathBuf::from("/tmp/x"));
    assert_eq!(c.member.max_txn_ops, 5);
}

#[test]
fn unknown_flag_and_bad_values_fail() {
    assert!(parse(&["--no-such-flag", "1"]).is_err());
    assert!(parse(&["--max-txn-ops", "many"]).is_err());
    assert!(parse(&["--initial-cluster-state", "old"]).is_err());
    assert!(parse(&["--feature-gates=NoSuchGate=true"]).is_err());
    assert!(parse(&["--feature-gates=InitialCorruptCheck=maybe"]).is_err());
    let c = parse(&["--listen-client-urls", "localhost:2379"]).unwrap();
    assert!(matches!(c.validate(), Err(ConfigError::BadUrl { .. })));
    let c = parse(&["--name", "a", "--initial-cluster", "b=http://127.0.0.1:2380"]).unwrap();
    assert_eq!(c.validate(), Err(ConfigError::NotInInitialCluster { name: "a".into() }));
    let c = parse(&["--heartbeat-interval", "500"]).unwrap();
    assert!(matches!(c.validate(), Err(ConfigError::ElectionTooShort { .. })));
}

#[test]
fn https_urls_need_their_sides_certificates() {
    let c = parse(&["--listen-client-urls", "https://127.0.0.1:2379"]).unwrap();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
    );
    let c = parse(&[
        "--listen-client-urls",
        "https://127.0.0.1:2379",
        "--cert-file=a",
        "--key-file=b",
    ])
    .unwrap();
    c.validate().unwrap();
    let c = parse(&["--listen-client-urls", "https://127.0.0.1:2379", "--auto-tls"]).unwrap();
    c.validate().unwrap();
    let c = parse(&["--listen-peer-urls", "https://127.0.0.1:2380"]).unwrap();
    assert!(matches!(c.validate(), Err(ConfigError::PeerTlsMissing(_))));
}

#[test]
fn etcd_flags_timon_does_not_act_on_are_accepted_and_reported() {
    let c = parse(&[
        "--experimental-memory-mlock",
        "--enable-v2",
        "--feature-gates=StopGRPCServiceOnDefrag=true,LeaseCheckpoint=false",
    ])
    .unwrap();
    assert_eq!(
        c.ignored_flags(),
        [
            "--experimental-memory-mlock",
            "--enable-v2",
            "--feature-gates=StopGRPCServiceOnDefrag"
        ]
    );
    // LeaseCheckpoint is a gate for a flag timon acts on.
    assert_eq!(c.lease_checkpoint_interval(), Ok(None));
}

#[test]
fn corruption_check_flags_in_every_spelling() {
    for args in [
        &[
            "--experimental-initial-corrupt-check=true",
            "--experimental-corrupt-check-time=2m",
        ][..],
        &["--feature-gates=InitialCorruptCheck=true", "--corrupt-check-time", "2m"][..],
    ] {
        let c = parse(args).unwrap();
        assert_eq!(
            c.experimental.experimental_initial_corrupt_check,
            Some(true),
            "{args:?}"
        );
        assert_eq!(c.corrupt_check_time(), Ok(Some(Duration::from_secs(120))), "{args:?}");
        assert!(c.ignored_flags().is_empty(), "{args:?}: {:?}", c.ignored_flags());
    }
    assert_eq!(parse(&[]).unwrap().corrupt_check_time(), Ok(None));
    assert_eq!(
        parse(&["--experimental-corrupt-check-time=0s"])
            .unwrap()
            .corrupt_check_time(),
        Ok(None)
    );
    assert!(parse(&["--experimental-corrupt-check-time=soon"])
        .unwrap()
        .validate()
        .is_err());
}

#[test]
fn config_file_replaces_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd.yaml");
    std::fs::write(
        &path,
        "name: from-file\nsnapshot-count: 42\nenable-v2: true\nno-such-key: 1\n\
         client-transport-security:\n  cert-file: /c.crt\n  key-file: /c.key\n  client-cert-auth: true\n",
    )
    .unwrap();
    let c = parse(&["--name", "from-flag", "--config-file", path.to_str().unwrap()]).unwrap();
    assert_eq!(c.member.name, "from-file");
    assert_eq!(c.member.snapshot_count, 42);
    assert_eq!(c.client_tls.cert_file, Some(PathBuf::from("/c.crt")));
    assert_eq!(c.client_tls.client_cert_auth, Some(true));
    assert_eq!(c.ignored_flags(), ["--enable-v2"]);
    let missing = parse(&["--config-file", "/no/such/file.yaml"]).unwrap_err().to_string();
    assert!(missing.contains("/no/such/file.yaml"), "{missing}");
}

#[test]
fn env_vars_are_read_and_flags_win() {
    // clap reads the environment at parse time; use names no other test sets.
    let cmd = <Config as clap::CommandFactory>::command();
    let name = cmd.get_arguments().find(|a| a.get_id() == "max_txn_ops").unwrap();
    assert_eq!(name.get_env().unwrap(), "ETCD_MAX_TXN_OPS");
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let expected = format!("ETCD_{}", id.to_uppercase());
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(expected.as_str()),
            "flag {id}"
        );
    }
}

#[test]
fn auto_compaction_flags_as_etcd() {
    use crate::compactor::Mode;
    let c = parse(&["--auto-compaction-mode=revision", "--auto-compaction-retention=1000"]).unwrap();
    assert_eq!(c.auto_compaction(), Ok(Some(Mode::Revision(1000))));
    assert!(c.ignored_flags().is_empty(), "{:?}", c.ignored_flags());
    let c = parse(&["--auto-compaction-retention", "1"]).unwrap();
    assert_eq!(c.auto_compaction(), Ok(Some(Mode::Periodic(Duration::from_secs(3600)))));
    assert_eq!(parse(&[]).unwrap().auto_compaction(), Ok(None));
    let c = parse(&["--auto-compaction-mode=sometimes", "--auto-compaction-retention=1"]).unwrap();
    assert_eq!(
        c.validate(),
        Err(ConfigError::AutoCompaction(
            "unknown auto-compaction-mode \"sometimes\"".into()
        ))
    );
}

#[test]
fn compaction_pacing_flags_in_both_spellings_with_etcds_defaults() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.compaction_pacing(), Ok(crate::mvcc::Pacing::default()));
    assert_eq!(
        crate::mvcc::Pacing::default(),
        crate::mvcc::Pacing {
            batch_limit: 1000,
            sleep: Duration::from_millis(10)
        }
    );
    for args in [
        &[
            "--experimental-compaction-batch-limit=50",
            "--experimental-compaction-sleep-interval=1s",
        ][..],
        &["--compaction-batch-limit", "50", "--compaction-sleep-interval", "1s"][..],
    ] {
        let c = parse(args).unwrap();
        let want = crate::mvcc::Pacing {
            batch_limit: 50,
            sleep: Duration::from_secs(1),
        };
        assert_eq!(c.compaction_pacing(), Ok(want), "{args:?}");
        assert!(c.ignored_flags().is_empty(), "{args:?}: {:?}", c.ignored_flags());
    }
    let zero = parse(&[
        "--experimental-compaction-batch-limit=0",
        "--experimental-compaction-sleep-interval=0s",
    ])
    .unwrap();
    assert_eq!(zero.compaction_pacing(), Ok(crate::mvcc::Pacing::default()));
    let all = parse(&["--experimental-compaction-batch-limit=-1"]).unwrap();
    assert_eq!(all.compaction_pacing().unwrap().batch_limit, usize::MAX);
    let bad = parse(&["--experimental-compaction-sleep-interval=soon"]).unwrap();
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        r#"invalid value "soon" for flag -experimental-compaction-sleep-interval: time: invalid duration"#
    );
}
