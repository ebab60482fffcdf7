//! proto3 JSON as etcd's gateway reads and writes it (grpc-gateway v1's
//! `JSONPb{OrigName: true}` over golang/protobuf's jsonpb).
//!
//! Out: prost-reflect's serialiser with jsonpb's options (proto field
//! names, 64-bit integers as strings, enums by name, defaults omitted).
//! In: a walk over the JSON value that accepts what jsonpb accepts (either
//! field name, quoted or bare numbers, enum names or numbers, `null` as
//! unset, unknown fields ignored as grpc-gateway allows) and fails with the
//! texts Go's decoders give, which etcd returns to the client verbatim.

use bytes::Bytes;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions, Value};
use serde_json::Value as Json;

/// jsonpb's marshaler options as grpc-gateway sets them.
const OUT: SerializeOptions = SerializeOptions::new()
    .stringify_64_bit_integers(true)
    .use_enum_numbers(false)
    .use_proto_field_name(true)
    .skip_default_fields(true);

/// `message` as etcd's gateway writes it, fields in declaration order.
pub fn to_json_bytes(message: &DynamicMessage) -> Vec<u8> {
    let mut out = Vec::new();
    message
        .serialize_with_options(&mut serde_json::Serializer::new(&mut out), &OUT)
        .expect("a protobuf message always serialises to JSON");
    out
}

/// Reads the next JSON value of a stream (Go's `json.Decoder.Decode`):
/// `Ok(None)` at the end of the input, `Err` with Go's text for a syntax
/// error; the value and the bytes it took otherwise. `complete` says no
/// more bytes will come, so a partial value is `unexpected EOF`.
pub fn next_value(buf: &[u8], complete: bool) -> Result<Option<(Json, usize)>, Incomplete> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Json>();
    match values.next() {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some((v, values.byte_offset()))),
        Some(Err(e)) if e.is_eof() && !complete => Err(Incomplete::NeedMore),
        Some(Err(e)) if e.is_eof() => Err(Incomplete::Invalid("unexpected EOF".into())),
        Some(Err(e)) => Err(Incomplete::Invalid(go_syntax_error(buf, &e))),
    }
}

/// Why [`next_value`] returned no value.
#[derive(Debug, PartialEq)]
pub enum Incomplete {
    /// The value goes on past the bytes read so far.
    NeedMore,
    /// Go's error text.
    Invalid(String),
}

/// Go's `encoding/json` text for a syntax error serde_json found.
fn go_syntax_error(buf: &[u8], e: &serde_json::Error) -> String {
    // serde_json reports the line and column of the offending byte.
    let offset = line_column_offset(buf, e.line(), e.column());
    let c = buf.get(offset).copied().unwrap_or(b' ');
    let text = e.to_string();
    let context = if text.starts_with("expected `:`") {
        "after object key"
    } else if text.starts_with("expected `,` or `}`") {
        "after object key:value pair"
    } else if text.starts_with("expected `,` or `]`") {
        "after array element"
    } else if text.starts_with("trailing characters") {
        "after top-level value"
    } else if text.starts_with("key must be a string") {
        "looking for beginning of object key string"
    } else {
        "looking for beginning of value"
    };
    format!("invalid character {} {context}", go_quote_char(c))
}

fn line_column_offset(buf: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match buf[start..].iter().position(|&b| b == b'\n') {
            Some(p) => start += p + 1,
            None => break,
        }
    }
    (start + column).saturating_sub(1)
}

/// Go's `quoteChar`.
fn go_quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        c if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        c => format!("'\\x{c:02x}'"),
    }
}

/// Decodes one request message from its JSON value, with jsonpb's rules.
pub fn from_json(desc: &MessageDescriptor, value: &Json) -> Result<DynamicMessage, String> {
    if value.is_null() {
        return Ok(DynamicMessage::new(desc.clone()));
    }
    let Json::Object(fields) = value else {
        return Err(cannot_unmarshal(value, "map[string]json.RawMessage"));
    };
    let mut message = DynamicMessage::new(desc.clone());
    for (name, v) in fields {
        let field = desc
            .get_field_by_name(name)
            .or_else(|| desc.get_field_by_json_name(name));
        // grpc-gateway lets jsonpb skip unknown fields; null leaves a field unset.
        let Some(field) = field else { continue };
        if v.is_null() {
            continue;
        }
        let decoded = if field.is_list() {
            let Json::Array(items) = v else {
                return Err(cannot_unmarshal(v, "[]json.RawMessage"));
            };
            let items: Result<Vec<Value>, String> = items.iter().map(|i| scalar(&field, i)).collect();
            Value::List(items?)
        } else {
            scalar(&field, v)?
        };
        message.set_field(&field, decoded);
    }
    Ok(message)
}

