//! `sluice groups`: list, describe (committed offset, log end offset and lag
//! per partition, with the member that holds it), delete and reset-offsets,
//! as `kafka-consumer-groups.sh` does.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::client::Cluster;
use super::error::{CliError, check};
use super::offsets::{EARLIEST, LATEST, commit, committed, coordinator, list_offsets};
use crate::protocol::ErrorCode;

/// Group commands.
#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups, one per line.
    ///
    /// Example: sluice groups list
    List,
    /// Per partition: committed offset, log end offset, lag, and the member holding it.
    ///
    /// Example: sluice groups describe readers
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete groups (only groups without members) and their offsets.
    ///
    /// Example: sluice groups delete readers
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets; prints the plan unless --execute.
    ///
    /// Example: sluice groups reset-offsets readers --topic demo --to-earliest --execute
    ResetOffsets(ResetArgs),
}

/// Where reset-offsets moves the offsets.
#[derive(Args)]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// Topic whose offsets move (repeatable).
    #[arg(long = "topic", required_unless_present = "all_topics")]
    pub topics: Vec<String>,
    /// Every topic the group has offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// To the log start.
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    /// To the log end.
    #[arg(long, group = "to")]
    pub to_latest: bool,
    /// To this offset.
    #[arg(long, group = "to")]
    pub to_offset: Option<i64>,
    /// To the first record at or after this time (ms since the epoch).
    #[arg(long, group = "to")]
    pub to_timestamp: Option<i64>,
    /// To the first record at or after this UTC time, YYYY-MM-DDTHH:MM:SS[.mmm].
    #[arg(long, group = "to")]
    pub to_datetime: Option<String>,
    /// By this many offsets (negative: back), from the committed offset.
    #[arg(long, group = "to", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Apply the plan (the default is a dry run).
    #[arg(long)]
    pub execute: bool,
    /// Only print the plan (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
}

/// `--bootstrap-server` and the command.
#[derive(Args)]
pub struct GroupsArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092", global = true)]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: GroupsCommand,
}

