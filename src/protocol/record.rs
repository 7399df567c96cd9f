//! Records as the broker and its CLI write them.

use bytes::Bytes;
use kafka_protocol::records::{Record, TimestampType};

/// A record outside any producer session (not idempotent, not
/// transactional), with CreateTime `timestamp` and no headers, at `offset`
/// within the batch being built. The broker stamps the partition leader
/// epoch and the real offsets on append.
pub fn plain(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}
