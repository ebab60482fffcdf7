//! The `timon` binary: etcd's flags in, a serving member out.

use timon_server::config::Config;

pub fn main() {
    let cfg = match Config::from_env_args() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if cfg.version == Some(true) {
        print!("{}", timon_server::version::long_version());
        return;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("timon: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(timon_server::node::run(cfg, timon_server::node::shutdown_signal())) {
        timon_server::logs::fatal("failed to start timon", &format!("{e:#}"));
        std::process::exit(1);
    }
}
