//! `endpoint status` and `endpoint health`, each asking every endpoint on
//! its own connection, as etcdctl does. The endpoints are `--endpoints`, or
//! with `--cluster` every client URL in the member list.

use std::future::IntoFuture;
use std::time::Instant;

use clap::{Args, Subcommand};
use timon_proto::etcdserverpb::StatusResponse;

use super::{exit, go, json, out, table, Context, Failure, Format};

#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub cluster: bool,
    #[command(subcommand)]
    pub command: EndpointCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EndpointCommand {
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
}

pub async fn run(ctx: &Context, args: EndpointArgs) -> Result<(), Failure> {
    let endpoints = if args.cluster {
        endpoints_from_cluster(ctx).await?
    } else {
        ctx.global.endpoints.clone()
    };
    match args.command {
        EndpointCommand::Status => status(ctx, &endpoints).await,
        EndpointCommand::Health => health(ctx, &endpoints).await,
    }
}

/// Every member's client URLs, in member-list order (etcdctl's
/// `endpointsFromCluster`). Unstarted members have none.
async fn endpoints_from_cluster(ctx: &Context) -> Result<Vec<String>, Failure> {
    // clientv3 dials lazily, so etcdctl reports an unreachable endpoint as
    // a failed member list too.
    let fetch = async {
        let client = ctx.client().await?;
        ctx.timed(client.member_list()).await
    };
    let members = fetch.await.map_err(|failure| {
        Failure::new(
            exit::ERROR,
            format!(
                "failed to fetch endpoints from etcd cluster member list: {}",
                failure.message
            ),
        )
    })?;
    Ok(members
        .members
        .into_iter()
        .flat_map(|member| member.client_ur_ls)
        .collect())
}

async fn status(ctx: &Context, endpoints: &[String]) -> Result<(), Failure> {
    let mut statuses = Vec::new();
    let mut failed = false;
    for endpoint in endpoints {
        let result = async {
            let client = ctx.client_for(std::slice::from_ref(endpoint)).await?;
            ctx.timed(client.status()).await
        }
        .await;
        match result {
            Ok(status) => statuses.push((endpoint.clone(), status)),
            Err(failure) => {
                failed = true;
                super::err(format!(
                    "Failed to get the status of endpoint {endpoint} ({})\n",
                    failure.message
                ));
            }
        }
    }
    out(render_status(ctx.format, &statuses));
    if failed {
        // etcdctl exits without an `Error:` line here: the reasons are above.
        return Err(Failure::new(exit::ERROR, ""));
    }
    Ok(())
}

const STATUS_HEADER: [&str; 10] = [
    "endpoint",
    "ID",
    "version",
    "db size",
    "is leader",
    "is learner",
    "raft term",
    "raft index",
    "raft applied index",
    "errors",
];

fn status_row(endpoint: &str, status: &StatusResponse) -> Vec<String> {
    let member = status.header.as_ref().map_or(0, |h| h.member_id);
    vec![
        endpoint.to_owned(),
        format!("{member:x}"),
        status.version.clone(),
        go::humanize_bytes(status.db_size.max(0) as u64),
        (status.leader == member).to_string(),
        status.is_learner.to_string(),
        status.raft_term.to_string(),
        status.raft_index.to_string(),
        status.raft_applied_index.to_string(),
        status.errors.join(", "),
    ]
}

pub fn render_status(format: Format, statuses: &[(String, StatusResponse)]) -> String {
    let rows: Vec<Vec<String>> = statuses.iter().map(|(e, s)| status_row(e, s)).collect();
    match format {
        Format::Simple { .. } => rows.iter().map(|row| format!("{}\n", row.join(", "))).collect(),
        Format::Json => {
            let items = statuses.iter().map(|(endpoint, status)| {
                json::Object::default()
                    .text_always("Endpoint", endpoint)
                    .raw("Status", &json::status(status))
                    .finish()
            });
            format!("{}\n", json::array(items))
        }
        Format::Table => table::render(&STATUS_HEADER, &rows),
    }
}