/// One (non-repeated) value of `field`.
fn scalar(field: &FieldDescriptor, v: &Json) -> Result<Value, String> {
    match field.kind() {
        Kind::Message(desc) => from_json(&desc, v).map(Value::Message),
        Kind::Enum(desc) => match v {
            Json::String(name) => desc
                .get_value_by_name(name)
                .map(|e| Value::EnumNumber(e.number()))
                .ok_or_else(|| {
                    let go_type = go_enum_type(desc.full_name(), desc.package_name());
                    format!(
                        "unknown value {} for enum {go_type}",
                        serde_json::to_string(name).unwrap_or_default()
                    )
                }),
            _ => integer(v, "int32").map(|n| Value::EnumNumber(n as i32)),
        },
        Kind::Bytes => match v {
            Json::String(s) => go_base64(s.as_bytes()).map(|b| Value::Bytes(Bytes::from(b))),
            // encoding/json also reads a []byte from an array of numbers
            // (and, being encoding/json, not from quoted ones).
            Json::Array(items) => items
                .iter()
                .map(|i| match i {
                    Json::Number(_) => unsigned(i, "uint8").map(|b| b as u8),
                    other => Err(cannot_unmarshal(other, "uint8")),
                })
                .collect::<Result<Vec<u8>, String>>()
                .map(|b| Value::Bytes(Bytes::from(b))),
            _ => Err(cannot_unmarshal(v, "[]uint8")),
        },
        Kind::String => match v {
            Json::String(s) => Ok(Value::String(s.clone())),
            _ => Err(cannot_unmarshal(v, "string")),
        },
        Kind::Bool => match v {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            _ => Err(cannot_unmarshal(v, "bool")),
        },
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => integer(v, "int64").map(Value::I64),
        Kind::Uint64 | Kind::Fixed64 => unsigned(v, "uint64").map(Value::U64),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => integer(v, "int32").map(|n| Value::I32(n as i32)),
        Kind::Uint32 | Kind::Fixed32 => unsigned(v, "uint32").map(|n| Value::U32(n as u32)),
        Kind::Double => number(v, "float64").map(Value::F64),
        Kind::Float => number(v, "float32").map(|f| Value::F32(f as f32)),
    }
}

/// jsonpb drops the quotes around a number and lets encoding/json's
/// `Unmarshal` parse what is inside (one value, nothing after it).
fn unquoted(v: &Json) -> Result<Json, String> {
    match v {
        Json::String(s) => serde_json::from_str(s).map_err(|e| {
            if e.is_eof() {
                "unexpected end of JSON input".into()
            } else {
                go_syntax_error(s.as_bytes(), &e)
            }
        }),
        other => Ok(other.clone()),
    }
}

fn integer(v: &Json, go_type: &str) -> Result<i64, String> {
    let narrow = go_type == "int32";
    whole(v, go_type, |n| {
        n.as_i64().filter(|i| !narrow || i32::try_from(*i).is_ok())
    })
}

fn unsigned(v: &Json, go_type: &str) -> Result<u64, String> {
    let max = match go_type {
        "uint8" => u8::MAX as u64,
        "uint32" => u32::MAX as u64,
        _ => u64::MAX,
    };
    whole(v, go_type, |n| n.as_u64().filter(|u| *u <= max))
}

/// An integer of Go type `go_type`, quoted or not; `fits` reads it from
/// the number, None when it is out of range or not whole.
fn whole<T>(v: &Json, go_type: &str, fits: impl Fn(&serde_json::Number) -> Option<T>) -> Result<T, String> {
    let inner = unquoted(v)?;
    let Json::Number(n) = &inner else {
        return Err(cannot_unmarshal(&inner, go_type));
    };
    // Go quotes the number as written; a quoted one still is (a bare one
    // is as serde_json prints it back, which differs for exponents).
    let literal = match v {
        Json::String(s) => s.trim().to_string(),
        _ => n.to_string(),
    };
    fits(n).ok_or_else(|| format!("json: cannot unmarshal number {literal} into Go value of type {go_type}"))
}

fn number(v: &Json, go_type: &str) -> Result<f64, String> {
    let v = unquoted(v)?;
    v.as_f64().ok_or_else(|| cannot_unmarshal(&v, go_type))
}

/// encoding/json's UnmarshalTypeError text.
fn cannot_unmarshal(v: &Json, go_type: &str) -> String {
    let kind = match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    format!("json: cannot unmarshal {kind} into Go value of type {go_type}")
}

/// The Go type name of an enum: `etcdserverpb.RangeRequest.SortOrder` is
/// `etcdserverpb.RangeRequest_SortOrder`.
fn go_enum_type(full_name: &str, package: &str) -> String {
    let local = full_name
        .strip_prefix(package)
        .unwrap_or(full_name)
        .trim_start_matches('.');
    format!("{package}.{}", local.replace('.', "_"))
}

