//! The `auth` workload: users with different roles read and write while an
//! admin changes the roles' permissions (issue 12's security figure).
//!
//! [`setup`] (before the nemesis starts) creates the `root` user with the
//! `root` role, users `u1..uN`, each with its own empty role `r1..rN`, and
//! enables auth. Then, until the deadline:
//!
//! - the admin (root) grants READ, WRITE or READWRITE on one of
//!   [`Config::prefixes`] to one role, or revokes the role's permission of
//!   that prefix, every [`Config::admin_every`]; it moves to the next member
//!   after any request that did not succeed;
//! - [`Config::workers_per_user`] workers per user, each bound to one
//!   member, read one key (linearizable Range), read a whole prefix, or put
//!   one key, under those prefixes and under [`FORBIDDEN`] (never granted).
//!
//! Every request carries the session's token in the `token` metadata, as
//! clientv3 sends it. Outcomes: `Ok`; `Fail` for `etcdserver: permission
//! denied` (recorded with exactly that error), for a refused token (`invalid
//! auth token`, `revision of auth store is old`, `user name is empty`: the
//! session authenticates again before its next request, as clientv3 does,
//! and the retry is a new operation), for any failed read and for errors
//! that mean "not applied"; `Info` otherwise (a write or a permission change
//! whose outcome is unknown; the client continues as a new process).
//! `check::auth` reads the history; after the run [`final_permissions`]
//! reads every role's permissions on every member for
//! `check::auth::check_final`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::authpb::permission::Type as PermType;
use timon_proto::authpb::Permission;
use timon_proto::etcdserverpb::auth_client::AuthClient;
use timon_proto::etcdserverpb::kv_client::KvClient;
use timon_proto::etcdserverpb::{
    AuthEnableRequest, AuthRoleAddRequest, AuthRoleGetRequest, AuthRoleGrantPermissionRequest,
    AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserGrantRoleRequest, AuthenticateRequest, RangeRequest,
};
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::check::auth::{FinalRole, DENIED};
use crate::cluster::Endpoint;
use crate::history::{Kind, Op, Perm};
use crate::recorder::Recorder;
use crate::workload::register::{self, Done};

/// The prefix of every key of the workload.
pub const PREFIX: &str = "jepsen/auth/";
/// A prefix no role is ever granted: every request there must be refused.
pub const FORBIDDEN: &str = "jepsen/auth/x/";
pub const ROOT: &str = "root";

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub users: usize,
    pub workers_per_user: usize,
    /// The prefixes the admin grants and revokes (none inside another).
    pub prefixes: Vec<String>,
    /// Keys per prefix the workers use.
    pub keys: usize,
    /// The pause between two permission changes.
    pub admin_every: Duration,
    pub op_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            users: 3,
            workers_per_user: 2,
            prefixes: ["a", "b", "c"].iter().map(|p| format!("{PREFIX}{p}/")).collect(),
            keys: 3,
            admin_every: Duration::from_millis(50),
            op_timeout: Duration::from_secs(2),
        }
    }
}

/// The name of user `i` (from 0) and of its only role.
pub fn user(i: usize) -> (String, String) {
    (format!("u{}", i + 1), format!("r{}", i + 1))
}

pub(crate) fn password(user: &str) -> String {
    format!("{user}-secret")
}

/// `msg` with `token` in the metadata clientv3 sends it in.
fn authed<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(msg);
    if let Some(v) = token.and_then(|t| MetadataValue::try_from(t).ok()) {
        request.metadata_mut().insert("token", v);
    }
    request
}