/// One endpoint's health, as etcdctl's `epHealth`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub endpoint: String,
    pub healthy: bool,
    pub took: String,
    pub error: String,
}

async fn check(ctx: &Context, endpoint: &str) -> Health {
    let started = Instant::now();
    // A linearizable read of any key proves the member has a leader and a
    // working raft; being refused by auth still proves that.
    let result = async {
        let client = ctx.client_for(&[endpoint.to_owned()]).await?;
        ctx.timed(client.get("health").into_future()).await
    }
    .await;
    let took = go::format_duration(started.elapsed());
    let error = match result {
        Ok(_) => String::new(),
        Err(failure) if failure.message == "etcdserver: permission denied" => String::new(),
        Err(failure) => failure.message,
    };
    Health {
        endpoint: endpoint.to_owned(),
        healthy: error.is_empty(),
        took,
        error,
    }
}

async fn health(ctx: &Context, endpoints: &[String]) -> Result<(), Failure> {
    let checks = endpoints.iter().map(|endpoint| check(ctx, endpoint));
    // Concurrently, so a dead endpoint does not inflate the others' times.
    let results = futures::future::join_all(checks).await;
    match ctx.format {
        Format::Simple { .. } => {
            for h in &results {
                if h.healthy {
                    super::err(format!(
                        "{} is healthy: successfully committed proposal: took = {}\n",
                        h.endpoint, h.took
                    ));
                } else {
                    super::err(format!(
                        "{} is unhealthy: failed to commit proposal: {}\n",
                        h.endpoint, h.error
                    ));
                }
            }
        }
        Format::Json => {
            let items = results.iter().map(|h| {
                json::Object::default()
                    .text_always("endpoint", &h.endpoint)
                    .bool("health", h.healthy)
                    .text_always("took", &h.took)
                    .text("error", &h.error)
                    .finish()
            });
            out(format!("{}\n", json::array(items)));
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|h| {
                    vec![
                        h.endpoint.clone(),
                        h.healthy.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            out(table::render(&["endpoint", "health", "took", "error"], &rows));
        }
    }
    if results.iter().any(|h| !h.healthy) {
        return Err(Failure::new(exit::ERROR, "unhealthy cluster"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::etcdserverpb::ResponseHeader;

    fn sample() -> Vec<(String, StatusResponse)> {
        let status = StatusResponse {
            header: Some(ResponseHeader {
                cluster_id: 15118495548433857066,
                member_id: 13668033151171901709,
                revision: 6,
                raft_term: 2,
            }),
            version: "3.4.23".into(),
            db_size: 20480,
            leader: 13668033151171901709,
            raft_index: 9,
            raft_term: 2,
            raft_applied_index: 9,
            db_size_in_use: 16384,
            ..StatusResponse::default()
        };
        vec![("127.0.0.1:23791".to_owned(), status)]
    }

    #[test]
    fn status_renders_like_etcdctl() {
        assert_eq!(
            render_status(Format::Simple { hex: false }, &sample()),
            "127.0.0.1:23791, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 9, 9, \n"
        );
        assert_eq!(
            render_status(Format::Json, &sample()),
            "[{\"Endpoint\":\"127.0.0.1:23791\",\"Status\":{\"header\":{\"cluster_id\":15118495548433857066,\"member_id\":13668033151171901709,\"revision\":6,\"raft_term\":2},\"version\":\"3.4.23\",\"dbSize\":20480,\"leader\":13668033151171901709,\"raftIndex\":9,\"raftTerm\":2,\"raftAppliedIndex\":9,\"dbSizeInUse\":16384}}]\n"
        );
        let expected_table = "\
+-----------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
|    ENDPOINT     |        ID        | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM | RAFT INDEX | RAFT APPLIED INDEX | ERRORS |
+-----------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
| 127.0.0.1:23791 | bdae9bbc11dd390d |  3.4.23 |   20 kB |      true |      false |         2 |          9 |                  9 |        |
+-----------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
";
        assert_eq!(render_status(Format::Table, &sample()), expected_table);
    }
}
