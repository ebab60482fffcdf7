//! One scenario end to end — start the cluster, run the workload and the
//! nemesis for the time limit, heal, read every key on every member, check —
//! and the `quick` and `long` suites. Each run writes
//! `results/<scenario>/<seed>/` (history.jsonl, summary.json, timeline.svg, the members'
//! data dirs and logs) and removes
//! it when the run passed (unless `keep`); the `watch` workload adds watches.jsonl (one
//! watcher and every event it received per line), the `kubernetes`
//! workload lists.jsonl (one completed list per line). A history with lock
//! acquisitions (the `lock` workload) is also checked by `check::lock`, one
//! with leased puts (the `lease` workload) by `check::lease`, and after a
//! `lease` run every lease must expire ([`lease::keys_left`]). The `auth`
//! workload's users and roles are set up ([`auth::setup`]) before the
//! nemesis starts, its members hash passwords with bcrypt's lowest cost,
//! and its history is checked by `check::auth`.
//!
//! [`run`] takes a [`Checker`]; the command line passes [`full_check`]
//! (`crate::check::check_all`). The final-read check ([`crate::durability`])
//! always runs too, and so does [`crate::panics`] (no member logged a panic).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cluster::{Cluster, Spec};
use crate::history::{History, Kind};
use crate::nemesis;
use crate::recorder::Recorder;
use crate::workload::{auth, kubernetes, lease, lock, register, watch, Recorded};

/// Which server is under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    Timon,
    Etcd,
}

impl Server {
    /// Raft entries a leader keeps after its snapshot for slow followers
    /// when the members run with `--snapshot-count` `count`: timon keeps
    /// `count.clamp(1, 5000)` (server/src/raft/node.rs,
    /// `max_in_snapshot_log_to_keep`); etcd 3.4 keeps 5000 whatever the
    /// count (`SnapshotCatchUpEntries`, which is not a flag in 3.4).
    pub fn log_kept_after_snapshot(self, count: u64) -> u64 {
        match self {
            Server::Timon => count.clamp(1, 5_000),
            Server::Etcd => 5_000,
        }
    }

    /// How many raft entries past a stopped member make sure its leader's
    /// log starts after it, with `--snapshot-count` `count`: up to `count`
    /// entries until the next snapshot, the entries kept after it, and
    /// `count` more as a margin (a snapshot is built after the entries it
    /// covers were applied, and the stopped member may hold entries past
    /// the index it last reported).
    pub fn snapshot_outrun(self, count: u64) -> u64 {
        2 * count + self.log_kept_after_snapshot(count)
    }

    /// How long a leader that sent a snapshot keeps its whole raft log:
    /// etcd 3.4 compacts nothing for 30 s after a snapshot was sent
    /// (`releaseDelayAfterSnapshot`, "skip compaction since there is an
    /// inflight snapshot"), so a follower it sends one gets the entries
    /// after it; timon (openraft) only keeps what is being sent.
    pub fn log_held_after_sending_a_snapshot(self) -> Duration {
        match self {
            Server::Timon => Duration::ZERO,
            Server::Etcd => Duration::from_secs(30),
        }
    }
}

/// `--snapshot-count` of the members under the `snapshot-restore` nemesis:
/// a snapshot every 100 entries, so a member stopped for a few hundred
/// entries (timon) or a few thousand (etcd) must be sent one.
pub const RESTORE_SNAPSHOT_COUNT: u64 = 100;

/// Which workload the clients run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Register,
    Watch,
    Kubernetes,
    Lock,
    Lease,
    Auth,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Watch => "watch",
            Workload::Kubernetes => "kubernetes",
            Workload::Lock => "lock",
            Workload::Lease => "lease",
            Workload::Auth => "auth",
        }
    }
}

/// The token the `auth` workload's members hand out (etcd's
/// `--auth-token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthToken {
    Simple,
    /// RS256 with a key pair made for the run (openssl): a JWT carries the
    /// auth revision it was issued at, so every permission change makes
    /// every client log in again.
    Jwt,
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub server: Server,
    pub binary: PathBuf,
    pub nodes: usize,
    pub workload: Workload,
    pub nemesis: nemesis::Kind,
    pub time_limit: Duration,
    pub seed: u64,
    /// Where `<scenario>/<seed>/` directories go.
    pub results: PathBuf,
    /// Keep the results directory even when the run passed.
    pub keep: bool,
    /// Mutual TLS on the members' client and peer ports.
    pub tls: bool,
    /// The `auth` workload's tokens.
    pub auth_token: AuthToken,
}

