//! Where log lines go: etcd's `--log-outputs`, a comma-separated list of
//! `stderr`, `stdout`, `default` (stderr, as etcd 3.5's zap logger) and file
//! paths (appended to, created if missing); `/dev/null` anywhere in the
//! list discards everything, as in etcd. Every file is opened at start-up,
//! so an unwritable one stops timon with etcd's message before it serves.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

enum Output {
    Stderr,
    Stdout,
    File(Mutex<File>),
}

/// The opened outputs; a [`MakeWriter`] whose writer copies each line to all.
#[derive(Clone)]
pub struct Outputs(Arc<Vec<Output>>);

impl Outputs {
    /// Opens the outputs `--log-outputs` names.
    pub fn open(spec: &str) -> anyhow::Result<Self> {
        let names: Vec<&str> = spec.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if names.contains(&"/dev/null") {
            return Ok(Self(Arc::new(Vec::new())));
        }
        let mut outputs = Vec::new();
        let mut seen = Vec::new();
        for name in names {
            let name = if name == "default" { "stderr" } else { name };
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            outputs.push(match name {
                "stderr" => Output::Stderr,
                "stdout" => Output::Stdout,
                path => {
                    let file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| anyhow::anyhow!("couldn't open sink {path:?}: open {path}: {e}"))?;
                    Output::File(Mutex::new(file))
                }
            });
        }
        if outputs.is_empty() {
            outputs.push(Output::Stderr);
        }
        Ok(Self(Arc::new(outputs)))
    }

    /// Standard error alone (before the flags are read).
    pub fn stderr() -> Self {
        Self(Arc::new(vec![Output::Stderr]))
    }

    /// Writes one whole line to every output; a failing output does not
    /// keep the line from the others.
    pub fn write_line(&self, line: &[u8]) {
        for output in self.0.iter() {
            let _ = match output {
                Output::Stderr => io::stderr().lock().write_all(line),
                Output::Stdout => io::stdout().lock().write_all(line),
                Output::File(f) => match f.lock() {
                    Ok(mut f) => f.write_all(line),
                    Err(_) => Ok(()),
                },
            };
        }
    }
}

/// The writer of one line.
pub struct LineWriter<'a>(&'a Outputs);

impl io::Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_appended_to_and_each_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timon.log");
        std::fs::write(&path, "old\n").unwrap();
        let spec = format!("{p},{p}", p = path.display());
        Outputs::open(&spec).unwrap().write_line(b"new\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\nnew\n");
    }

    #[test]
    fn an_unwritable_path_is_etcds_open_sink_error() {
        let err = Outputs::open("stderr,/nonexistent/dir/timon.log")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(r#"couldn't open sink "/nonexistent/dir/timon.log": open /nonexistent/dir/timon.log: "#),
            "{err}"
        );
    }

    #[test]
    fn dev_null_discards_everything() {
        assert!(Outputs::open("stderr,/dev/null").unwrap().0.is_empty());
        assert!(matches!(Outputs::open("default").unwrap().0[..], [Output::Stderr]));
    }
}
