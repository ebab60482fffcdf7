//! The client fuzzer's inputs against etcd 3.4 and timon side by side:
//! each input (`support::mutate`, the methods of `support::fuzz_methods`)
//! goes to a single-member etcd and a single-member timon, one at a time
//! so both stores see the same sequence, and the gRPC status codes they
//! answer must be equal ("bad input gets etcd's error"). Messages are not
//! compared: for malformed frames and undecodable messages grpc-go and
//! tonic word the same code differently.
//!
//! Compared: inputs whose body ends (a stalled body has no answer to
//! compare) on the methods that never write and answer once (Range, lease,
//! member and auth queries, Status, Hash, HashKV, Alarm GET, Leader):
//! with no write, both stores stay equal, so a difference is the answer to
//! that input alone. (Write methods' inputs, once one server accepted what
//! the other refused, leave the stores different and every later answer
//! with them; streams are left to `fuzz_rpc`.) The known differences are
//! classified in [`explained`], counted and printed; the test fails on
//! any other.
//!
//! Budget and seed: `TIMON_FUZZ_SECS` (default 45), `TIMON_FUZZ_SEED`.

mod support;

use std::time::{Duration, Instant};

use support::fuzz_methods::{client_methods, Guard, Kind};
use support::mutate::{rng_for, Input};
use support::raw_grpc::{call, Outcome};
use support::{connect, skip_without_etcd, start_etcd, start_timon};
use timon_proto::etcdserverpb::StatusRequest;
use tonic::transport::Channel;

const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A known difference, with why; `None` for a difference to fix.
fn explained(body: &[u8], etcd: (tonic::Code, &str), timon: tonic::Code, timon_message: &str) -> Option<&'static str> {
    let (etcd, etcd_message) = etcd;
    if trails(body) && !matches!(etcd_message, "EOF" | "unexpected EOF") {
        return Some(
            "bytes after the first message of a unary call: grpc-go reads one message and runs it, \
             tonic reads the body to its end and refuses what follows",
        );
    }
    use tonic::Code::*;
    if etcd == Unimplemented {
        return Some("a method etcd 3.4 does not have (AuthStatus, Downgrade: etcd 3.5+)");
    }
    if timon != Internal {
        return None;
    }
    if timon_message.ends_with("invalid varint") && etcd == Ok {
        return Some("a 10-byte varint overflowing 64 bits: prost refuses it, etcd 3.4's gogoproto truncates it");
    }
    if timon_message.contains("invalid string value: data is not UTF-8 encoded") {
        return Some(
            "invalid UTF-8 in a proto3 string field: prost refuses it (as protobuf-go does), \
             etcd 3.4's gogoproto decodes it",
        );
    }
    if timon_message.contains("recursion limit reached") {
        return Some("nesting deeper than prost's limit of 100: etcd 3.4's gogoproto has no limit");
    }
    if timon_message.contains("invalid key value") {
        return Some("a field number beyond 2^32: prost refuses the key, etcd 3.4's gogoproto skips it as unknown");
    }
    if timon_message.contains("unexpected end group tag") || timon_message.contains("invalid tag value: 0") {
        return Some("a stray end-group tag or field number 0: prost refuses it, etcd 3.4's gogoproto skips it");
    }
    if timon_message.contains("MemberListRequest.linearizable") {
        return Some("MemberListRequest.linearizable (etcd 3.5+) is an unknown field to etcd 3.4");
    }
    None
}

/// Whether `body` holds a whole first gRPC frame and more bytes after it.
fn trails(body: &[u8]) -> bool {
    body.len() >= 5 && {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body.len() - 5 > len
    }
}

