//! Memory of a member process from `/proc/<pid>/status`: `VmHWM` is the
//! peak resident set since the process started, `VmRSS` the current one.

/// A `kB` field of `/proc/<pid>/status`, in KiB; None if the process is gone.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kib(&text, field)
}

fn parse_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Peak resident set (VmHWM) in KiB.
pub fn peak_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// Current resident set (VmRSS) in KiB.
pub fn current_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let status = "Name:\tetcd\nVmHWM:\t  123456 kB\nVmRSS:\t   99999 kB\n";
        assert_eq!(parse_kib(status, "VmHWM"), Some(123_456));
        assert_eq!(parse_kib(status, "VmRSS"), Some(99_999));
        assert_eq!(parse_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_process_has_a_peak() {
        assert!(peak_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
