//! The durable end a sluice follower reports in its Fetch, beside
//! `fetch_offset` (its log end): a tagged field of FetchPartition that only
//! sluice reads. Kafka's followers acknowledge from page cache, so one
//! offset says all; a sluice follower's acknowledgement means fdatasynced,
//! and a follower that fetches the next batch while the last one syncs
//! (pipelining) has a log end past its durable end. The leader counts the
//! durable end towards the high watermark and ISR membership, and the log
//! end towards lag. A follower that sends no tag (or a malformed one) is
//! taken at its `fetch_offset`, as before.
//!
//! Tagged fields exist from Fetch v12, the version followers send; Kafka
//! brokers skip tags they do not know.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;

/// The tag: far above Kafka's own FetchPartition tags (0 and 1 so far), so
/// that a later Kafka field does not collide with it.
pub const DURABLE_END_TAG: i32 = 0x534C; // "SL"

/// `part` saying that its sender holds `durable` fdatasynced.
pub fn with_durable_end(mut part: FetchPartition, durable: i64) -> FetchPartition {
    part.unknown_tagged_fields.insert(DURABLE_END_TAG, Bytes::copy_from_slice(&durable.to_be_bytes()));
    part
}

/// The durable end `part` reports: its tag if it holds a non-negative
/// 64-bit offset, else `fetch_offset`; never past `fetch_offset`.
pub fn durable_end(part: &FetchPartition) -> i64 {
    let tagged = part
        .unknown_tagged_fields
        .get(&DURABLE_END_TAG)
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(i64::from_be_bytes)
        .filter(|&d| d >= 0);
    tagged.unwrap_or(part.fetch_offset).min(part.fetch_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchRequest;
    use kafka_protocol::messages::fetch_request::FetchTopic;
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
}
