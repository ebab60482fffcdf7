//! Stamps the build for `timon --version`: the git commit (etcd's "Git
//! SHA") and the Rust compiler's version (etcd's "Go Version").
//!
//! The commit comes from `TIMON_GIT_SHA` when a packager sets it, else from
//! `git rev-parse --short HEAD`; outside a git checkout (`cargo install`
//! from a source tarball) it is "Not provided", as etcd says when built
//! without its build script. Nothing here can fail the build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TIMON_GIT_SHA");
    let sha = std::env::var("TIMON_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(git_sha)
        .unwrap_or_else(|| "Not provided (built outside a git checkout; set TIMON_GIT_SHA)".into());
    println!("cargo:rustc-env=TIMON_GIT_SHA={sha}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // "rustc 1.95.0 (59807616e 2026-04-14)" -> "1.95.0"
    let rust_version = output(Command::new(rustc).arg("--version"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TIMON_RUST_VERSION={rust_version}");
}

/// The short commit of HEAD, and rebuild triggers on the files that move
/// when HEAD does (a worktree's HEAD, the branch ref, packed refs).
fn git_sha() -> Option<String> {
    let sha = output(Command::new("git").args(["rev-parse", "--short", "HEAD"]))?;
    let git_dir = output(Command::new("git").args(["rev-parse", "--absolute-git-dir"])).map(PathBuf::from);
    let common = output(Command::new("git").args(["rev-parse", "--git-common-dir"])).map(PathBuf::from);
    // Only files that exist: cargo reruns the script at every build for a
    // missing one (packed-refs often is).
    let watch = |path: PathBuf| {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    };
    if let Some(dir) = &git_dir {
        watch(dir.join("HEAD"));
    }
    if let (Some(common), Some(head)) = (common, output(Command::new("git").args(["symbolic-ref", "-q", "HEAD"]))) {
        let common = if common.is_absolute() {
            common
        } else {
            std::env::current_dir().ok()?.join(common)
        };
        watch(common.join(head));
        watch(common.join("packed-refs"));
    }
    Some(sha)
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}