impl Scenario {
    /// `<server>-<workload>-<nemesis>-<nodes>n` (`-tls` appended with
    /// TLS), the results directory name (workload `auth-jwt` for the auth
    /// workload with JWT tokens).
    pub fn name(&self) -> String {
        let server = match self.server {
            Server::Timon => "timon",
            Server::Etcd => "etcd",
        };
        let jwt = match (self.workload, self.auth_token) {
            (Workload::Auth, AuthToken::Jwt) => "-jwt",
            _ => "",
        };
        format!(
            "{server}-{}{jwt}-{}-{}n{}",
            self.workload.name(),
            self.nemesis.name(),
            self.nodes,
            if self.tls { "-tls" } else { "" }
        )
    }

    /// Whether the nemesis can act on this server: libfaketime cannot
    /// reach etcd's clock (Go reads it through the vDSO, not libc), so
    /// `clock-skew` and `clock-rate` apply to timon only.
    pub fn applies(&self) -> bool {
        let clock = matches!(self.nemesis, nemesis::Kind::ClockSkew | nemesis::Kind::ClockRate);
        !(self.server == Server::Etcd && clock)
    }

    pub fn dir(&self) -> PathBuf {
        self.results.join(self.name()).join(self.seed.to_string())
    }
}

/// A checker's answer about one history.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub valid: bool,
    /// Which checker(s) ran, e.g. "linearizable-register".
    pub checker: String,
    pub problems: Vec<String>,
    /// What the workload-specific checkers (only `auth` so far) checked,
    /// when valid: shown after the verdict line.
    pub notes: Vec<String>,
}

/// Checks a history and what the workload recorded besides. The seam for
/// `crate::check::check_all`.
pub type Checker = Arc<dyn Fn(&History, &Recorded) -> Verdict + Send + Sync>;

/// The checkers of `crate::check` over the history: linearizability per
/// key, revisions, the recorded watch streams and lists. A history
/// passes only if every checker says Valid; Unknown (the search budget ran
/// out) fails the run too, so nothing passes unchecked.
pub fn full_check() -> Checker {
    use crate::history::Op;
    Arc::new(|history, recorded| {
        let mut verdicts = crate::check::check_all(history, &recorded.watches);
        if history.iter().any(|e| matches!(e.op, Op::Acquire { .. })) {
            verdicts.push(check_ops(history, "lock", crate::check::lock::check));
        }
        if history.iter().any(|e| matches!(e.op, Op::LeasedPut { .. })) {
            verdicts.push(check_ops(history, "lease", crate::check::lease::check));
        }
        if history
            .iter()
            .any(|e| matches!(e.op, Op::AuthRead { .. } | Op::AuthWrite { .. }))
        {
            verdicts.push(check_ops(history, "auth", crate::check::auth::check));
        }
        if !recorded.lists.is_empty() {
            verdicts.push(check_ops(history, "lists", |ops| {
                crate::check::list::check(ops, &recorded.lists)
            }));
        }
        let notes = verdicts
            .iter()
            .filter(|v| v.checker == "auth" && v.valid == crate::check::Validity::Valid)
            .map(|v| format!("{}: {}", v.checker, v.details))
            .collect();
        let problems: Vec<String> = verdicts
            .iter()
            .filter(|v| v.valid != crate::check::Validity::Valid)
            .map(|v| format!("{} {:?}: {}", v.checker, v.valid, v.details))
            .collect();
        Verdict {
            valid: problems.is_empty(),
            checker: verdicts.iter().map(|v| v.checker).collect::<Vec<_>>().join("+"),
            problems,
            notes,
        }
    })
}

