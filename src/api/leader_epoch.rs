//! Kafka's fencing by leader epoch (KIP-320): a request that names the
//! partition's current leader epoch (Fetch v9+, ListOffsets v4+,
//! OffsetForLeaderEpoch v2+) and names another is refused, so a client with
//! stale metadata refreshes it instead of reading from the wrong place.

use crate::metadata::model::TopicMeta;
use crate::protocol::ErrorCode;

/// Checks `current` (-1: not given) against partition `p`'s leader epoch:
/// an older one is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH
/// (this broker has not caught up with the metadata that made it).
pub fn check(topic: &TopicMeta, p: i32, current: i32) -> Result<(), ErrorCode> {
    let Some(&epoch) = usize::try_from(p).ok().and_then(|p| topic.epochs.get(p)) else {
        return Err(ErrorCode::UnknownTopicOrPartition);
    };
    match current {
        c if c < 0 || c == epoch => Ok(()),
        c if c < epoch => Err(ErrorCode::FencedLeaderEpoch),
        _ => Err(ErrorCode::UnknownLeaderEpoch),
    }
}
