//! Go's conventions that etcd's flags and etcdctl's output inherit:
//! duration strings (`1.5ms`, parsed for the server's and timonctl's
//! duration flags and printed as etcdctl prints them), `%q` quoting and
//! unquoting, and go-humanize's SI byte sizes (`20 kB`). Written from the documented behaviour of Go's `time`,
//! `strconv` and go-humanize, so output matches etcdctl byte for byte.

use std::time::Duration;

/// Parses a Go duration such as `5s`, `1m30s`, `1.5s` or `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", quote(text.as_bytes()));
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Go's `time.Duration.String()`: `0s`, `812ns`, `1.5µs`, `1.022ms`,
/// `5.000878657s`, `1h0m0s`.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 6));
    }
    let whole_seconds = nanos / 1_000_000_000;
    let seconds = decimal(nanos % 60_000_000_000, 9);
    let hours = whole_seconds / 3600;
    let minutes = (whole_seconds / 60) % 60;
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / 10^scale` with the fraction's trailing zeros (and a bare dot)
/// removed.
fn decimal(value: u128, scale: u32) -> String {
    let unit = 10u128.pow(scale);
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = scale as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// go-humanize's `Bytes`: SI units, one decimal below 10 (`9.5 kB`),
/// none above (`20 kB`).
pub fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let size = size as f64;
    let exponent = (size.ln() / 1000f64.ln()).floor();
    let unit = UNITS[(exponent as usize).min(UNITS.len() - 1)];
    let value = (size / 1000f64.powf(exponent) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// Go's `strconv.Quote` for bytes: printable text as is, the usual
/// backslash escapes, other bytes as `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut quoted = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\u{7}' => quoted.push_str("\\a"),
                '\u{8}' => quoted.push_str("\\b"),
                '\u{c}' => quoted.push_str("\\f"),
                '\n' => quoted.push_str("\\n"),
                '\r' => quoted.push_str("\\r"),
                '\t' => quoted.push_str("\\t"),
                '\u{b}' => quoted.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => quoted.push_str(&format!("\\x{:02x}", c as u32)),
                c if c.is_control() => {
                    let code = c as u32;
                    if code <= 0xffff {
                        quoted.push_str(&format!("\\u{code:04x}"));
                    } else {
                        quoted.push_str(&format!("\\U{code:08x}"));
                    }
                }
                c => quoted.push(c),
            }
        }
        for byte in chunk.invalid() {
            quoted.push_str(&format!("\\x{byte:02x}"));
        }
    }
    quoted.push('"');
    quoted
}

/// Reads one Go-quoted string (`"..."` with escapes, or a `` `raw` ``
/// string) from the start of `input`, after skipping spaces as `fmt`'s
/// `%q` verb does. Returns the bytes and the unread rest.
pub fn scan_quoted(input: &str) -> Option<(Vec<u8>, &str)> {
    let input = input.trim_start();
    let mut chars = input.char_indices();
    match chars.next()? {
        (_, '`') => {
            let end = input[1..].find('`')? + 1;
            Some((input.as_bytes()[1..end].to_vec(), &input[end + 1..]))
        }
        (_, '"') => {
            let mut out = Vec::new();
            let mut iter = input[1..].char_indices().peekable();
            while let Some((i, c)) = iter.next() {
                match c {
                    '"' => return Some((out, &input[1 + i + 1..])),
                    '\n' => return None,
                    '\\' => {
                        let (_, e) = iter.next()?;
                        match e {
                            'a' => out.push(7),
                            'b' => out.push(8),
                            'f' => out.push(12),
                            'n' => out.push(b'\n'),
                            'r' => out.push(b'\r'),
                            't' => out.push(b'\t'),
                            'v' => out.push(11),
                            '\\' => out.push(b'\\'),
                            '"' => out.push(b'"'),
                            '\'' => return None,
                            'x' => out.push(take_hex(&mut iter, 2)? as u8),
                            'u' | 'U' => {
                                let width = if e == 'u' { 4 } else { 8 };
                                let c = char::from_u32(take_hex(&mut iter, width)?)?;
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            }
                            '0'..='7' => {
                                let mut value = e.to_digit(8)?;
                                for _ in 0..2 {
                                    let (_, d) = iter.next()?;
                                    value = value * 8 + d.to_digit(8)?;
                                }
                                out.push(u8::try_from(value).ok()?);
                            }
                            _ => return None,
                        }
                    }
                    c => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            None
        }
        _ => None,
    }
}

fn take_hex(iter: &mut impl Iterator<Item = (usize, char)>, digits: usize) -> Option<u32> {
    let mut value = 0u32;
    for _ in 0..digits {
        let (_, d) = iter.next()?;
        value = value.checked_mul(16)? + d.to_digit(16)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_nanos(812)), "812ns");
        assert_eq!(format_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(format_duration(Duration::from_nanos(1_022_321)), "1.022321ms");
        assert_eq!(format_duration(Duration::from_nanos(5_000_878_657)), "5.000878657s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_millis(90_500)), "1m30.5s");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn bytes_humanize_like_go_humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(25000), "25 kB");
        assert_eq!(humanize_bytes(9500), "9.5 kB");
        assert_eq!(humanize_bytes(1_000_000), "1.0 MB");
        assert_eq!(humanize_bytes(999), "999 B");
    }

    #[test]
    fn quote_escapes_like_strconv() {
        assert_eq!(quote(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(quote(b"\x01\xff"), "\"\\x01\\xff\"");
        assert_eq!(quote("é".as_bytes()), "\"é\"");
    }

    #[test]
    fn scan_quoted_reads_escapes_and_returns_rest() {
        assert_eq!(scan_quoted(" \"a\\tb\") > x"), Some((b"a\tb".to_vec(), ") > x")));
        assert_eq!(scan_quoted("`raw\\n`!"), Some((b"raw\\n".to_vec(), "!")));
        assert_eq!(
            scan_quoted("\"\\x41\\101\\u00e9\""),
            Some(("AAé".as_bytes().to_vec(), ""))
        );
        assert_eq!(scan_quoted("\"open"), None);
        assert_eq!(scan_quoted("bare"), None);
    }
}