/// Runs one checker of completed operations over `history`.
fn check_ops(
    history: &History,
    checker: &'static str,
    check: impl FnOnce(&[crate::check::ops::Operation]) -> crate::check::Violations,
) -> crate::check::Verdict {
    match crate::check::ops::operations(history) {
        Ok(ops) => check(&ops).into_verdict(checker),
        Err(e) => crate::check::Verdict {
            valid: crate::check::Validity::Unknown,
            checker,
            details: format!("malformed history: {e}"),
        },
    }
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub passed: bool,
    pub problems: Vec<String>,
    pub checker: String,
    /// The checkers' notes (see [`Verdict::notes`]).
    pub notes: Vec<String>,
    pub ops: Counts,
    /// Events received by all watchers (the `watch` workload).
    pub watch_events: usize,
    /// Paginated lists completed (the `kubernetes` workload).
    pub lists: usize,
    pub seconds: f64,
    /// Operations the checkers checked ([`crate::suite::checked_ops`]; 0
    /// when they did not run).
    pub checked: usize,
    /// Of `seconds`, the time the checkers took.
    pub checker_seconds: f64,
    /// The faults injected: when, what, whether healed.
    pub nemesis: Vec<nemesis::window::Window>,
    /// Kept when the run failed (or with `keep`).
    pub dir: Option<PathBuf>,
}

/// Completions by kind (client operations only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

fn counts(history: &History) -> Counts {
    let mut c = Counts::default();
    for e in history.iter().filter(|e| e.process >= 0) {
        match e.kind {
            Kind::Ok => c.ok += 1,
            Kind::Fail => c.fail += 1,
            Kind::Info => c.info += 1,
            Kind::Invoke => {}
        }
    }
    c
}

