//! `sluice consume`: prints records, as `kafka-console-consumer.sh` does,
//! from chosen partitions or as a member of a group (committing what it
//! printed, also on Ctrl-C).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};
use kafka_protocol::records::TimestampType;

use super::client::Cluster;
use super::error::{CliError, check};
use super::group_member::Membership;
use super::offsets::{EARLIEST, LATEST, commit, committed, list_offsets, topic_name};
use crate::protocol::{batch, decompress};

/// How often a group member commits what it has printed.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// `sluice consume` arguments.
///
/// Example: sluice consume --topic demo --from-beginning --group readers --print-key
#[derive(Args)]
pub struct ConsumeArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset (without a group, or for a group with no
    /// committed offset); otherwise at the end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Read as a member of this consumer group, committing positions.
    #[arg(long)]
    pub group: Option<String>,
    /// Read only this partition (not with --group).
    #[arg(long, conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Start offset for --partition: a number, earliest or latest.
    #[arg(long, requires = "partition")]
    pub offset: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Stop when no record arrived for this many milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print each record's key.
    #[arg(long)]
    pub print_key: bool,
    /// Print each record's timestamp (and its type).
    #[arg(long)]
    pub print_timestamp: bool,
    /// Print each record's partition.
    #[arg(long)]
    pub print_partition: bool,
    /// Print each record's offset.
    #[arg(long)]
    pub print_offset: bool,
    /// Print each record's headers.
    #[arg(long)]
    pub print_headers: bool,
    /// Between the printed fields.
    #[arg(long, default_value = "\t")]
    pub key_separator: String,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn stop_on_ctrl_c() {
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Runs the consumer; prints "Processed a total of N messages" to stderr at
/// the end, as Kafka's tool does.
pub fn run(args: ConsumeArgs) -> Result<(), CliError> {
    stop_on_ctrl_c();
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    let mut leaders = cluster.leaders(&args.topic)?;
    let mut member = None;
    let positions = match &args.group {
        Some(group) => {
            let (m, parts) = Membership::join(&mut cluster, group, &args.topic)?;
            let pos = start_positions(&mut cluster, &args, &m, &parts)?;
            member = Some(m);
            pos
        }
        None => {
            let parts: Vec<i32> = match args.partition {
                Some(p) if p < 0 || p as usize >= leaders.len() => {
                    return Err(CliError::Usage(format!("topic {:?} has no partition {p}", args.topic)));
                }
                Some(p) => vec![p],
                None => (0..leaders.len() as i32).collect(),
            };
            let at = match args.offset.as_deref() {
                None if args.from_beginning => EARLIEST,
                None | Some("latest") => LATEST,
                Some("earliest") => EARLIEST,
                Some(n) => n
                    .parse::<i64>()
                    .ok()
                    .filter(|o| *o >= 0)
                    .ok_or_else(|| CliError::Usage(format!("--offset {n:?}: a number, earliest or latest")))?,
            };
            if at >= 0 {
                parts.iter().map(|&p| (p, at)).collect()
            } else {
                let all = list_offsets(&mut cluster, &args.topic, at)?;
                parts.iter().map(|p| (*p, all[p])).collect()
            }
        }
    };
    consume(&mut cluster, &args, &mut leaders, positions, member)
}

/// Where a member starts on its partitions: committed offsets, else the
/// beginning or the end.
fn start_positions(
    cluster: &mut Cluster,
    args: &ConsumeArgs,
    m: &Membership,
    parts: &[i32],
) -> Result<BTreeMap<i32, i64>, CliError> {
    let done = committed(cluster, m.coordinator, &m.group, Some(&[(args.topic.clone(), parts.to_vec())]))?;
    let reset = list_offsets(cluster, &args.topic, if args.from_beginning { EARLIEST } else { LATEST })?;
    Ok(parts.iter().map(|&p| (p, done.get(&(args.topic.clone(), p)).copied().unwrap_or(reset[&p]))).collect())
}

fn consume(
    cluster: &mut Cluster,
    args: &ConsumeArgs,
    leaders: &mut Vec<i32>,
    mut positions: BTreeMap<i32, i64>,
    mut member: Option<Membership>,
) -> Result<(), CliError> {
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let mut last_commit = Instant::now();
    let mut committed_at: BTreeMap<i32, i64> = BTreeMap::new();
    let result = (|| -> Result<(), CliError> {
        while !STOP.load(Ordering::SeqCst) {
            if args.max_messages.is_some_and(|m| count >= m) {
                break;
            }
            if args.timeout_ms.is_some_and(|t| last_record.elapsed() >= Duration::from_millis(t)) {
                break;
            }
            if let Some(m) = member.as_mut() {
                if last_commit.elapsed() >= COMMIT_EVERY && committed_at != positions {
                    commit_positions(cluster, m, &args.topic, &positions)?;
                    committed_at = positions.clone();
                    last_commit = Instant::now();
                }
                if !m.heartbeat(cluster)? {
                    // Rebalance: hand in what was read, then join again.
                    let _ = commit_positions(cluster, m, &args.topic, &positions);
                    let (m2, parts) = Membership::join(cluster, &m.group.clone(), &args.topic)?;
                    positions = start_positions(cluster, args, &m2, &parts)?;
                    committed_at = positions.clone();
                    *m = m2;
                    *leaders = cluster.leaders(&args.topic)?;
                }
            }
            if positions.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let mut by_node: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for &p in positions.keys() {
                by_node.entry(leaders[p as usize]).or_default().push(p);
            }
            for (node, parts) in by_node {
                let req = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(8 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![
                        FetchTopic::default().with_topic(topic_name(&args.topic)).with_partitions(
                            parts
                                .iter()
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_fetch_offset(positions[p])
                                        .with_log_start_offset(-1)
                                        .with_partition_max_bytes(1 << 20)
                                })
                                .collect(),
                        ),
                    ]);
                let conn = cluster.node(node)?;
                let v = conn.version::<FetchRequest>()?.min(12);
                let resp = conn.send_at(req, v)?;
                check(resp.error_code, || format!("fetch from node {node} failed"))?;
                for t in resp.responses {
                    for pd in t.partitions {
                        let p = pd.partition_index;
                        if pd.error_code == OFFSET_OUT_OF_RANGE {
                            let reset = list_offsets(
                                cluster,
                                &args.topic,
                                if args.from_beginning { EARLIEST } else { LATEST },
                            )?;
                            positions.insert(p, reset[&p]);
                            continue;
                        }
                        check(pd.error_code, || format!("fetch of {}-{p} failed", args.topic))?;
                        let Some(records) = pd.records else { continue };
                        let n = print_records(
                            &mut out,
                            args,
                            p,
                            records,
                            positions.get_mut(&p).expect("fetched"),
                            args.max_messages.map(|m| m - count),
                        )?;
                        if n > 0 {
                            count += n;
                            last_record = Instant::now();
                        }
                    }
                }
            }
        }
        Ok(())
    })();
    out.flush()?;
    if let Some(m) = member.as_ref() {
        // Commit what was printed, also after Ctrl-C, then leave.
        let committed = commit_positions(cluster, m, &args.topic, &positions);
        let _ = m.leave(cluster);
        committed?;
    }
    eprintln!("Processed a total of {count} messages");
    result
}

