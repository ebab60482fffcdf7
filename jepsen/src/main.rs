//! The `timon-jepsen` command line (being built; see issue 5).

fn main() {
    eprintln!("timon-jepsen: not implemented yet");
    std::process::exit(2);
}