/// Runs one scenario; `progress` shows its time and operation count.
pub async fn run(sc: &Scenario, checker: &Checker, progress: &ProgressBar) -> Report {
    let started = std::time::Instant::now();
    let dir = sc.dir();
    let _ = std::fs::remove_dir_all(&dir);
    let rec = Recorder::new();
    let mut problems = Vec::new();
    let mut verdict = None;
    let (mut watch_events, mut lists) = (0, 0);
    let mut checked = Checked::default();
    match execute(sc, &dir, &rec, checker, progress).await {
        Ok((found, v, recorded, c)) => {
            problems.extend(found);
            verdict = Some(v);
            checked = c;
            watch_events = recorded.watches.iter().map(|w| w.events.len()).sum();
            lists = recorded.lists.len();
        }
        Err(e) => problems.push(format!("harness: {e:#}")),
    }
    let history = rec.snapshot();
    if let Some(v) = &verdict {
        problems.extend(v.problems.iter().map(|p| format!("{}: {p}", v.checker)));
        if !v.valid && v.problems.is_empty() {
            problems.push(format!("{}: history invalid", v.checker));
        }
    }
    let passed = problems.is_empty();
    let report = Report {
        scenario: sc.name(),
        seed: sc.seed,
        passed,
        problems,
        notes: verdict.as_ref().map(|v| v.notes.clone()).unwrap_or_default(),
        checker: verdict.map_or_else(|| "not run".into(), |v| v.checker),
        ops: counts(&history),
        watch_events,
        lists,
        seconds: started.elapsed().as_secs_f64(),
        checked: checked.ops,
        checker_seconds: checked.seconds,
        nemesis: nemesis::window::windows(&history),
        dir: (!passed || sc.keep).then(|| dir.clone()),
    };
    if let Err(e) = write_results(&dir, &history, &report) {
        progress.println(format!("could not write results to {}: {e:#}", dir.display()));
    }
    if passed && !sc.keep {
        let _ = std::fs::remove_dir_all(&dir);
        // Leave no empty <scenario>/ directory behind either.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    report
}

/// How much the checkers checked, and how long they took.
#[derive(Debug, Clone, Copy, Default)]
struct Checked {
    ops: usize,
    seconds: f64,
}

/// The cluster's life: start, workload + nemesis, heal, final reads, checks.
/// Answers the final-read problems, the checker's verdict, what the
/// workload recorded besides the history and what the checkers checked.
async fn execute(
    sc: &Scenario,
    dir: &Path,
    rec: &Recorder,
    checker: &Checker,
    progress: &ProgressBar,
) -> anyhow::Result<(Vec<String>, Verdict, Recorded, Checked)> {
    if !sc.applies() {
        anyhow::bail!(
            "{} does not apply to {:?}: libfaketime cannot reach a Go program's clock",
            sc.nemesis.name(),
            sc.server
        );
    }
    let mut extra_args = Vec::new();
    if sc.workload == Workload::Auth {
        // Every login checks a password: keep bcrypt cheap (etcd's minimum).
        extra_args.extend(["--bcrypt-cost".to_string(), "4".to_string()]);
        if sc.auth_token == AuthToken::Jwt {
            extra_args.extend(["--auth-token".to_string(), jwt_keys(dir)?]);
        }
    }
    let mut snapshot_restore = None;
    if sc.nemesis == nemesis::Kind::SnapshotRestore {
        extra_args.extend(["--snapshot-count".to_string(), RESTORE_SNAPSHOT_COUNT.to_string()]);
        snapshot_restore = Some(crate::cluster::snapshot::Restore {
            outrun: sc.server.snapshot_outrun(RESTORE_SNAPSHOT_COUNT),
            held_after_send: sc.server.log_held_after_sending_a_snapshot(),
        });
    }
    let spec = Spec {
        binary: sc.binary.clone(),
        nodes: sc.nodes,
        dir: dir.to_path_buf(),
        extra_args,
        tls: sc.tls,
        faketime: match sc.nemesis {
            nemesis::Kind::ClockSkew => Some(crate::cluster::clock::Fake::Wall),
            nemesis::Kind::ClockRate => Some(crate::cluster::clock::Fake::WallAndMonotonic),
            _ => None,
        },
        lazy_disks: nemesis::disk::needs_disks(sc.nemesis),
        snapshot_restore,
    };
    progress.set_message("starting cluster");
    let cluster = Cluster::start(&spec, Duration::from_secs(60)).await?;
    let endpoints = cluster.endpoints();
    if sc.workload == Workload::Auth {
        progress.set_message("auth setup");
        auth::setup(&endpoints, &auth::Config::default(), Duration::from_secs(30)).await?;
    }
    let cluster = Arc::new(Mutex::new(cluster));
    let deadline = Instant::now() + sc.time_limit;
    let cfg = register::Config::default();

    let workload = {
        let (endpoints, cfg, rec) = (endpoints.clone(), cfg.clone(), rec.clone());
        let (seed, which) = (sc.seed, sc.workload);
        tokio::spawn(async move {
            let mut recorded = Recorded::default();
            match which {
                Workload::Register => register::run(&endpoints, &cfg, &rec, seed, deadline).await?,
                Workload::Watch => {
                    let cfg = watch::Config::default();
                    recorded.watches = watch::run(&endpoints, &cfg, &rec, seed, deadline).await?;
                }
                Workload::Kubernetes => {
                    let cfg = kubernetes::Config::default();
                    recorded.lists = kubernetes::run(&endpoints, &cfg, &rec, seed, deadline).await?;
                }
                Workload::Lock => lock::run(&endpoints, &lock::Config::default(), &rec, seed, deadline).await?,
                Workload::Lease => lease::run(&endpoints, &lease::Config::default(), &rec, seed, deadline).await?,
                Workload::Auth => auth::run(&endpoints, &auth::Config::default(), &rec, seed, deadline).await?,
            }
            anyhow::Ok(recorded)
        })
    };
    let nemesis = tokio::spawn(nemesis::run(
        sc.nemesis,
        cluster.clone(),
        rec.clone(),
        StdRng::seed_from_u64(sc.seed ^ 0x6e656d65),
        deadline,
    ));
    let start = Instant::now();
    progress.set_length(sc.time_limit.as_secs());
    while !(workload.is_finished() && nemesis.is_finished()) {
        progress.set_position(start.elapsed().as_secs().min(sc.time_limit.as_secs()));
        progress.set_message(format!("{} history entries", rec.len()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recorded = workload.await??;
    nemesis.await?;
    write_lines(&dir.join("watches.jsonl"), &recorded.watches)?;
    write_lines(&dir.join("lists.jsonl"), &recorded.lists)?;

    progress.set_message("healing, final reads");
    let mut cluster = Arc::try_unwrap(cluster)
        .map_err(|_| anyhow::anyhow!("nemesis still holds the cluster"))?
        .into_inner();
    cluster.heal()?;
    let mut problems = Vec::new();
    if let Err(e) = cluster.wait_healthy(Duration::from_secs(60)).await {
        problems.push(format!("after healing: {e:#}"));
    }
    // The auth workload writes no registers (and reads need a token).
    let finals = match sc.workload {
        Workload::Auth => Vec::new(),
        _ => register::final_reads(&endpoints, cfg.keys, Instant::now() + Duration::from_secs(30)).await,
    };
    if sc.workload == Workload::Lease {
        // Nothing renews now: every lease must expire within its TTL and an
        // election or two.
        let give_up = Instant::now() + Duration::from_secs(20);
        match lease::keys_left(&endpoints, give_up).await {
            Ok(left) if left.is_empty() => {}
            Ok(left) => problems.push(format!("leases never expired: {} keys left: {left:?}", left.len())),
            Err(e) => problems.push(format!("leased keys could not be read after healing: {e}")),
        }
    }
    let history = rec.snapshot();
    problems.extend(crate::durability::check(&history, &finals));
    problems.extend(crate::panics::check(&cluster.logs()));
    if sc.workload == Workload::Auth {
        progress.set_message("final permissions");
        problems.extend(final_permissions(&endpoints, &history, dir).await?);
    }
    std::fs::write(
        dir.join("final-reads.json"),
        serde_json::to_string_pretty(
            &finals
                .iter()
                .map(|(k, v)| (k, v.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>()))
                .collect::<Vec<_>>(),
        )?,
    )?;
    drop(cluster);
    progress.set_message("checking");
    let started = std::time::Instant::now();
    let verdict = checker(&history, &recorded);
    let checked = Checked {
        ops: crate::check::ops::operations(&history).map_or(0, |ops| crate::suite::checked_ops(&ops)),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((problems, verdict, recorded, checked))
}

/// Makes an RSA key pair in `dir` with openssl; answers the `--auth-token`
/// value that signs RS256 JWTs with it.
fn jwt_keys(dir: &Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir)?;
    let (private, public) = (dir.join("jwt.key"), dir.join("jwt.pub"));
    let openssl = |args: &[&std::ffi::OsStr]| -> anyhow::Result<()> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .context("running openssl for the JWT keys")?;
        anyhow::ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    openssl(&["genrsa".as_ref(), "-out".as_ref(), private.as_os_str(), "2048".as_ref()])?;
    openssl(&[
        "rsa".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        public.as_os_str(),
    ])?;
    Ok(format!(
        "jwt,pub-key={},priv-key={},sign-method=RS256",
        public.display(),
        private.display()
    ))
}

/// The auth workload's end state: every member's permissions (written to
/// final-permissions.json) explained by the history's changes.
async fn final_permissions(
    endpoints: &[crate::cluster::Endpoint],
    history: &History,
    dir: &Path,
) -> anyhow::Result<Vec<String>> {
    let give_up = Instant::now() + Duration::from_secs(30);
    let observed = match auth::final_permissions(endpoints, &auth::Config::default(), give_up).await {
        Ok(observed) => observed,
        Err(e) => return Ok(vec![format!("final permissions: {e}")]),
    };
    std::fs::write(
        dir.join("final-permissions.json"),
        serde_json::to_string_pretty(&observed)?,
    )?;
    Ok(match crate::check::ops::operations(history) {
        Ok(ops) => crate::check::auth::check_final(&ops, &observed),
        Err(e) => vec![format!("final permissions: malformed history: {e}")],
    })
}

fn write_results(dir: &Path, history: &History, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("history.jsonl"))?);
    for e in history {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(report)?)?;
    crate::timeline::write(dir, history)?;
    Ok(())
}

/// One JSON line per item (watchers, lists); no file when there are none.
fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for w in items {
        serde_json::to_writer(&mut out, w)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// A progress bar for one scenario (seconds of its time limit).
pub fn progress_bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// The `quick` suite's nemeses, each one scenario. kill-all is here so the
/// scenario that catches the planted `ack-before-fsync` bug is proven to
/// pass on timon proper.
pub const QUICK: [nemesis::Kind; 6] = [
    nemesis::Kind::None,
    nemesis::Kind::Kill,
    nemesis::Kind::Pause,
    nemesis::Kind::PartitionLeader,
    nemesis::Kind::PartitionRandom,
    nemesis::Kind::KillAll,
];

/// The `quick` suite's scenarios of the other workloads.
pub const QUICK_OTHERS: [(Workload, nemesis::Kind); 6] = [
    (Workload::Watch, nemesis::Kind::Kill),
    (Workload::Kubernetes, nemesis::Kind::PartitionRandom),
    (Workload::Lock, nemesis::Kind::PartitionLeader),
    (Workload::Lease, nemesis::Kind::Kill),
    (Workload::Auth, nemesis::Kind::Kill),
    (Workload::Auth, nemesis::Kind::PartitionLeader),
];

/// The `long` suite: every workload under every nemesis (the whole
/// `nemesis::Kind` list, so a new nemesis joins it) on 3 and on 5 members,
/// as (workload, nemesis, members); except auth under the membership
/// changes ([`changes_membership`]), whose MemberAdd and MemberRemove the
/// nemesis sends without a root token. Which of these run on which server
/// is `crate::suite::plan`.
pub fn long() -> Vec<(Workload, nemesis::Kind, usize)> {
    use clap::ValueEnum;
    let mut out = Vec::new();
    for nodes in [3, 5] {
        for &w in Workload::value_variants() {
            for &n in nemesis::Kind::value_variants() {
                if w == Workload::Auth && changes_membership(n) {
                    continue;
                }
                out.push((w, n, nodes));
            }
        }
    }
    out
}

/// The nemeses that send MemberAdd / MemberRemove / MemberPromote.
pub fn changes_membership(n: nemesis::Kind) -> bool {
    use nemesis::Kind;
    matches!(n, Kind::MemberReadd | Kind::MemberReplace | Kind::LearnerPromote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn the_long_suite_runs_every_workload_under_every_nemesis() {
        let long = long();
        for &w in Workload::value_variants() {
            for &n in nemesis::Kind::value_variants() {
                let needs_root = w == Workload::Auth && changes_membership(n);
                for nodes in [3, 5] {
                    assert_eq!(long.contains(&(w, n, nodes)), !needs_root, "{w:?} under {n:?}");
                }
            }
        }
    }

    #[test]
    fn snapshot_restore_writes_past_the_log_each_server_keeps_after_a_snapshot() {
        // timon keeps min(count, 5000) entries after its snapshot, etcd 3.4
        // 5000 whatever the count.
        assert_eq!(Server::Timon.snapshot_outrun(RESTORE_SNAPSHOT_COUNT), 300);
        assert_eq!(Server::Etcd.snapshot_outrun(RESTORE_SNAPSHOT_COUNT), 5_200);
        assert_eq!(Server::Timon.log_kept_after_snapshot(100_000), 5_000);
    }

    #[test]
    fn the_full_check_checks_lock_holds_when_there_are_acquisitions() {
        use crate::check::testgen::{inv, ok};
        use crate::history::Op;
        let grant = |ttl, lease| Op::Grant { ttl, lease };
        let acquire = |lease: i64, key: bool| Op::Acquire {
            name: "jepsen/lock".into(),
            lease,
            key: key.then(|| format!("jepsen/lock/{lease:x}")),
        };
        // Two clients whose certain holds overlap from t=4 on.
        let mut h = Vec::new();
        for (p, lease, fence) in [(0, 0xa, 10), (1, 0xb, 11)] {
            h.push(inv(p + 10, 0, grant(5, None)));
            h.push(ok(p + 10, 1, grant(5, Some(lease)), None));
            h.push(inv(p, 2 + p as u64, acquire(lease, false)));
            h.push(ok(p, 3 + p as u64, acquire(lease, true), Some(fence)));
        }
        let v = full_check()(&h, &Recorded::default());
        assert!(v.checker.ends_with("+lock"), "{}", v.checker);
        assert!(
            !v.valid && v.problems.iter().any(|p| p.contains("holds overlap")),
            "{v:?}"
        );
    }
}
