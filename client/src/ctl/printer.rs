//! Renders KV responses in etcdctl's `simple` and `json` formats. Every
//! function returns the exact bytes etcdctl would write to stdout; `table`
//! is refused after the request ran, as etcdctl refuses it.

use timon_proto::etcdserverpb::response_op::Response;
use timon_proto::etcdserverpb::{DeleteRangeResponse, PutResponse, RangeResponse, TxnResponse};
use timon_proto::mvccpb::KeyValue;

use super::{exit, json, Failure, Format};

fn table_unsupported() -> Failure {
    Failure::new(exit::BAD_FEATURE, "table not supported as output format")
}

/// One key and/or value per line, raw bytes (or `\x..` with `--hex`).
pub fn key_value(out: &mut Vec<u8>, hex: bool, value_only: bool, kv: &KeyValue) {
    let mut line = |bytes: &[u8]| {
        if hex {
            for byte in bytes {
                out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
            }
        } else {
            out.extend_from_slice(bytes);
        }
        out.push(b'\n');
    };
    if !value_only {
        line(&kv.key);
    }
    line(&kv.value);
}

fn with_newline(mut text: String) -> Vec<u8> {
    text.push('\n');
    text.into_bytes()
}

pub fn get(format: Format, response: &RangeResponse, value_only: bool) -> Result<Vec<u8>, Failure> {
    match format {
        Format::Simple { hex } => {
            let mut out = Vec::new();
            for kv in &response.kvs {
                key_value(&mut out, hex, value_only, kv);
            }
            Ok(out)
        }
        Format::Json => Ok(with_newline(json::range(response))),
        Format::Table => Err(table_unsupported()),
    }
}

pub fn put(format: Format, response: &PutResponse) -> Result<Vec<u8>, Failure> {
    match format {
        Format::Simple { hex } => {
            let mut out = b"OK\n".to_vec();
            if let Some(kv) = &response.prev_kv {
                key_value(&mut out, hex, false, kv);
            }
            Ok(out)
        }
        Format::Json => Ok(with_newline(json::put(response))),
        Format::Table => Err(table_unsupported()),
    }
}

pub fn delete(format: Format, response: &DeleteRangeResponse) -> Result<Vec<u8>, Failure> {
    match format {
        Format::Simple { hex } => {
            let mut out = format!("{}\n", response.deleted).into_bytes();
            for kv in &response.prev_kvs {
                key_value(&mut out, hex, false, kv);
            }
            Ok(out)
        }
        Format::Json => Ok(with_newline(json::delete(response))),
        Format::Table => Err(table_unsupported()),
    }
}

pub fn txn(format: Format, response: &TxnResponse) -> Result<Vec<u8>, Failure> {
    match format {
        Format::Simple { .. } => {
            let mut out = if response.succeeded {
                b"SUCCESS\n".to_vec()
            } else {
                b"FAILURE\n".to_vec()
            };
            for op in &response.responses {
                out.push(b'\n');
                let part = match &op.response {
                    Some(Response::ResponseRange(r)) => get(format, r, false)?,
                    Some(Response::ResponsePut(r)) => put(format, r)?,
                    Some(Response::ResponseDeleteRange(r)) => delete(format, r)?,
                    // etcdctl has no simple form for nested txns either.
                    other => format!("unexpected response {other:?}\n").into_bytes(),
                };
                out.extend_from_slice(&part);
            }
            Ok(out)
        }
        Format::Json => Ok(with_newline(json::txn(response))),
        Format::Table => Err(table_unsupported()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::etcdserverpb::ResponseOp;

    fn kv(key: &[u8], value: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            ..KeyValue::default()
        }
    }

    #[test]
    fn simple_get_prints_raw_bytes_and_hex() {
        let r = RangeResponse {
            kvs: vec![kv(b"k\xff", b"v")],
            ..RangeResponse::default()
        };
        let simple = Format::Simple { hex: false };
        assert_eq!(get(simple, &r, false), Ok(b"k\xff\nv\n".to_vec()));
        assert_eq!(get(simple, &r, true), Ok(b"v\n".to_vec()));
        assert_eq!(
            get(Format::Simple { hex: true }, &r, false),
            Ok(b"\\x6b\\xff\n\\x76\n".to_vec())
        );
        assert_eq!(
            get(Format::Table, &r, false).map_err(|f| f.code),
            Err(exit::BAD_FEATURE)
        );
    }

    #[test]
    fn simple_txn_separates_responses_with_blank_lines() {
        let r = TxnResponse {
            succeeded: false,
            responses: vec![
                ResponseOp {
                    response: Some(Response::ResponseRange(RangeResponse {
                        kvs: vec![kv(b"a", b"2")],
                        ..RangeResponse::default()
                    })),
                },
                ResponseOp {
                    response: Some(Response::ResponsePut(PutResponse::default())),
                },
            ],
            ..TxnResponse::default()
        };
        assert_eq!(
            txn(Format::Simple { hex: false }, &r),
            Ok(b"FAILURE\n\na\n2\n\nOK\n".to_vec())
        );
    }

    #[test]
    fn simple_delete_prints_count_then_prev_kvs() {
        let r = DeleteRangeResponse {
            deleted: 1,
            prev_kvs: vec![kv(b"foo", b"x")],
            ..DeleteRangeResponse::default()
        };
        assert_eq!(delete(Format::Simple { hex: false }, &r), Ok(b"1\nfoo\nx\n".to_vec()));
    }
}