fn commit_positions(
    cluster: &mut Cluster,
    m: &Membership,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> Result<(), CliError> {
    let offsets = positions.iter().map(|(p, o)| ((topic.to_string(), *p), *o)).collect();
    commit(cluster, m.coordinator, &m.group, m.generation, &m.member_id, &offsets)
}

/// Prints the records of a fetched partition from `*position` on (at most
/// `limit`), advancing the position. Returns how many were printed.
fn print_records(
    out: &mut impl Write,
    args: &ConsumeArgs,
    partition: i32,
    mut data: Bytes,
    position: &mut i64,
    limit: Option<u64>,
) -> Result<u64, CliError> {
    let mut printed = 0;
    while let Some(head) = batch::peek(&data) {
        if head.total_len > data.len() {
            break; // a partial batch at the end of the response
        }
        let one = data.split_to(head.total_len);
        if head.last_offset < *position {
            continue;
        }
        // Bounded: a batch that expands past the limit (a zip bomb, or a
        // buggy producer) is an error, not an allocation until the process dies.
        let records = decompress::records(&one, decompress::MAX_DECOMPRESSED)
            .map_err(|e| CliError::Codec(format!("record batch at offset {}: {e}", head.base_offset)))?;
        for r in records {
            if r.offset < *position || r.control {
                continue;
            }
            if limit.is_some_and(|l| printed >= l) {
                return Ok(printed);
            }
            let sep = &args.key_separator;
            let mut line = Vec::new();
            if args.print_timestamp {
                let kind = if r.timestamp_type == TimestampType::LogAppend { "LogAppendTime" } else { "CreateTime" };
                write!(line, "{kind}:{}{sep}", r.timestamp)?;
            }
            if args.print_partition {
                write!(line, "Partition:{partition}{sep}")?;
            }
            if args.print_offset {
                write!(line, "Offset:{}{sep}", r.offset)?;
            }
            if args.print_headers {
                if r.headers.is_empty() {
                    write!(line, "NO_HEADERS{sep}")?;
                } else {
                    let hs: Vec<String> = r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            format!("{k}:{}", v.as_deref().map(String::from_utf8_lossy).unwrap_or("null".into()))
                        })
                        .collect();
                    write!(line, "{}{sep}", hs.join(","))?;
                }
            }
            if args.print_key {
                line.extend_from_slice(r.key.as_deref().unwrap_or(b"null"));
                line.extend_from_slice(sep.as_bytes());
            }
            line.extend_from_slice(r.value.as_deref().unwrap_or(b"null"));
            line.push(b'\n');
            out.write_all(&line)?;
            printed += 1;
            *position = r.offset + 1;
        }
        *position = (*position).max(head.last_offset + 1);
    }
    out.flush()?;
    Ok(printed)
}
