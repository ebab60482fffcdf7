//! The faults a mount can be told to inject, and the control commands that
//! set them (the binary reads them on stdin; the harness calls
//! [`crate::Control`] directly):
//!
//! - `lose-unsynced` / `lose-unsynced torn`: a power loss (see
//!   [`crate::tree::Tree::lose_unsynced`]);
//! - `fsync-error on|off`: fsync and fdatasync (of files and directories)
//!   fail with EIO, and the pages they should have written are forgotten
//!   as Linux forgets them;
//! - `disk-full on|off`: writes, extensions and allocations fail with ENOSPC;
//! - `slow-disk MS`: every fsync answers MS milliseconds late (0: no delay).

use std::time::Duration;

/// The faults in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    pub fsync_error: bool,
    pub disk_full: bool,
    pub fsync_delay: Duration,
}

/// One control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    LoseUnsynced { tear: bool },
    FsyncError(bool),
    DiskFull(bool),
    SlowDisk(Duration),
}

impl Command {
    /// Parses one command line (see the module doc).
    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let on_off = |w: Option<&&str>| match w.copied() {
            Some("on") => Ok(true),
            Some("off") => Ok(false),
            other => Err(format!("expected on or off, got {other:?}")),
        };
        match words.first().copied() {
            Some("lose-unsynced") => match words.get(1).copied() {
                None => Ok(Command::LoseUnsynced { tear: false }),
                Some("torn") => Ok(Command::LoseUnsynced { tear: true }),
                Some(w) => Err(format!("lose-unsynced takes `torn` or nothing, got {w:?}")),
            },
            Some("fsync-error") => on_off(words.get(1)).map(Command::FsyncError),
            Some("disk-full") => on_off(words.get(1)).map(Command::DiskFull),
            Some("slow-disk") => words
                .get(1)
                .and_then(|w| w.parse::<u64>().ok())
                .map(|ms| Command::SlowDisk(Duration::from_millis(ms)))
                .ok_or_else(|| "slow-disk takes a delay in milliseconds".to_string()),
            _ => Err(format!(
                "unknown command {line:?}: lose-unsynced [torn] | fsync-error on|off | disk-full on|off | slow-disk MS"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(
            Command::parse("lose-unsynced"),
            Ok(Command::LoseUnsynced { tear: false })
        );
        assert_eq!(
            Command::parse("lose-unsynced torn"),
            Ok(Command::LoseUnsynced { tear: true })
        );
        assert_eq!(Command::parse("fsync-error on"), Ok(Command::FsyncError(true)));
        assert_eq!(Command::parse("disk-full off"), Ok(Command::DiskFull(false)));
        assert_eq!(
            Command::parse("slow-disk 250"),
            Ok(Command::SlowDisk(Duration::from_millis(250)))
        );
        assert!(Command::parse("disk-full maybe").is_err());
        assert!(Command::parse("slow-disk").is_err());
        assert!(Command::parse("format c:").is_err());
    }
}
