//! `timon --version`: etcd's `--version` lines, with timon's own version
//! first and the etcd API level it speaks beside it.
//!
//! etcd 3.5.1 prints
//! ```text
//! etcd Version: 3.5.1
//! Git SHA: e8732fb5f
//! Go Version: go1.16.3
//! Go OS/Arch: linux/amd64
//! ```
//! The commit and the compiler version are stamped by `build.rs`.

use crate::rpc::ETCD_API_VERSION;

/// timon's own version (the workspace version).
pub const TIMON_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit timon was built from, or why it is not known.
pub const GIT_SHA: &str = env!("TIMON_GIT_SHA");

/// The version of the Rust compiler that built timon.
pub const RUST_VERSION: &str = env!("TIMON_RUST_VERSION");

/// What `timon --version` prints (ends with a newline).
pub fn long_version() -> String {
    format!(
        "timon Version: {TIMON_VERSION}\n\
         etcd API Version: {ETCD_API_VERSION}\n\
         Git SHA: {GIT_SHA}\n\
         Rust Version: {RUST_VERSION}\n\
         Rust OS/Arch: {}/{}\n",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_timon_the_etcd_api_the_commit_and_the_compiler() {
        let text = long_version();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("timon Version: {}", env!("CARGO_PKG_VERSION")));
        assert_eq!(lines[1], "etcd API Version: 3.6.0");
        assert!(lines[2].starts_with("Git SHA: ") && lines[2].len() > "Git SHA: ".len());
        assert!(lines[3].starts_with("Rust Version: 1."), "{}", lines[3]);
        assert_eq!(
            lines[4],
            format!("Rust OS/Arch: {}/{}", std::env::consts::OS, std::env::consts::ARCH)
        );
        assert_eq!(lines.len(), 5);
    }
}
