//! CPU time of a member process from `/proc/<pid>/stat`: user plus system
//! time of all its threads. A workload's CPU per request, summed over the
//! members, is what bounds throughput when members and load generator
//! share a few cores, and it moves less than throughput when the machine is
//! busy with something else.

/// Clock ticks per second of `/proc` times (Linux's USER_HZ, 100 on every
/// architecture it reports to user space).
const TICKS_PER_SEC: u64 = 100;

/// CPU time used so far by process `pid`, in µs (10 ms resolution); None if
/// the process is gone.
pub fn cpu_us(pid: u32) -> Option<u64> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its last ')'; field 3 (state) is the first of them.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_plus_system_time() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 70 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse(stat), Some(3_200_000));
        assert_eq!(parse("4242 (short) S 1"), None);
    }

    #[test]
    fn own_process_used_some_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_us(std::process::id()).is_some_and(|us| us > 0));
    }
}
