//! The UTC time stamp that names a comparison's result files
//! (`2025-01-31T14-05-09Z`: sortable, no `:` so it is a portable file name).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, formatted as a file-name stamp.
pub fn stamp_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    stamp(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH-MM-SSZ`.
pub fn stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::stamp;

    #[test]
    fn known_instants() {
        assert_eq!(stamp(0), "1970-01-01T00-00-00Z");
        // 2000-02-29 12:34:56 UTC (a leap day).
        assert_eq!(stamp(951_827_696), "2000-02-29T12-34-56Z");
        // 2024-12-31 23:59:59 UTC.
        assert_eq!(stamp(1_735_689_599), "2024-12-31T23-59-59Z");
    }
}