/// Go's `base64.StdEncoding.Decode`, with its `illegal base64 data at input
/// byte N` errors (padding required, newlines skipped, loose trailing bits).
fn go_base64(src: &[u8]) -> Result<Vec<u8>, String> {
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let skip_newlines = |mut si: usize| {
        while si < src.len() && matches!(src[si], b'\n' | b'\r') {
            si += 1;
        }
        si
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let mut quantum = [0u32; 4];
        let mut j = 0;
        let mut dlen = 4;
        while j < 4 {
            if si == src.len() {
                match j {
                    0 => return Ok(out),
                    _ => return Err(corrupt(si - j)),
                }
            }
            let c = src[si];
            si += 1;
            if matches!(c, b'\n' | b'\r') {
                continue;
            }
            if c == b'=' {
                match j {
                    0 | 1 => return Err(corrupt(si - 1)),
                    2 => {
                        si = skip_newlines(si);
                        if si == src.len() {
                            return Err(corrupt(src.len()));
                        }
                        if src[si] != b'=' {
                            return Err(corrupt(si - 1));
                        }
                        si += 1;
                    }
                    _ => {}
                }
                si = skip_newlines(si);
                if si < src.len() {
                    return Err(corrupt(si));
                }
                dlen = j;
                break;
            }
            quantum[j] = value(c).ok_or_else(|| corrupt(si - 1))?;
            j += 1;
        }
        let bits = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3];
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..dlen.saturating_sub(1)]);
        if dlen < 4 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_errors_are_gos() {
        assert_eq!(go_base64(b"Zm9v").unwrap(), b"foo");
        assert_eq!(go_base64(b"Zm8=").unwrap(), b"fo");
        assert_eq!(go_base64(b"Zg==").unwrap(), b"f");
        assert_eq!(go_base64(b"").unwrap(), b"");
        assert_eq!(go_base64(b"!!!").unwrap_err(), "illegal base64 data at input byte 0");
        assert_eq!(go_base64(b"Zm9").unwrap_err(), "illegal base64 data at input byte 0");
        assert_eq!(go_base64(b"Zm9vY").unwrap_err(), "illegal base64 data at input byte 4");
        assert_eq!(go_base64(b"Zg=").unwrap_err(), "illegal base64 data at input byte 3");
        assert_eq!(go_base64(b"Zg==x").unwrap_err(), "illegal base64 data at input byte 4");
        assert_eq!(go_base64(b"Z===").unwrap_err(), "illegal base64 data at input byte 1");
    }

    #[test]
    fn syntax_errors_are_gos() {
        let err = |s: &str| match next_value(s.as_bytes(), true) {
            Err(Incomplete::Invalid(e)) => e,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(err(r#"{"key":"#), "unexpected EOF");
        assert_eq!(
            err(r#"{"key": x}"#),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(err(r#"{"key" 1}"#), "invalid character '1' after object key");
        assert_eq!(
            err(r#"{"a":1 "b":2}"#),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(next_value(b"{\"a\":", false), Err(Incomplete::NeedMore));
        assert_eq!(next_value(b"  ", true), Ok(None));
    }

    #[test]
    fn integers_are_read_as_jsonpb_reads_them() {
        assert_eq!(integer(&serde_json::json!(5), "int64"), Ok(5));
        assert_eq!(integer(&serde_json::json!("-5"), "int64"), Ok(-5));
        assert_eq!(
            unsigned(&serde_json::json!("18446744073709551615"), "uint64"),
            Ok(u64::MAX)
        );
        assert_eq!(
            integer(&serde_json::json!(1.5), "int64").unwrap_err(),
            "json: cannot unmarshal number 1.5 into Go value of type int64"
        );
        assert_eq!(
            integer(&serde_json::json!(3_000_000_000u64), "int32").unwrap_err(),
            "json: cannot unmarshal number 3000000000 into Go value of type int32"
        );
        assert_eq!(
            integer(&serde_json::json!(true), "int64").unwrap_err(),
            "json: cannot unmarshal bool into Go value of type int64"
        );
        assert_eq!(
            integer(&serde_json::json!("abc"), "int64").unwrap_err(),
            "invalid character 'a' looking for beginning of value"
        );
        assert_eq!(integer(&serde_json::json!(" 5 "), "int64"), Ok(5));
        assert_eq!(
            integer(&serde_json::json!("0x10"), "int64").unwrap_err(),
            "invalid character 'x' after top-level value"
        );
        assert_eq!(
            integer(&serde_json::json!(""), "int64").unwrap_err(),
            "unexpected end of JSON input"
        );
    }

    #[test]
    fn enum_type_names_are_gos() {
        assert_eq!(
            go_enum_type("etcdserverpb.RangeRequest.SortOrder", "etcdserverpb"),
            "etcdserverpb.RangeRequest_SortOrder"
        );
        assert_eq!(
            go_enum_type("mvccpb.Event.EventType", "mvccpb"),
            "mvccpb.Event_EventType"
        );
    }
}
