//! Go's `time.ParseDuration` for etcd's duration flags (the one parser,
//! shared with timonctl, is `timon_go::parse_duration`).

use std::time::Duration;

/// A Go duration such as `10m`, `1m30s`, `500ms` or `0`; None if invalid.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    timon_go::parse_duration(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "10", "1x", "m", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