#[test]
fn malformed_client_requests_get_etcds_status_codes() {
    if skip_without_etcd("malformed_client_requests_get_etcds_status_codes") {
        return;
    }
    let seed: u64 = std::env::var("TIMON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let budget = Duration::from_secs(
        std::env::var("TIMON_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(45),
    );
    eprintln!(
        "etcd-differential fuzz: TIMON_FUZZ_SEED={seed} TIMON_FUZZ_SECS={}",
        budget.as_secs()
    );
    let mut etcd = start_etcd();
    let timon = start_timon(None, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut member_ids = Vec::new();
        for m in [&etcd, &timon] {
            let (_, mut mt) = connect(&m.endpoint()).await;
            member_ids.push(mt.status(StatusRequest {}).await.unwrap().into_inner().header.unwrap().member_id);
        }
        let guard = Guard {
            prefix: b"guard-unused/".to_vec(),
            member_ids,
        };
        let channel = |url: String| Channel::from_shared(url).unwrap().connect_lazy();
        let (to_etcd, to_timon) = (channel(etcd.endpoint()), channel(timon.endpoint()));
        let methods: Vec<_> = client_methods()
            .into_iter()
            .filter(|m| m.kind == Kind::Read && !m.may_stay_open)
            .collect();
        let deadline = Instant::now() + budget;
        let (mut compared, mut skipped) = (0u64, 0u64);
        let mut known = std::collections::BTreeMap::<&str, u64>::new();
        let mut mismatches = Vec::new();
        let mut classes = std::collections::BTreeMap::new();
        let mut index = 0u64;
        let mut etcd_died = false;
        while Instant::now() < deadline {
            index += 1;
            let mut rng = rng_for(seed, index.wrapping_add(1 << 62));
            let method = &methods[rand::Rng::gen_range(&mut rng, 0..methods.len())];
            let input = Input::generate(seed, index, &method.seeds);
            if !input.end_stream || (method.skip)(&input.message, &guard) {
                skipped += 1;
                continue;
            }
            let e = call(&to_etcd, method.path, input.body.clone(), true, &[], CALL_TIMEOUT).await;
            let t = call(&to_timon, method.path, input.body.clone(), true, &[], CALL_TIMEOUT).await;
            compared += 1;
            if matches!(e, Outcome::Transport(_)) && !etcd.is_running() {
                // etcd itself died on this input (or the one before): what
                // follows cannot be compared.
                eprintln!(
                    "etcd exited after input {index} to {} ({}): body {:02x?}; etcd stderr:\n{}",
                    method.path,
                    input.how,
                    input.body,
                    etcd.stderr_tail(3000)
                );
                etcd_died = true;
                break;
            }
            let (Outcome::Status { code: ec, message: em, .. }, Outcome::Status { code: tc, message: tm, .. }) = (&e, &t) else {
                mismatches.push(format!("input {index} {} ({}): etcd {e:?}, timon {t:?}", method.path, input.how));
                continue;
            };
            if ec == tc {
                continue;
            }
            if let Some(why) = explained(&input.body, (*ec, em), *tc, tm) {
                *known.entry(why).or_default() += 1;
                continue;
            }
            let class = format!("etcd {ec:?} {:.40?} / timon {tc:?} {:.60?}", em, tm);
            let n = classes.entry(class).or_insert(0u64);
            *n += 1;
            if *n == 1 {
                mismatches.push(format!(
                    "input {index} {} ({}): etcd {ec:?} {em:?}, timon {tc:?} {tm:?}; body {:02x?}",
                    method.path,
                    input.how,
                    &input.body[..input.body.len().min(64)]
                ));
            }
        }
        eprintln!(
            "etcd-differential fuzz: seed {seed}: {compared} inputs compared, {skipped} not sent, {} known differences, {} other differences",
            known.values().sum::<u64>(),
            classes.values().sum::<u64>()
        );
        for (why, n) in &known {
            eprintln!("  known {n:6} x {why}");
        }
        for (class, n) in &classes {
            eprintln!("  {n:6} x {class}");
        }
        for m in mismatches.iter().take(40) {
            eprintln!("  {m}");
        }
        if etcd_died {
            eprintln!("etcd-differential fuzz: the comparison stopped early because etcd 3.4 exited (see above)");
        }
        assert!(mismatches.is_empty(), "timon's status codes differ from etcd's (replay: TIMON_FUZZ_SEED={seed})");
    });
}

/// Found by the test above: etcd 3.4.23 dies (nil pointer dereference,
/// or a panic) on an AlarmRequest whose action is none of GET, ACTIVATE,
/// DEACTIVATE, and on a RangeRequest whose sort order is none of etcd's.
/// timon answers both and stays up.
#[test]
fn requests_that_kill_etcd_3_4_are_answered() {
    let inputs: [(&str, &[u8]); 2] = [
        // action = 0x2bc3afa6c3.
        ("/etcdserverpb.Maintenance/Alarm", &[0x08, 0xc3, 0xa6, 0xaf, 0xc3, 0x2b]),
        // key "fuzz/a", range_end "fuzz/z", sort_order = 0x394a71250f3, limit 10.
        (
            "/etcdserverpb.KV/Range",
            &[
                0x0a, 0x06, b'f', b'u', b'z', b'z', b'/', b'a', 0x12, 0x06, b'f', b'u', b'z', b'z', b'/', b'z', 0x30,
                0xf3, 0x84, 0x94, 0xa7, 0x94, 0x39, 0x18, 0x0a,
            ],
        ),
    ];
    let send = |m: &support::Member, path: &str, msg: &[u8]| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let channel = Channel::from_shared(m.endpoint()).unwrap().connect_lazy();
            call(&channel, path, support::raw_grpc::frame(msg), true, &[], CALL_TIMEOUT).await
        })
    };
    for (path, msg) in inputs {
        let mut timon = start_timon(None, &[]);
        let outcome = send(&timon, path, msg);
        assert!(matches!(outcome, Outcome::Status { .. }), "{path}: {outcome:?}");
        assert!(
            timon.is_running(),
            "timon exited on {path}:\n{}",
            timon.stderr_tail(4000)
        );
        if support::etcd_bin().exists() {
            // For the record, not asserted: what etcd does with it.
            let mut etcd = start_etcd();
            let answer = send(&etcd, path, msg);
            let exited = etcd.wait_exit(Duration::from_secs(5));
            eprintln!("{path}: etcd answered {answer:?}, exited: {exited}; timon answered {outcome:?}");
        }
    }
}