fn gid(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

/// Runs a groups command.
pub fn run(args: GroupsArgs) -> Result<(), CliError> {
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    match args.command {
        GroupsCommand::List => {
            for g in list(&mut cluster)? {
                println!("{g}");
            }
            Ok(())
        }
        GroupsCommand::Describe { group } => describe(&mut cluster, &group),
        GroupsCommand::Delete { groups } => {
            for g in groups {
                let node = coordinator(&mut cluster, &g)?;
                let resp = cluster.node(node)?.send(DeleteGroupsRequest::default().with_groups_names(vec![gid(&g)]))?;
                for r in resp.results {
                    if r.error_code == ErrorCode::GroupIdNotFound.code() {
                        return Err(CliError::UnknownGroup(g.clone()));
                    }
                    check(r.error_code, || format!("cannot delete group {g:?}"))?;
                }
                println!("Deletion of requested consumer groups ('{g}') was successful.");
            }
            Ok(())
        }
        GroupsCommand::ResetOffsets(r) => reset(&mut cluster, r),
    }
}

fn list(cluster: &mut Cluster) -> Result<BTreeSet<String>, CliError> {
    let mut out = BTreeSet::new();
    for node in cluster.node_ids() {
        let resp = cluster.node(node)?.send(ListGroupsRequest::default())?;
        check(resp.error_code, || format!("cannot list the groups of node {node}"))?;
        out.extend(resp.groups.into_iter().map(|g| g.group_id.to_string()));
    }
    Ok(out)
}

/// State and members: (state, [(member id, client id, host, assigned (topic, partition))]).
type Described = (String, Vec<(String, String, String, Vec<(String, i32)>)>);

fn describe_group(cluster: &mut Cluster, node: i32, group: &str) -> Result<Described, CliError> {
    let resp = cluster.node(node)?.send(DescribeGroupsRequest::default().with_groups(vec![gid(group)]))?;
    let g = resp.groups.into_iter().next().ok_or_else(|| CliError::Codec("empty DescribeGroups response".into()))?;
    if g.error_code == ErrorCode::GroupIdNotFound.code() {
        // DescribeGroups v6+ says so where older versions answer "Dead".
        return Ok(("Dead".to_string(), Vec::new()));
    }
    check(g.error_code, || format!("cannot describe group {group:?}"))?;
    let members = g
        .members
        .into_iter()
        .map(|m| {
            let mut a: Bytes = m.member_assignment.clone();
            let parts = if a.len() >= 2 {
                let v = a.get_i16().clamp(0, 3);
                ConsumerProtocolAssignment::decode(&mut a, v)
                    .map(|asg| {
                        asg.assigned_partitions
                            .into_iter()
                            .flat_map(|tp| {
                                let t = tp.topic.to_string();
                                tp.partitions.into_iter().map(move |p| (t.clone(), p))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            (m.member_id.to_string(), m.client_id.to_string(), m.client_host.to_string(), parts)
        })
        .collect();
    Ok((g.group_state.to_string(), members))
}

fn describe(cluster: &mut Cluster, group: &str) -> Result<(), CliError> {
    let node = coordinator(cluster, group)?;
    let (state, members) = describe_group(cluster, node, group)?;
    let offsets = committed(cluster, node, group, None)?;
    if state == "Dead" && offsets.is_empty() {
        return Err(CliError::UnknownGroup(group.into()));
    }
    let mut holder: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for (id, client, host, parts) in &members {
        for tp in parts {
            holder.insert(tp.clone(), (id.clone(), host.clone(), client.clone()));
        }
    }
    let mut rows: BTreeSet<(String, i32)> = offsets.keys().cloned().collect();
    rows.extend(holder.keys().cloned());
    let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for (t, _) in &rows {
        if !ends.contains_key(t) {
            cluster.refresh(Some(std::slice::from_ref(t)))?;
            ends.insert(t.clone(), list_offsets(cluster, t, LATEST).unwrap_or_default());
        }
    }
    if members.is_empty() {
        eprintln!("Consumer group '{group}' has no active members.");
    }
    println!(
        "{:<20} {:<20} {:<10} {:<15} {:<15} {:<10} {:<45} {:<15} CLIENT-ID",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    );
    for (t, p) in rows {
        let current = offsets.get(&(t.clone(), p)).copied();
        let end = ends.get(&t).and_then(|e| e.get(&p)).copied();
        let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        let lag = match (current, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        let (id, host, client) = holder.get(&(t.clone(), p)).cloned().unwrap_or(("-".into(), "-".into(), "-".into()));
        println!(
            "{group:<20} {t:<20} {p:<10} {:<15} {:<15} {:<10} {id:<45} {host:<15} {client}",
            show(current),
            show(end),
            show(lag)
        );
    }
    Ok(())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.mmm][Z]` (UTC) into ms since the epoch.
pub fn parse_datetime(s: &str) -> Result<i64, CliError> {
    let bad = || CliError::Usage(format!("--to-datetime {s:?}: expected YYYY-MM-DDTHH:MM:SS[.mmm] (UTC)"));
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let (hms, ms) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) {
        return Err(bad());
    }
    let ms: i64 = format!("{ms:0<3}")[..3].parse().map_err(|_| bad())?;
    Ok(((days_from_civil(d[0], d[1], d[2]) * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms)
}

fn reset(cluster: &mut Cluster, r: ResetArgs) -> Result<(), CliError> {
    let node = coordinator(cluster, &r.group)?;
    let (state, _) = describe_group(cluster, node, &r.group)?;
    if !matches!(state.as_str(), "Empty" | "Dead") {
        return Err(CliError::Usage(format!(
            "assignments can only be reset if the group '{}' is inactive, but the current state is {state}",
            r.group
        )));
    }
    let current = committed(cluster, node, &r.group, None)?;
    let topics: Vec<String> = if r.all_topics {
        current.keys().map(|(t, _)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect()
    } else {
        r.topics.clone()
    };
    cluster.refresh(Some(&topics))?;
    let mut plan: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in &topics {
        let earliest = list_offsets(cluster, t, EARLIEST)?;
        let latest = list_offsets(cluster, t, LATEST)?;
        let target = if r.to_earliest {
            earliest.clone()
        } else if r.to_latest {
            latest.clone()
        } else if let Some(o) = r.to_offset {
            earliest.keys().map(|&p| (p, o)).collect()
        } else if let Some(ts) = r.to_timestamp.map(Ok).or_else(|| r.to_datetime.as_deref().map(parse_datetime)) {
            list_offsets(cluster, t, ts?)?.into_iter().map(|(p, o)| (p, if o < 0 { latest[&p] } else { o })).collect()
        } else if let Some(by) = r.shift_by {
            earliest.keys().map(|&p| (p, current.get(&(t.clone(), p)).copied().unwrap_or(latest[&p]) + by)).collect()
        } else {
            return Err(CliError::Usage(
                "say where to: --to-earliest, --to-latest, --to-offset, --to-timestamp, --to-datetime or --shift-by"
                    .into(),
            ));
        };
        for (p, o) in target {
            // Kafka clamps to the partition's range.
            plan.insert((t.clone(), p), o.clamp(earliest[&p], latest[&p]));
        }
    }
    println!("{:<20} {:<20} {:<10} NEW-OFFSET", "GROUP", "TOPIC", "PARTITION");
    for ((t, p), o) in &plan {
        println!("{:<20} {t:<20} {p:<10} {o}", r.group);
    }
    if r.execute {
        commit(cluster, node, &r.group, -1, "", &plan)?;
    } else {
        eprintln!("(dry run: nothing changed; add --execute to apply)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn datetimes_parse_as_utc() {
        assert_eq!(super::parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(super::parse_datetime("2026-11-21T15:30:00.250Z").unwrap(), 1_795_275_000_250);
        assert!(super::parse_datetime("yesterday").is_err());
    }
}
