//! Writing group records into a `__consumer_offsets` partition (one batch,
//! acknowledged once durable, like any produce with acks=all) and reading a
//! partition back into records on load.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use thiserror::Error;

use super::record::{self, RecordKey, RecordValue};
use crate::protocol::batch;
use crate::storage::{Appended, PartitionLog};

/// Why group records could not be written or read.
#[derive(Debug, Error)]
pub enum PersistError {
    #[error("cannot encode group records: {0}")]
    Encode(String),
    #[error("cannot store group records: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot read __consumer_offsets: {0}")]
    Read(#[from] crate::storage::ReadError),
    /// The partition's in-sync replicas did not all take the records in
    /// `offsets.commit.timeout.ms`.
    #[error("the in-sync replicas did not take the group records in time")]
    NotReplicated,
}

/// How long a group write waits for the ISR (Kafka's
/// `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A record to write: a key and its value, or a tombstone.
pub type Write = (RecordKey, Option<RecordValue>);

/// Appends `writes` as one batch and waits until it is durable, and on a
/// replicated partition until every in-sync replica holds it (Kafka writes
/// group records with acks=all): a committed offset outlives its leader.
pub async fn append(log: &Rc<PartitionLog>, writes: &[Write], now_ms: i64) -> Result<(), PersistError> {
    if writes.is_empty() {
        return Ok(());
    }
    let records: Vec<Record> = writes
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            crate::protocol::record::plain(
                i as i64,
                now_ms,
                Some(record::encode_key(k)),
                v.as_ref().map(record::encode_value),
            )
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).map_err(|e| PersistError::Encode(e.to_string()))?;
    let headers = batch::validate_all(&buf).map_err(|e| PersistError::Encode(e.to_string()))?;
    let end = match log.append(&buf, &headers)? {
        Appended::New { end, .. } | Appended::Duplicate { end, .. } => end,
    };
    log.durable(end).await?;
    if log.is_replicated() {
        let committed = log.committed(end);
        let expired = async {
            glommio::timer::sleep(COMMIT_TIMEOUT).await;
            Err(PersistError::NotReplicated)
        };
        futures_lite::future::or(async { committed.await.map_err(PersistError::from) }, expired).await?;
    }
    Ok(())
}

/// Reads every record of the partition, oldest first, and hands each to
/// `apply` (a `None` value is a tombstone): up to the durable end, not the
/// high watermark, as Kafka's coordinator loads up to the log end. Right
/// after a restart a replicated partition's high watermark is the
/// checkpoint's, which may lag what was committed, and a load that stopped
/// there would never see those records at all. What lies past the high
/// watermark is committed once the followers copy it, unless this leader
/// is deposed first and its tail cut: then its groups are unloaded, and
/// an offset served meanwhile may go back (consumers read some records
/// again; nothing is skipped). Records that do not parse, and
/// batches that cannot be decompressed or walked, are skipped with a
/// warning: one bad record must not lose a whole partition's groups, nor
/// stop the coordinator from loading.
pub async fn replay(
    log: &Rc<PartitionLog>,
    mut apply: impl FnMut(RecordKey, Option<RecordValue>),
) -> Result<usize, PersistError> {
    let mut offset = log.log_start_offset();
    let end = log.durable_end();
    let mut count = 0;
    while offset < end {
        let fetched = log.read_as_replica(offset, 1 << 20, true).await?;
        let mut rest: Bytes = fetched.into_bytes();
        if rest.is_empty() {
            break;
        }
        while let Some(head) = batch::peek(&rest) {
            let len = head.total_len;
            if len > rest.len() {
                break;
            }
            let one = rest.split_to(len);
            let last = head.last_offset;
            if last >= offset {
                count += replay_batch(&one, offset, &mut apply);
            }
            offset = offset.max(last + 1);
        }
    }
    Ok(count)
}

/// Hands the records of one stored batch at `offset` or later to `apply`;
/// how many it handed.
fn replay_batch(one: &[u8], offset: i64, apply: &mut impl FnMut(RecordKey, Option<RecordValue>)) -> usize {
    let Ok(h) = batch::parse_header(one) else {
        tracing::error!(offset, "skipping a __consumer_offsets batch with a malformed header");
        return 0;
    };
    let decoded = match crate::protocol::stored_records::read(one, &h) {
        Ok(decoded) => decoded,
        Err(e) => {
            tracing::error!(offset = h.base_offset, "skipping a __consumer_offsets batch that cannot be read: {e}");
            return 0;
        }
    };
    let mut count = 0;
    for r in decoded.records.iter().filter(|r| r.offset >= offset) {
        let Some(key) = r.key.as_deref().and_then(|k| record::decode_key(k).ok()) else {
            tracing::warn!(offset = r.offset, "skipping a __consumer_offsets record with an unknown key");
            continue;
        };
        let value = match r.value.clone().map(|v| record::decode_value(&key, &decoded.bytes[v])) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                tracing::warn!(offset = r.offset, "skipping a __consumer_offsets record: {e}");
                continue;
            }
        };
        apply(key, value);
        count += 1;
    }
    count
}
