//! `auth enable|disable|status`, `user ...` and `role ...`, printing what
//! etcdctl 3.4 prints (`ctlv3/command/{auth,user,role}_command.go`,
//! `printer_simple.go`).

use clap::{Args, Subcommand};
use timon_client::proto::authpb::permission::Type as PermType;
use timon_client::proto::authpb::Permission;
use timon_client::proto::etcdserverpb::AuthRoleGetResponse;

use super::{exit, out, Context, Failure};

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Enables authentication
    Enable,
    /// Disables authentication
    Disable,
    /// Returns authentication status
    Status,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a new user
    Add(UserAddArgs),
    /// Deletes a user
    Delete { name: String },
    /// Gets detailed information of a user
    Get {
        name: String,
        /// Show permissions of roles granted to the user
        #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
            default_missing_value = "true", action = clap::ArgAction::Set)]
        detail: bool,
    },
    /// Lists all users
    List,
    /// Changes password of user
    Passwd(PasswdArgs),
    /// Grants a role to a user
    GrantRole {
        /// the user (not `user`: that is the global --user's id)
        #[arg(value_name = "user name")]
        name: String,
        role: String,
    },
    /// Revokes a role from a user
    RevokeRole {
        #[arg(value_name = "user name")]
        name: String,
        role: String,
    },
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// <user name or user:password>
    name: String,
    /// Read password from stdin instead of interactive terminal
    #[arg(long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
        default_missing_value = "true")]
    interactive: bool,
    /// Supply password from the command line flag
    #[arg(long, default_value = "")]
    new_user_password: String,
    /// Create a user without password (CN based auth only)
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    no_password: bool,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    name: String,
    /// If true, read password from stdin instead of interactive terminal
    #[arg(long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
        default_missing_value = "true")]
    interactive: bool,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Adds a new role
    Add { name: String },
    /// Deletes a role
    Delete { name: String },
    /// Gets detailed information of a role
    Get { name: String },
    /// Lists all roles
    List,
    /// Grants a key to a role
    GrantPermission(PermArgs),
    /// Revokes a key from a role
    RevokePermission(PermArgs),
}

#[derive(Debug, Args)]
pub struct PermArgs {
    /// <role name> [<permission type>] <key> [endkey]
    #[arg(num_args = 1..)]
    args: Vec<String>,
    /// a prefix permission
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    prefix: bool,
    /// a permission of keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    from_key: bool,
}

fn bad_args(message: impl Into<String>) -> Failure {
    Failure::new(exit::BAD_ARGS, message)
}

/// etcdctl's `fmt.Scanf("%s")`: the first word of stdin.
fn read_word() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.split_whitespace().next().unwrap_or("").to_string()
}

pub async fn auth(ctx: &Context, command: AuthCommand) -> Result<(), Failure> {
    let client = ctx.client().await?;
    match command {
        AuthCommand::Enable => {
            // As etcdctl: a root user without the root role gets it.
            loop {
                match ctx.timed(client.auth_enable()).await {
                    Ok(_) => break,
                    Err(f) if f.message == "etcdserver: root user does not have root role" => {
                        ctx.timed(client.role_add("root")).await?;
                        ctx.timed(client.user_grant_role("root", "root")).await?;
                    }
                    Err(f) => return Err(f),
                }
            }
            out("Authentication Enabled\n");
        }
        AuthCommand::Disable => {
            ctx.timed(client.auth_disable()).await?;
            out("Authentication Disabled\n");
        }
        AuthCommand::Status => {
            let s = ctx.timed(client.auth_status()).await?;
            out(format!(
                "Authentication Status: {}\nAuthRevision: {}\n",
                s.enabled, s.auth_revision
            ));
        }
    }
    Ok(())
}

pub async fn user(ctx: &Context, command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Add(a) => {
            let (name, password) = if a.no_password {
                (a.name.clone(), String::new())
            } else if !a.new_user_password.is_empty() {
                (a.name.clone(), a.new_user_password.clone())
            } else {
                match a.name.split_once(':') {
                    Some((u, p)) => {
                        if u.is_empty() {
                            return Err(bad_args("empty user name is not allowed"));
                        }
                        (u.to_string(), p.to_string())
                    }
                    None if !a.interactive => (a.name.clone(), read_word()),
                    None => (a.name.clone(), read_password_twice(&a.name)?),
                }
            };
            let client = ctx.client().await?;
            ctx.timed(client.user_add(&name, &password, a.no_password)).await?;
            out(format!("User {name} created\n"));
        }
        UserCommand::Delete { name } => {
            let client = ctx.client().await?;
            ctx.timed(client.user_delete(&name)).await?;
            out(format!("User {name} deleted\n"));
        }
        UserCommand::Get { name, detail } => {
            let client = ctx.client().await?;
            let resp = ctx.timed(client.user_get(&name)).await?;
            if detail {
                out(format!("User: {name}\n"));
                for role in &resp.roles {
                    out("\n");
                    let r = ctx.timed(client.role_get(role)).await?;
                    out(role_text(role, &r));
                }
            } else {
                let mut text = format!("User: {name}\nRoles:");
                for role in &resp.roles {
                    text.push(' ');
                    text.push_str(role);
                }
                text.push('\n');
                out(text);
            }
        }
        UserCommand::List => {
            let client = ctx.client().await?;
            let resp = ctx.timed(client.user_list()).await?;
            out(resp.users.iter().map(|u| format!("{u}\n")).collect::<String>());
        }
        UserCommand::Passwd(a) => {
            let password = if a.interactive {
                read_password_twice(&a.name)?
            } else {
                read_word()
            };
            let client = ctx.client().await?;
            ctx.timed(client.user_change_password(&a.name, &password)).await?;
            out("Password updated\n");
        }
        UserCommand::GrantRole { name: user, role } => {
            let client = ctx.client().await?;
            ctx.timed(client.user_grant_role(&user, &role)).await?;
            out(format!("Role {role} is granted to user {user}\n"));
        }
        UserCommand::RevokeRole { name: user, role } => {
            let client = ctx.client().await?;
            ctx.timed(client.user_revoke_role(&user, &role)).await?;
            out(format!("Role {role} is revoked from user {user}\n"));
        }
    }
    Ok(())
}