/// Errors after which clientv3 authenticates again and retries.
pub(crate) fn token_refused(text: &str) -> bool {
    [
        "etcdserver: invalid auth token",
        "etcdserver: revision of auth store is old",
        "etcdserver: user name is empty",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Creates root, the users and their empty roles, and enables auth (each
/// step retried for up to `timeout`; "already exists" after a retried step
/// is fine).
pub async fn setup(endpoints: &[Endpoint], cfg: &Config, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let auth = AuthClient::new(endpoints[0].lazy()?);
    let user_add = |name: &str| AuthUserAddRequest {
        name: name.into(),
        password: password(name),
        ..Default::default()
    };
    let role_add = |name: &str| AuthRoleAddRequest { name: name.into() };
    let grant_role = |user: &str, role: &str| AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    };
    let mut steps: Vec<(String, Step)> = vec![
        (format!("user add {ROOT}"), Step::UserAdd(user_add(ROOT))),
        (format!("role add {ROOT}"), Step::RoleAdd(role_add(ROOT))),
        ("grant root".into(), Step::GrantRole(grant_role(ROOT, ROOT))),
    ];
    for i in 0..cfg.users {
        let (u, r) = user(i);
        steps.push((format!("role add {r}"), Step::RoleAdd(role_add(&r))));
        steps.push((format!("user add {u}"), Step::UserAdd(user_add(&u))));
        steps.push((format!("grant {r} to {u}"), Step::GrantRole(grant_role(&u, &r))));
    }
    steps.push(("auth enable".into(), Step::Enable));
    for (what, step) in steps {
        loop {
            let mut a = auth.clone();
            let sent = async {
                match step.clone() {
                    Step::UserAdd(r) => a.user_add(r).await.map(drop),
                    Step::RoleAdd(r) => a.role_add(r).await.map(drop),
                    Step::GrantRole(r) => a.user_grant_role(r).await.map(drop),
                    Step::Enable => a.auth_enable(AuthEnableRequest {}).await.map(drop),
                }
            };
            let error = match tokio::time::timeout(Duration::from_secs(5), sent).await {
                Ok(Ok(())) => break,
                Ok(Err(status)) if status.message().contains("already exists") => break,
                Ok(Err(status)) => register::describe(&status),
                Err(_) => "timeout".into(),
            };
            if Instant::now() >= deadline {
                anyhow::bail!("auth setup: {what}: {error}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

#[derive(Clone)]
enum Step {
    UserAdd(AuthUserAddRequest),
    RoleAdd(AuthRoleAddRequest),
    GrantRole(AuthUserGrantRoleRequest),
    Enable,
}

/// Runs the admin and the workers until `deadline` ([`setup`] first).
pub async fn run(
    endpoints: &[Endpoint],
    cfg: &Config,
    rec: &Recorder,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let workers = cfg.users * cfg.workers_per_user;
    // Workers are processes 0..workers, the admin the next; new processes
    // (after an Info) come from this counter.
    let processes = Arc::new(AtomicI64::new(workers as i64 + 1));
    let values = Arc::new(AtomicU64::new(1));
    let session = |user: &str, process: usize, endpoint: usize| Session {
        user: user.to_string(),
        token: None,
        endpoints: endpoints.to_vec(),
        endpoint: endpoint % endpoints.len(),
        channel: None,
        process: process as i64,
        processes: processes.clone(),
        rec: rec.clone(),
        op_timeout: cfg.op_timeout,
    };
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (u, role) = user(w % cfg.users);
        let worker = Worker {
            session: session(&u, w, w),
            role,
            cfg: cfg.clone(),
            values: values.clone(),
        };
        let rng = StdRng::seed_from_u64(seed.wrapping_mul(9_000_011).wrapping_add(w as u64));
        tasks.push(tokio::spawn(worker.run(rng, deadline)));
    }
    let admin = Admin {
        session: session(ROOT, workers, 0),
        cfg: cfg.clone(),
    };
    let rng = StdRng::seed_from_u64(seed.wrapping_mul(9_000_011).wrapping_sub(1));
    tasks.push(tokio::spawn(admin.run(rng, deadline)));
    for t in tasks {
        t.await?;
    }
    Ok(())
}

/// One client logged in as one user, one outstanding request at a time.
struct Session {
    user: String,
    token: Option<String>,
    endpoints: Vec<Endpoint>,
    endpoint: usize,
    channel: Option<Channel>,
    process: i64,
    processes: Arc<AtomicI64>,
    rec: Recorder,
    op_timeout: Duration,
}

impl Session {
    fn channel(&mut self) -> anyhow::Result<Channel> {
        if self.channel.is_none() {
            self.channel = Some(self.endpoints[self.endpoint].lazy()?);
        }
        Ok(self.channel.clone().expect("set above"))
    }

    /// The admin's way round a dead or cut-off member.
    fn next_endpoint(&mut self) {
        self.endpoint = (self.endpoint + 1) % self.endpoints.len();
        self.channel = None;
    }

    /// Records `op`'s completion; a refused token makes the next request
    /// authenticate first; after `Info` the session is a new process.
    fn record(&mut self, op: Op, done: Done) {
        let p = self.process;
        match done {
            Done::Ok(op, rev) => self.rec.record(p, Kind::Ok, op, rev, None),
            Done::CasMismatch(_, rev) => self.rec.record(p, Kind::Fail, op, rev, None),
            Done::Fail(rev, e) => {
                if token_refused(&e) {
                    self.token = None;
                }
                let e = if e.contains(DENIED) { DENIED.to_string() } else { e };
                self.rec.record(p, Kind::Fail, op, rev, Some(e));
            }
            Done::Info(e) => {
                self.rec.record(p, Kind::Info, op, None, Some(e));
                self.process = self.processes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends one request and records it: `op` at invocation, and the
    /// completion `request` answers (`Ok` carries the completed op).
    /// Answers the error of a request that did not succeed.
    async fn perform<F>(&mut self, op: Op, is_read: bool, request: F) -> Result<(), String>
    where
        F: std::future::Future<Output = Result<Done, tonic::Status>>,
    {
        self.rec.record(self.process, Kind::Invoke, op.clone(), None, None);
        let mut done = register::classify(is_read, self.op_timeout, request).await;
        if let Done::Info(e) = &done {
            // Refused before it could take effect.
            if e.contains(DENIED) || token_refused(e) || e.contains("permission is not granted") {
                done = Done::Fail(None, e.clone());
            }
        }
        let result = match &done {
            Done::Ok(..) => Ok(()),
            Done::CasMismatch(..) => Err("compare failed".to_string()),
            Done::Fail(_, e) | Done::Info(e) => Err(e.clone()),
        };
        self.record(op, done);
        result
    }

    /// Logs in (a recorded operation); answers whether it has a token.
    async fn authenticate(&mut self) -> bool {
        let op = Op::Authenticate {
            user: self.user.clone(),
        };
        let Ok(channel) = self.channel() else { return false };
        let request = AuthenticateRequest {
            name: self.user.clone(),
            password: password(&self.user),
        };
        let mut token = None;
        let sent = async {
            let r = AuthClient::new(channel).authenticate(request).await?.into_inner();
            token = Some(r.token);
            Ok(Done::Ok(op.clone(), r.header.map(|h| h.revision)))
        };
        let ok = self.perform(op.clone(), false, sent).await.is_ok();
        if ok {
            self.token = token;
        }
        ok
    }
}

struct Worker {
    session: Session,
    role: String,
    cfg: Config,
    values: Arc<AtomicU64>,
}

impl Worker {
    async fn run(mut self, mut rng: StdRng, deadline: Instant) {
        let mut prefixes = self.cfg.prefixes.clone();
        prefixes.push(FORBIDDEN.to_string());
        while Instant::now() < deadline {
            if self.session.token.is_none() && !self.session.authenticate().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let prefix = &prefixes[rng.gen_range(0..prefixes.len())];
            let key = format!("{prefix}{}", rng.gen_range(0..self.cfg.keys));
            let roll: f64 = rng.gen();
            let done = if roll < 0.4 {
                self.read(&key, false).await
            } else if roll < 0.5 {
                self.read(prefix, true).await
            } else {
                self.write(&key).await
            };
            if done.is_err_and(|e| e.contains("refused")) {
                // The member is down: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn read(&mut self, key: &str, prefix: bool) -> Result<(), String> {
        let (user, role) = (self.session.user.clone(), self.role.clone());
        let op = move |found| Op::AuthRead {
            user: user.clone(),
            role: role.clone(),
            key: key.to_string(),
            prefix,
            found,
        };
        let range = RangeRequest {
            key: key.as_bytes().to_vec(),
            range_end: if prefix { prefix_end(key) } else { Vec::new() },
            count_only: true,
            ..Default::default()
        };
        let channel = self.session.channel().map_err(|e| e.to_string())?;
        let token = self.session.token.clone();
        let sent = async {
            let r = KvClient::new(channel)
                .range(authed(range, token.as_deref()))
                .await?
                .into_inner();
            let found = u64::try_from(r.count).unwrap_or(0);
            Ok(Done::Ok(op(Some(found)), r.header.map(|h| h.revision)))
        };
        self.session.perform(op(None), true, sent).await
    }

    async fn write(&mut self, key: &str) -> Result<(), String> {
        let value = self.values.fetch_add(1, Ordering::Relaxed);
        let op = Op::AuthWrite {
            user: self.session.user.clone(),
            role: self.role.clone(),
            key: key.to_string(),
            value,
        };
        let channel = self.session.channel().map_err(|e| e.to_string())?;
        let token = self.session.token.clone();
        let sent = async {
            let r = KvClient::new(channel)
                .put(authed(register::put(key, value), token.as_deref()))
                .await?
                .into_inner();
            Ok(Done::Ok(op.clone(), r.header.map(|h| h.revision)))
        };
        self.session.perform(op.clone(), false, sent).await
    }
}

struct Admin {
    session: Session,
    cfg: Config,
}

impl Admin {
    async fn run(mut self, mut rng: StdRng, deadline: Instant) {
        let roles: Vec<String> = (0..self.cfg.users).map(|i| user(i).1).collect();
        while Instant::now() < deadline {
            if self.session.token.is_none() && !self.session.authenticate().await {
                self.session.next_endpoint();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let role = roles[rng.gen_range(0..roles.len())].clone();
            let prefix = self.cfg.prefixes[rng.gen_range(0..self.cfg.prefixes.len())].clone();
            let perm = match rng.gen_range(0..5) {
                0 => Some(Perm::Read),
                1 => Some(Perm::Write),
                2 => Some(Perm::Readwrite),
                _ => None,
            };
            match self.change(role, prefix, perm).await {
                // Nothing to revoke: the member is fine.
                Err(e) if !e.contains("permission is not granted") => self.session.next_endpoint(),
                _ => {}
            }
            tokio::time::sleep(self.cfg.admin_every).await;
        }
    }

    /// Grants `perm` (None: revokes) on `prefix` to `role`.
    async fn change(&mut self, role: String, prefix: String, perm: Option<Perm>) -> Result<(), String> {
        let channel = self.session.channel().map_err(|e| e.to_string())?;
        let token = self.session.token.clone();
        let mut auth = AuthClient::new(channel);
        let end = prefix_end(&prefix);
        match perm {
            Some(perm) => {
                let op = Op::GrantPermission {
                    role: role.clone(),
                    prefix: prefix.clone(),
                    perm,
                };
                let request = AuthRoleGrantPermissionRequest {
                    name: role,
                    perm: Some(Permission {
                        perm_type: match perm {
                            Perm::Read => PermType::Read,
                            Perm::Write => PermType::Write,
                            Perm::Readwrite => PermType::Readwrite,
                        } as i32,
                        key: prefix.into_bytes(),
                        range_end: end,
                    }),
                };
                let sent = async {
                    let r = auth
                        .role_grant_permission(authed(request, token.as_deref()))
                        .await?
                        .into_inner();
                    Ok(Done::Ok(op.clone(), r.header.map(|h| h.revision)))
                };
                self.session.perform(op.clone(), false, sent).await
            }
            None => {
                let op = Op::RevokePermission {
                    role: role.clone(),
                    prefix: prefix.clone(),
                };
                let request = AuthRoleRevokePermissionRequest {
                    role,
                    key: prefix.into_bytes(),
                    range_end: end,
                };
                let sent = async {
                    let r = auth
                        .role_revoke_permission(authed(request, token.as_deref()))
                        .await?
                        .into_inner();
                    Ok(Done::Ok(op.clone(), r.header.map(|h| h.revision)))
                };
                // "permission is not granted" (nothing to revoke) is a
                // Fail: see `perform`.
                self.session.perform(op.clone(), false, sent).await
            }
        }
    }
}

/// Every role's prefix permissions as each member answers RoleGet (as
/// root, logged in on that member), retried until `deadline`.
pub async fn final_permissions(
    endpoints: &[Endpoint],
    cfg: &Config,
    deadline: Instant,
) -> Result<Vec<FinalRole>, String> {
    let mut out = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let member = format!("n{}", i + 1);
        for r in 0..cfg.users {
            let role = user(r).1;
            let mut last = String::from("no attempt");
            let mut got = None;
            while got.is_none() && Instant::now() < deadline {
                match role_get(endpoint, &role).await {
                    Ok(perms) => got = Some(perms),
                    Err(e) => {
                        last = e;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            let perms = got.ok_or_else(|| format!("{member}: RoleGet {role}: {last}"))??;
            out.push(FinalRole {
                member: member.clone(),
                role,
                perms,
            });
        }
    }
    Ok(out)
}

/// One RoleGet as root on `endpoint`: the outer error is worth a retry,
/// the inner one (a permission that is not a prefix) is not.
async fn role_get(
    endpoint: &Endpoint,
    role: &str,
) -> Result<Result<std::collections::BTreeMap<String, Perm>, String>, String> {
    let channel = endpoint.lazy().map_err(|e| e.to_string())?;
    let mut auth = AuthClient::new(channel);
    let timeout = Duration::from_secs(2);
    let status = |s: tonic::Status| register::describe(&s);
    let login = AuthenticateRequest {
        name: ROOT.into(),
        password: password(ROOT),
    };
    let token = tokio::time::timeout(timeout, auth.authenticate(login))
        .await
        .map_err(|_| "authenticate: timeout".to_string())?
        .map_err(status)?
        .into_inner()
        .token;
    let request = authed(AuthRoleGetRequest { role: role.into() }, Some(&token));
    let answer = tokio::time::timeout(timeout, auth.role_get(request))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(status)?
        .into_inner();
    let mut perms = std::collections::BTreeMap::new();
    for p in answer.perm {
        let prefix = String::from_utf8_lossy(&p.key).into_owned();
        if p.range_end != prefix_end(&prefix) {
            return Ok(Err(format!("{role} holds a permission that is not a prefix: {p:?}")));
        }
        let perm = match PermType::try_from(p.perm_type) {
            Ok(PermType::Read) => Perm::Read,
            Ok(PermType::Write) => Perm::Write,
            Ok(PermType::Readwrite) => Perm::Readwrite,
            Err(_) => return Ok(Err(format!("{role}: unknown permission type {}", p.perm_type))),
        };
        perms.insert(prefix, perm);
    }
    Ok(Ok(perms))
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}
