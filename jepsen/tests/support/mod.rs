//! What the harness's end-to-end tests share.

use std::path::PathBuf;

/// The normal `timon` binary next to the test executable.
pub fn timon_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target/<profile>/timon
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("timon"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace --tests --bins`",
        bin.display()
    );
    bin
}
