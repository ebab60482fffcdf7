//! `timon` with planted bugs (feature `planted-bugs`), for harness tests.
//! Which bug is active comes from TIMON_PLANTED_BUG; see `planted`.

#[path = "../main.rs"]
mod timon_main;

fn main() {
    timon_main::main();
}
