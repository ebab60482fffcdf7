//! `member list / add / remove / promote / update`: etcdctl 3.4's argument
//! checks (same messages and exit codes, in the same order), its output in
//! each format, and the `ETCD_*` block `member add` prints for starting the
//! new member.
//!
//! As in etcdctl, a format a command has no rendering for (`-w table` for
//! everything but `list`) is refused after the request has run.
//! One deliberate difference: etcdctl 3.4 crashes (a nil-pointer panic,
//! exit 2, after the promotion happened) on `-w json` and `-w table` for
//! `member promote`; timonctl prints the JSON response and refuses table,
//! as etcdctl 3.5 does.

use clap::{Args, Subcommand};
use timon_proto::etcdserverpb::{Member, MemberAddResponse, MemberListResponse, ResponseHeader};

use super::{exit, go, json, out, table, Context, Failure, Format};

#[derive(Debug, Clone, Subcommand)]
pub enum MemberCommand {
    /// Adds a member into the cluster
    Add(AddArgs),
    /// Removes a member from the cluster
    Remove(IdArgs),
    /// Updates a member in the cluster
    Update(UpdateArgs),
    /// Lists all members in the cluster
    List,
    /// Promotes a non-voting member in the cluster
    Promote(IdArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    /// <memberName>
    pub args: Vec<String>,
    /// comma separated peer URLs for the new member.
    #[arg(long, default_value = "")]
    pub peer_urls: String,
    /// indicates if the new member is raft learner
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub learner: bool,
}

#[derive(Debug, Clone, Args)]
pub struct IdArgs {
    /// <memberID>
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// <memberID>
    pub args: Vec<String>,
    /// comma separated peer URLs for the updated member.
    #[arg(long, default_value = "")]
    pub peer_urls: String,
}

pub async fn run(ctx: &Context, command: MemberCommand) -> Result<(), Failure> {
    match command {
        MemberCommand::List => list(ctx).await,
        MemberCommand::Add(args) => add(ctx, args).await,
        MemberCommand::Remove(args) => remove(ctx, args).await,
        MemberCommand::Update(args) => update(ctx, args).await,
        MemberCommand::Promote(args) => promote(ctx, args).await,
    }
}

fn bad_args(message: impl Into<String>) -> Failure {
    Failure::new(exit::BAD_ARGS, message)
}

/// The single `<memberID>` argument, hexadecimal, parsed as Go's
/// `strconv.ParseUint(arg, 16, 64)` parses it.
fn member_id(args: &[String]) -> Result<u64, Failure> {
    let [arg] = args else {
        return Err(bad_args("member ID is not provided"));
    };
    parse_hex_u64(arg).map_err(|reason| {
        bad_args(format!(
            "bad member ID arg (strconv.ParseUint: parsing {}: {reason}), expecting ID in Hex",
            go::quote(arg.as_bytes())
        ))
    })
}

/// Go's `ParseUint(text, 16, 64)`: hex digits only (no sign, no `0x`),
/// digits checked left to right, overflow reported as soon as it happens.
fn parse_hex_u64(text: &str) -> Result<u64, &'static str> {
    if text.is_empty() {
        return Err("invalid syntax");
    }
    let mut value: u64 = 0;
    for c in text.chars() {
        let digit = c.to_digit(16).ok_or("invalid syntax")?;
        value = value
            .checked_mul(16)
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or("value out of range")?;
    }
    Ok(value)
}

fn peer_urls(flag: &str) -> Vec<String> {
    flag.split(',').map(str::to_owned).collect()
}

fn table_unsupported() -> Failure {
    Failure::new(exit::BAD_FEATURE, "table not supported as output format")
}

/// The line etcdctl prints after a membership change: `%16x` pads short
/// IDs with spaces.
fn changed(verb: &str, id: u64, header: Option<&ResponseHeader>) -> String {
    let cluster = header.map_or(0, |h| h.cluster_id);
    format!("Member {id:>16x} {verb} cluster {cluster:>16x}\n")
}

async fn list(ctx: &Context) -> Result<(), Failure> {
    let client = ctx.client().await?;
    let response = ctx.timed(client.member_list()).await?;
    out(render_list(ctx.format, &response));
    Ok(())
}

const LIST_HEADER: [&str; 6] = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"];

