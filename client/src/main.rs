//! `timonctl`: etcdctl's v3 command line (same syntax, output and exit
//! codes) on top of the timon client library.

mod ctl;

fn main() {
    std::process::exit(ctl::run());
}
