//! The members' logs after a run: a member that panicked is a failure even
//! when the cluster healed around it (a raft core that panics, e.g. on
//! "follower log reversion" after a member lost acknowledged log entries,
//! leaves a process that still answers Status). Both servers log zap JSON
//! lines; a panic is `"level":"panic"` (timon's panic hook, etcd's
//! `lg.Panic`).

use std::path::Path;

/// One problem per member log holding a panic: the member and the first
/// panic's message.
pub fn check(logs: &[impl AsRef<Path>]) -> Vec<String> {
    logs.iter()
        .filter_map(|log| {
            let log = log.as_ref();
            let text = std::fs::read_to_string(log).ok()?;
            let line = text.lines().find(|l| is_panic(l))?;
            let msg = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["msg"].as_str().map(str::to_string))
                .unwrap_or_else(|| line.chars().take(300).collect());
            Some(format!("a member panicked (see {}): {msg}", log.display()))
        })
        .collect()
}

fn is_panic(line: &str) -> bool {
    line.starts_with('{') && line.contains(r#""level":"panic""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_panic_of_each_log() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("n1.log"), dir.path().join("n2.log"));
        std::fs::write(&a, "{\"level\":\"info\",\"msg\":\"ok\"}\n").unwrap();
        std::fs::write(
            &b,
            "{\"level\":\"info\",\"msg\":\"ok\"}\n{\"level\":\"panic\",\"msg\":\"follower log reversion\"}\n",
        )
        .unwrap();
        let found = check(&[&a, &b]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("follower log reversion") && found[0].contains("n2.log"));
    }
}
