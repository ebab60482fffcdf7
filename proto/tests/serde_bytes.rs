//! `bytes` fields serialise through serde_bytes (one length, one copy), and
//! bincode's encoding of them is the one `Vec<u8>`'s default gave: raft logs
//! and snapshots written before the change read back unchanged.

use timon_proto::etcdserverpb::PutRequest;

/// What serde's default `Vec<u8>` encoding wrote for `PutRequest`.
#[derive(serde::Serialize)]
struct OldPutRequest {
    key: Vec<u8>,
    value: Vec<u8>,
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

#[test]
fn bincode_encoding_of_bytes_fields_is_unchanged() {
    let value: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let new = PutRequest {
        key: b"k".to_vec(),
        value: value.clone(),
        lease: 7,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: true,
    };
    let old = OldPutRequest {
        key: b"k".to_vec(),
        value,
        lease: 7,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: true,
    };
    let bytes = bincode::serialize(&new).unwrap();
    assert_eq!(bytes, bincode::serialize(&old).unwrap());
    assert_eq!(bincode::deserialize::<PutRequest>(&bytes).unwrap(), new);
}

#[test]
fn generated_bytes_fields_use_serde_bytes() {
    // The build script must find the fields; 1 MiB through serde's
    // per-element path took ~100 ms in a debug build, serde_bytes ~1 ms.
    let src = include_str!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    let put = &src[src.find("pub struct PutRequest").unwrap()..];
    let put = &put[..put.find("pub lease").unwrap()];
    assert_eq!(put.matches("serde_bytes").count(), 2, "{put}");
}