/// etcdctl asks twice on a terminal; here stdin's first two lines.
fn read_password_twice(name: &str) -> Result<String, Failure> {
    out(format!("Password of {name}: "));
    let first = read_word();
    if first.is_empty() {
        return Err(bad_args("empty password"));
    }
    out(format!("Type password of {name} again for confirmation: "));
    let second = read_word();
    if first != second {
        return Err(bad_args("given passwords are different"));
    }
    Ok(first)
}

/// clientv3's `GetPrefixRangeEnd`.
fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// etcdctl's `permRange` and `rangeEndFromPermFlags`.
fn perm_range(args: &[String], prefix: bool, from_key: bool) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let key = args[0].as_bytes().to_vec();
    if key.is_empty() {
        if prefix && from_key {
            return Err(bad_args("--from-key and --prefix flags are mutually exclusive"));
        }
        let end = if prefix || from_key { vec![0] } else { vec![] };
        return Ok((vec![0], end));
    }
    if args.len() == 1 {
        return match (prefix, from_key) {
            (true, true) => Err(bad_args("--from-key and --prefix flags are mutually exclusive")),
            (true, false) => Ok(prefix_end_pair(&key)),
            (false, true) => Ok((key, vec![0])),
            (false, false) => Ok((key, vec![])),
        };
    }
    if prefix {
        return Err(bad_args("unexpected endkey argument with --prefix flag"));
    }
    if from_key {
        return Err(bad_args("unexpected endkey argument with --from-key flag"));
    }
    Ok((key, args[1].as_bytes().to_vec()))
}

fn prefix_end_pair(key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (key.to_vec(), prefix_end(key))
}

/// etcdctl's simple `RoleGet`.
fn role_text(role: &str, r: &AuthRoleGetResponse) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let line = |p: &Permission| {
        if p.range_end.is_empty() {
            return format!("\t{}\n", s(&p.key));
        }
        let mut t = if p.range_end != [0] {
            format!("\t[{}, {})", s(&p.key), s(&p.range_end))
        } else {
            format!("\t[{}, <open ended>", s(&p.key))
        };
        if prefix_end(&p.key) == p.range_end {
            t.push_str(&format!(" (prefix {})", s(&p.key)));
        }
        t.push('\n');
        t
    };
    let mut text = format!("Role {role}\nKV Read:\n");
    for p in r.perm.iter().filter(|p| p.perm_type != PermType::Write as i32) {
        text.push_str(&line(p));
    }
    text.push_str("KV Write:\n");
    for p in r.perm.iter().filter(|p| p.perm_type != PermType::Read as i32) {
        text.push_str(&line(p));
    }
    text
}

pub async fn role(ctx: &Context, command: RoleCommand) -> Result<(), Failure> {
    match command {
        RoleCommand::Add { name } => {
            let client = ctx.client().await?;
            ctx.timed(client.role_add(&name)).await?;
            out(format!("Role {name} created\n"));
        }
        RoleCommand::Delete { name } => {
            let client = ctx.client().await?;
            ctx.timed(client.role_delete(&name)).await?;
            out(format!("Role {name} deleted\n"));
        }
        RoleCommand::Get { name } => {
            let client = ctx.client().await?;
            let r = ctx.timed(client.role_get(&name)).await?;
            out(role_text(&name, &r));
        }
        RoleCommand::List => {
            let client = ctx.client().await?;
            let r = ctx.timed(client.role_list()).await?;
            out(r.roles.iter().map(|r| format!("{r}\n")).collect::<String>());
        }
        RoleCommand::GrantPermission(a) => {
            if a.args.len() < 3 {
                return Err(bad_args(
                    "role grant command requires role name, permission type, and key [endkey] as its argument",
                ));
            }
            let perm_type = match a.args[1].to_uppercase().as_str() {
                "READ" => PermType::Read,
                "WRITE" => PermType::Write,
                "READWRITE" => PermType::Readwrite,
                _ => return Err(bad_args(format!("invalid permission type: {}", a.args[1]))),
            };
            let (key, range_end) = perm_range(&a.args[2..], a.prefix, a.from_key)?;
            let client = ctx.client().await?;
            let perm = Permission {
                perm_type: perm_type as i32,
                key,
                range_end,
            };
            ctx.timed(client.role_grant_permission(&a.args[0], perm)).await?;
            out(format!("Role {} updated\n", a.args[0]));
        }
        RoleCommand::RevokePermission(a) => {
            if a.args.len() < 2 {
                return Err(bad_args(
                    "role revoke-permission command requires role name and key [endkey] as its argument",
                ));
            }
            let (key, range_end) = perm_range(&a.args[1..], a.prefix, a.from_key)?;
            let client = ctx.client().await?;
            ctx.timed(client.role_revoke_permission(&a.args[0], &key, &range_end))
                .await?;
            let (role, key) = (&a.args[0], &a.args[1]);
            let end = String::from_utf8_lossy(&range_end).into_owned();
            out(if range_end.is_empty() {
                format!("Permission of key {key} is revoked from role {role}\n")
            } else if range_end != [0] {
                format!("Permission of range [{key}, {end}) is revoked from role {role}\n")
            } else {
                format!("Permission of range [{key}, <open ended> is revoked from role {role}\n")
            });
        }
    }
    Ok(())
}