/// etcdctl's `makeMemberListTable` rows: a member without a name has not
/// started yet.
fn list_rows(members: &[Member]) -> Vec<Vec<String>> {
    members
        .iter()
        .map(|m| {
            let status = if m.name.is_empty() { "unstarted" } else { "started" };
            vec![
                format!("{:x}", m.id),
                status.to_owned(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

pub fn render_list(format: Format, response: &MemberListResponse) -> String {
    let rows = list_rows(&response.members);
    match format {
        Format::Simple { .. } => rows.iter().map(|row| format!("{}\n", row.join(", "))).collect(),
        Format::Json => format!("{}\n", json::member_list(response)),
        Format::Table => table::render(&LIST_HEADER, &rows),
    }
}

async fn add(ctx: &Context, args: AddArgs) -> Result<(), Failure> {
    let name = match args.args.as_slice() {
        [] => return Err(bad_args("member name not provided")),
        [name] => name.clone(),
        many => {
            let mut message = String::from("too many arguments");
            for arg in many {
                if arg.to_lowercase().starts_with("http") {
                    message.push_str(&format!(", did you mean --peer-urls={arg}"));
                }
            }
            return Err(bad_args(message));
        }
    };
    if args.peer_urls.is_empty() {
        return Err(bad_args("member peer urls not provided"));
    }
    let client = ctx.client().await?;
    let response = ctx
        .timed(client.member_add(peer_urls(&args.peer_urls), args.learner))
        .await?;
    match ctx.format {
        Format::Simple { .. } => {
            out(changed("added to", new_member_id(&response), response.header.as_ref()));
            out(initial_cluster_block(&name, &args.peer_urls, &response));
            Ok(())
        }
        Format::Json => {
            out(format!("{}\n", json::member_add(&response)));
            Ok(())
        }
        Format::Table => Err(table_unsupported()),
    }
}

fn new_member_id(response: &MemberAddResponse) -> u64 {
    response.member.as_ref().map_or(0, |m| m.id)
}

/// The environment for starting the new member: every member's peer URLs
/// in the response's order, the new one under the name given (it has no
/// name in the cluster until it starts).
pub fn initial_cluster_block(name: &str, peer_urls_flag: &str, response: &MemberAddResponse) -> String {
    let new_id = new_member_id(response);
    let mut cluster = Vec::new();
    for member in &response.members {
        let member_name = if member.id == new_id { name } else { &member.name };
        for url in &member.peer_ur_ls {
            cluster.push(format!("{member_name}={url}"));
        }
    }
    format!(
        "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        go::quote(name.as_bytes()),
        go::quote(cluster.join(",").as_bytes()),
        go::quote(peer_urls_flag.as_bytes()),
    )
}

async fn remove(ctx: &Context, args: IdArgs) -> Result<(), Failure> {
    let id = member_id(&args.args)?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.member_remove(id)).await?;
    match ctx.format {
        Format::Simple { .. } => out(changed("removed from", id, response.header.as_ref())),
        Format::Json => out(format!(
            "{}\n",
            json::members_changed(&response.header, &response.members)
        )),
        Format::Table => return Err(table_unsupported()),
    }
    Ok(())
}

async fn update(ctx: &Context, args: UpdateArgs) -> Result<(), Failure> {
    let id = member_id(&args.args)?;
    if args.peer_urls.is_empty() {
        return Err(bad_args("member peer urls not provided"));
    }
    let client = ctx.client().await?;
    let response = ctx.timed(client.member_update(id, peer_urls(&args.peer_urls))).await?;
    match ctx.format {
        Format::Simple { .. } => out(changed("updated in", id, response.header.as_ref())),
        Format::Json => out(format!(
            "{}\n",
            json::members_changed(&response.header, &response.members)
        )),
        Format::Table => return Err(table_unsupported()),
    }
    Ok(())
}

async fn promote(ctx: &Context, args: IdArgs) -> Result<(), Failure> {
    let id = member_id(&args.args)?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.member_promote(id)).await?;
    match ctx.format {
        Format::Simple { .. } => out(changed("promoted in", id, response.header.as_ref())),
        Format::Json => out(format!(
            "{}\n",
            json::members_changed(&response.header, &response.members)
        )),
        Format::Table => return Err(table_unsupported()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, peer: &str, client: &str, learner: bool) -> Member {
        Member {
            id,
            name: name.into(),
            peer_ur_ls: vec![peer.into()],
            client_ur_ls: if client.is_empty() { vec![] } else { vec![client.into()] },
            is_learner: learner,
        }
    }

    fn header() -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 2071283051958432894,
            member_id: 8764147451201106795,
            revision: 0,
            raft_term: 2,
        })
    }

    #[test]
    fn ids_parse_like_strconv_parse_uint() {
        let id = |s: &str| member_id(&[s.to_owned()]);
        assert_eq!(id("2ce40b51e1194168"), Ok(0x2ce40b51e1194168));
        assert_eq!(id("FF"), Ok(255));
        assert_eq!(
            id("zz").map_err(|f| f.message),
            Err("bad member ID arg (strconv.ParseUint: parsing \"zz\": invalid syntax), expecting ID in Hex".into())
        );
        assert_eq!(id("+1").map_err(|f| f.code), Err(exit::BAD_ARGS), "Go rejects a sign");
        assert_eq!(
            id("10000000000000000").map_err(|f| f.message),
            Err("bad member ID arg (strconv.ParseUint: parsing \"10000000000000000\": value out of range), expecting ID in Hex".into())
        );
        assert_eq!(
            member_id(&[]).map_err(|f| f.message),
            Err("member ID is not provided".into())
        );
    }

    #[test]
    fn member_add_prints_the_etcd_environment_block() {
        let response = MemberAddResponse {
            header: header(),
            member: Some(member(0xe8799e64d2e3bd, "", "http://127.0.0.1:23014", "", true)),
            members: vec![
                member(0xe8799e64d2e3bd, "", "http://127.0.0.1:23014", "", true),
                member(
                    0x2ce40b51e1194168,
                    "a",
                    "http://127.0.0.1:23011",
                    "http://127.0.0.1:23001",
                    false,
                ),
                member(
                    0x79a081ac23fcb36b,
                    "c",
                    "http://127.0.0.1:23013",
                    "http://127.0.0.1:23003",
                    false,
                ),
            ],
        };
        let text = changed("added to", new_member_id(&response), response.header.as_ref())
            + &initial_cluster_block("d", "http://127.0.0.1:23014", &response);
        assert_eq!(
            text,
            "Member   e8799e64d2e3bd added to cluster 1cbeacf62d44f47e\n\
             \n\
             ETCD_NAME=\"d\"\n\
             ETCD_INITIAL_CLUSTER=\"d=http://127.0.0.1:23014,a=http://127.0.0.1:23011,c=http://127.0.0.1:23013\"\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://127.0.0.1:23014\"\n\
             ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        );
    }

    #[test]
    fn member_list_renders_like_etcdctl() {
        let response = MemberListResponse {
            header: header(),
            members: vec![
                member(0xe8799e64d2e3bd, "", "http://127.0.0.1:23014", "", true),
                member(
                    0x2ce40b51e1194168,
                    "a",
                    "http://127.0.0.1:23011",
                    "http://127.0.0.1:23001",
                    false,
                ),
            ],
        };
        assert_eq!(
            render_list(Format::Simple { hex: false }, &response),
            "e8799e64d2e3bd, unstarted, , http://127.0.0.1:23014, , true\n\
             2ce40b51e1194168, started, a, http://127.0.0.1:23011, http://127.0.0.1:23001, false\n"
        );
        assert_eq!(
            render_list(Format::Json, &response),
            "{\"header\":{\"cluster_id\":2071283051958432894,\"member_id\":8764147451201106795,\"raft_term\":2},\
             \"members\":[{\"ID\":65435915800208317,\"peerURLs\":[\"http://127.0.0.1:23014\"],\"isLearner\":true},\
             {\"ID\":3234722878655644008,\"name\":\"a\",\"peerURLs\":[\"http://127.0.0.1:23011\"],\"clientURLs\":[\"http://127.0.0.1:23001\"]}]}\n"
        );
        let expected_table = "\
+------------------+-----------+------+------------------------+------------------------+------------+
|        ID        |  STATUS   | NAME |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
+------------------+-----------+------+------------------------+------------------------+------------+
|   e8799e64d2e3bd | unstarted |      | http://127.0.0.1:23014 |                        |       true |
| 2ce40b51e1194168 |   started |    a | http://127.0.0.1:23011 | http://127.0.0.1:23001 |      false |
+------------------+-----------+------+------------------------+------------------------+------------+
";
        assert_eq!(render_list(Format::Table, &response), expected_table);
    }
}
