//! `sluice produce`: lines from stdin or a file become records, as
//! `kafka-console-producer.sh` does; keys split off with
//! `--key-separator`, partitions chosen like the Java client (murmur2 of
//! the key, round robin without one) unless `--partition` is given.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};

use super::client::Cluster;
use super::error::{CliError, kafka_error_name};
use super::topics::key_value;
use crate::protocol::ErrorCode;
use crate::protocol::record;
use sluice::client::codec_by_name;
use sluice::client::partitioner::partition_for_key;

/// Records per Produce request and partition.
const BATCH_RECORDS: usize = 1000;

/// `sluice produce` arguments.
///
/// Example: printf 'k1:hello\nk2:world\n' | sluice produce --topic demo --key-separator :
#[derive(Args)]
pub struct ProduceArgs {
    /// Broker(s) to connect to, host:port[,host:port...].
    #[arg(long, default_value = "localhost:9092")]
    pub bootstrap_server: String,
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Split each line into key and value at the first occurrence of this.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// A header on every record, key=value (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Acknowledgements: all (-1), 1 or 0.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Send every record to this partition.
    #[arg(long)]
    pub partition: Option<i32>,
}

fn compression(name: &str) -> Result<Compression, CliError> {
    codec_by_name(name)
        .ok_or_else(|| CliError::Usage(format!("unknown compression {name:?}: none, gzip, snappy, lz4, zstd")))
}

fn acks(name: &str) -> Result<i16, CliError> {
    Ok(match name {
        "all" | "-1" => -1,
        "1" => 1,
        "0" => 0,
        other => return Err(CliError::Usage(format!("unknown acks {other:?}: all, 1 or 0"))),
    })
}

/// A record waiting to be sent: (line number, key, value).
type Pending = (usize, Option<Bytes>, Bytes);

/// Runs the producer. Errors for single records are printed and counted;
/// the exit is non-zero if any record failed.
pub fn run(args: ProduceArgs) -> Result<(), CliError> {
    let codec = compression(&args.compression)?;
    let acks = acks(&args.acks)?;
    let headers: IndexMap<StrBytes, Option<Bytes>> = args
        .headers
        .iter()
        .map(|h| key_value(h).map(|(k, v)| (StrBytes::from_string(k), Some(Bytes::from(v)))))
        .collect::<Result<_, _>>()?;
    let mut cluster = Cluster::connect(&args.bootstrap_server)?;
    let leaders = cluster.leaders(&args.topic)?;
    if let Some(p) = args.partition
        && (p < 0 || p as usize >= leaders.len())
    {
        return Err(CliError::Usage(format!("topic {:?} has no partition {p}", args.topic)));
    }
    let input: Box<dyn BufRead> = match &args.file {
        Some(f) => Box::new(std::io::BufReader::new(std::fs::File::open(f)?)),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut pending: BTreeMap<i32, Vec<Pending>> = BTreeMap::new();
    let (mut next_rr, mut failed, mut lines) = (0usize, 0usize, 0usize);
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let lineno = i + 1;
        lines = lineno;
        let (key, value) = match &args.key_separator {
            None => (None, line.as_str()),
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::copy_from_slice(k.as_bytes())), v),
                None => {
                    eprintln!("line {lineno}: no key separator {sep:?}; record skipped");
                    failed += 1;
                    continue;
                }
            },
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, leaders.len()) as i32,
            (None, None) => {
                next_rr += 1;
                (next_rr % leaders.len()) as i32
            }
        };
        let batch = pending.entry(partition).or_default();
        batch.push((lineno, key, Bytes::copy_from_slice(value.as_bytes())));
        if batch.len() >= BATCH_RECORDS {
            let batch = std::mem::take(batch);
            failed += send(&mut cluster, &args.topic, &leaders, partition, batch, &headers, codec, acks)?;
        }
    }
    for (partition, batch) in std::mem::take(&mut pending) {
        if !batch.is_empty() {
            failed += send(&mut cluster, &args.topic, &leaders, partition, batch, &headers, codec, acks)?;
        }
    }
    if failed > 0 {
        return Err(CliError::Usage(format!("{failed} of {lines} lines were not produced")));
    }
    Ok(())
}

/// Sends one partition's records as one batch; returns how many failed.
#[allow(clippy::too_many_arguments)]
fn send(
    cluster: &mut Cluster,
    topic: &str,
    leaders: &[i32],
    partition: i32,
    batch: Vec<Pending>,
    headers: &IndexMap<StrBytes, Option<Bytes>>,
    codec: Compression,
    acks: i16,
) -> Result<usize, CliError> {
    let now = crate::clock::now_ms();
    let records: Vec<Record> = batch
        .iter()
        .enumerate()
        .map(|(i, (_, key, value))| Record {
            headers: headers.clone(),
            ..record::plain(i as i64, now, key.clone(), Some(value.clone()))
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &RecordEncodeOptions { version: 2, compression: codec })
        .map_err(|e| CliError::Codec(format!("record batch: {e}")))?;
    let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_data(
            vec![PartitionProduceData::default().with_index(partition).with_records(Some(buf.freeze()))],
        ),
    ]);
    let conn = cluster.node(leaders[partition as usize])?;
    let version = conn.version::<ProduceRequest>()?.min(11);
    if acks == 0 {
        conn.send_no_response(req, version)?;
        return Ok(0);
    }
    let resp = conn.send_at(req, version)?;
    let code = resp.responses.first().and_then(|t| t.partition_responses.first()).map_or(-1, |p| p.error_code);
    if code == ErrorCode::None.code() {
        return Ok(0);
    }
    for (lineno, ..) in &batch {
        eprintln!("line {lineno}: not produced to {topic}-{partition}: {}", kafka_error_name(code));
    }
    Ok(batch.len())
}
