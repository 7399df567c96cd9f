//! Durable ends that sluice replicas exchange in tagged fields of Fetch,
//! which only sluice reads.
//!
//! The follower's, beside `fetch_offset` (its log end), in FetchPartition. Kafka's followers acknowledge from page cache, so one
//! offset says all; a sluice follower's acknowledgement means fdatasynced,
//! and a follower that fetches the next batch while the last one syncs
//! (pipelining) has a log end past its durable end. The leader counts the
//! durable end towards the high watermark and ISR membership, and the log
//! end towards lag. A follower that sends no tag (or a malformed one) is
//! taken at its `fetch_offset`, as before.
//!
//! The leader's, in its answer's PartitionData: how far a follower could
//! read when it answered. A follower that got less than that knows more is
//! waiting, and fetches again at once while its appends sync; one that got
//! everything waits for its syncs first, and then for new records at the
//! leader (see `unsynced`).
//!
//! Tagged fields exist from Fetch v12, the version followers send; Kafka
//! brokers and clients skip tags they do not know.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::PartitionData;

/// The tag: far above Kafka's own FetchPartition tags (0 and 1 so far), so
/// that a later Kafka field does not collide with it.
pub const DURABLE_END_TAG: i32 = 0x534C; // "SL"

/// The tag of the leader's durable end in PartitionData.
pub const LEADER_END_TAG: i32 = 0x534C;

/// `part` saying that its sender holds `durable` fdatasynced.
pub fn with_durable_end(mut part: FetchPartition, durable: i64) -> FetchPartition {
    part.unknown_tagged_fields.insert(DURABLE_END_TAG, Bytes::copy_from_slice(&durable.to_be_bytes()));
    part
}

/// The durable end `part` reports: its tag if it holds a non-negative
/// 64-bit offset, else `fetch_offset`; never past `fetch_offset`.
pub fn durable_end(part: &FetchPartition) -> i64 {
    offset(part.unknown_tagged_fields.get(&DURABLE_END_TAG)).unwrap_or(part.fetch_offset).min(part.fetch_offset)
}

/// `data` saying that its leader holds `durable` fdatasynced.
pub fn with_leader_end(mut data: PartitionData, durable: i64) -> PartitionData {
    data.unknown_tagged_fields.insert(LEADER_END_TAG, Bytes::copy_from_slice(&durable.to_be_bytes()));
    data
}

/// The leader's durable end `data` reports, if it does (a sluice leader).
pub fn leader_end(data: &PartitionData) -> Option<i64> {
    offset(data.unknown_tagged_fields.get(&LEADER_END_TAG))
}

/// A tag's value as an offset: 8 bytes holding a non-negative number.
fn offset(value: Option<&Bytes>) -> Option<i64> {
    let bytes = <[u8; 8]>::try_from(value?.as_ref()).ok()?;
    Some(i64::from_be_bytes(bytes)).filter(|&o| o >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::FetchTopic;
    use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
    use kafka_protocol::messages::{FetchRequest, FetchResponse};
    use kafka_protocol::protocol::{Decodable, Encodable};

    /// `part` as the leader decodes it from a Fetch v12 on the wire.
    fn over_the_wire(part: FetchPartition) -> FetchPartition {
        let req = FetchRequest::default().with_topics(vec![FetchTopic::default().with_partitions(vec![part])]);
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 12).expect("encodes");
        let mut wire = buf.freeze();
        let mut back = FetchRequest::decode(&mut wire, 12).expect("decodes");
        back.topics.remove(0).partitions.remove(0)
    }

    #[test]
    fn the_durable_end_crosses_the_wire_and_is_bounded_by_the_fetch_offset() {
        let part = FetchPartition::default().with_fetch_offset(100);
        assert_eq!(durable_end(&over_the_wire(part.clone())), 100, "no tag: the fetch offset");
        assert_eq!(durable_end(&over_the_wire(with_durable_end(part.clone(), 60))), 60);
        assert_eq!(durable_end(&over_the_wire(with_durable_end(part.clone(), 160))), 100, "never past the log end");
        assert_eq!(durable_end(&over_the_wire(with_durable_end(part.clone(), -5))), 100, "malformed: ignored");
        let short = part.clone().with_unknown_tagged_fields([(DURABLE_END_TAG, Bytes::from_static(&[1, 2]))].into());
        assert_eq!(durable_end(&over_the_wire(short)), 100, "malformed: ignored");
    }

    #[test]
    fn the_leaders_durable_end_crosses_the_wire() {
        let data = PartitionData::default().with_records(Some(Bytes::from_static(b"batches")));
        let back = |data: PartitionData| {
            let resp = FetchResponse::default()
                .with_responses(vec![FetchableTopicResponse::default().with_partitions(vec![data])]);
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, 12).expect("encodes");
            let mut wire = buf.freeze();
            FetchResponse::decode(&mut wire, 12).expect("decodes").responses.remove(0).partitions.remove(0)
        };
        assert_eq!(leader_end(&back(data.clone())), None, "not a sluice leader");
        let tagged = back(with_leader_end(data, 4242));
        assert_eq!(leader_end(&tagged), Some(4242));
        assert_eq!(tagged.records.as_deref(), Some(&b"batches"[..]));
    }
}
