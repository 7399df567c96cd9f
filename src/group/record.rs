//! The records of `__consumer_offsets`, in Kafka's own layout so that tools
//! that read that topic understand them: an offset commit (key version 1,
//! value version 3) or a group's metadata (key version 2, value version 3).
//! A null value is a tombstone. kafka-protocol does not model these (they are
//! not wire messages), so they are encoded here.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// A `__consumer_offsets` record that cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown key version {0}")]
    KeyVersion(i16),
    #[error("unknown value version {0}")]
    ValueVersion(i16),
    #[error("string is not UTF-8")]
    Utf8,
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    /// A committed offset of one partition.
    Offset { group: String, topic: String, partition: i32 },
    /// A group's membership and assignment.
    Group { group: String },
}

impl RecordKey {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's state as of its last completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// A record's value; `None` in a record is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    Offset(OffsetValue),
    Group(GroupValue),
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// Encodes a key.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    match key {
        RecordKey::Offset { group, topic, partition } => {
            b.put_i16(OFFSET_KEY_VERSION);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            b.put_i16(GROUP_KEY_VERSION);
            put_str(&mut b, group);
        }
    }
    b.freeze()
}

/// Encodes a value.
pub fn encode_value(value: &RecordValue) -> Bytes {
    let mut b = BytesMut::with_capacity(128);
    match value {
        RecordValue::Offset(o) => {
            b.put_i16(OFFSET_VALUE_VERSION);
            b.put_i64(o.offset);
            b.put_i32(o.leader_epoch);
            put_str(&mut b, &o.metadata);
            b.put_i64(o.commit_timestamp);
        }
        RecordValue::Group(g) => {
            b.put_i16(GROUP_VALUE_VERSION);
            put_str(&mut b, &g.protocol_type);
            b.put_i32(g.generation);
            put_opt_str(&mut b, g.protocol.as_deref());
            put_opt_str(&mut b, g.leader.as_deref());
            b.put_i64(g.state_timestamp);
            b.put_i32(g.members.len() as i32);
            for m in &g.members {
                put_str(&mut b, &m.member_id);
                put_opt_str(&mut b, m.group_instance_id.as_deref());
                put_str(&mut b, &m.client_id);
                put_str(&mut b, &m.client_host);
                b.put_i32(m.rebalance_timeout_ms);
                b.put_i32(m.session_timeout_ms);
                put_bytes(&mut b, &m.subscription);
                put_bytes(&mut b, &m.assignment);
            }
        }
    }
    b.freeze()
}

/// Decodes a key.
pub fn decode_key(mut b: &[u8]) -> Result<RecordKey, RecordError> {
    match get_i16(&mut b)? {
        0 | OFFSET_KEY_VERSION => {
            Ok(RecordKey::Offset { group: get_str(&mut b)?, topic: get_str(&mut b)?, partition: get_i32(&mut b)? })
        }
        GROUP_KEY_VERSION => Ok(RecordKey::Group { group: get_str(&mut b)? }),
        v => Err(RecordError::KeyVersion(v)),
    }
}

/// Decodes the value of a record whose key is `key`. Reads the value
/// versions Kafka has written (offsets 0-3, groups 0-3), so a data directory
/// with records from other writers still loads.
pub fn decode_value(key: &RecordKey, mut b: &[u8]) -> Result<RecordValue, RecordError> {
    let version = get_i16(&mut b)?;
    match key {
        RecordKey::Offset { .. } => {
            if !(0..=3).contains(&version) {
                return Err(RecordError::ValueVersion(version));
            }
            let offset = get_i64(&mut b)?;
            let leader_epoch = if version >= 3 { get_i32(&mut b)? } else { -1 };
            let metadata = get_str(&mut b)?;
            let commit_timestamp = get_i64(&mut b)?;
            Ok(RecordValue::Offset(OffsetValue { offset, leader_epoch, metadata, commit_timestamp }))
        }
        RecordKey::Group { .. } => {
            if !(0..=3).contains(&version) {
                return Err(RecordError::ValueVersion(version));
            }
            let protocol_type = get_str(&mut b)?;
            let generation = get_i32(&mut b)?;
            let protocol = get_opt_str(&mut b)?;
            let leader = get_opt_str(&mut b)?;
            let state_timestamp = if version >= 2 { get_i64(&mut b)? } else { -1 };
            let count = get_i32(&mut b)?.max(0);
            let mut members = Vec::with_capacity((count as usize).min(1024));
            for _ in 0..count {
                let member_id = get_str(&mut b)?;
                let group_instance_id = if version >= 3 { get_opt_str(&mut b)? } else { None };
                let client_id = get_str(&mut b)?;
                let client_host = get_str(&mut b)?;
                let rebalance_timeout_ms = get_i32(&mut b)?;
                let session_timeout_ms = if version >= 1 { get_i32(&mut b)? } else { rebalance_timeout_ms };
                let subscription = get_bytes(&mut b)?;
                let assignment = get_bytes(&mut b)?;
                members.push(MemberValue {
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    rebalance_timeout_ms,
                    session_timeout_ms,
                    subscription,
                    assignment,
                });
            }
            Ok(RecordValue::Group(GroupValue { protocol_type, generation, protocol, leader, state_timestamp, members }))
        }
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn need(b: &[u8], n: usize) -> Result<(), RecordError> {
    if b.len() < n { Err(RecordError::Truncated) } else { Ok(()) }
}

fn get_i16(b: &mut &[u8]) -> Result<i16, RecordError> {
    need(b, 2)?;
    Ok(b.get_i16())
}

fn get_i32(b: &mut &[u8]) -> Result<i32, RecordError> {
    need(b, 4)?;
    Ok(b.get_i32())
}

fn get_i64(b: &mut &[u8]) -> Result<i64, RecordError> {
    need(b, 8)?;
    Ok(b.get_i64())
}

fn get_opt_str(b: &mut &[u8]) -> Result<Option<String>, RecordError> {
    let len = get_i16(b)?;
    if len < 0 {
        return Ok(None);
    }
    need(b, len as usize)?;
    let s = std::str::from_utf8(&b[..len as usize]).map_err(|_| RecordError::Utf8)?.to_string();
    b.advance(len as usize);
    Ok(Some(s))
}

fn get_str(b: &mut &[u8]) -> Result<String, RecordError> {
    Ok(get_opt_str(b)?.unwrap_or_default())
}

fn get_bytes(b: &mut &[u8]) -> Result<Bytes, RecordError> {
    let len = get_i32(b)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    need(b, len as usize)?;
    let v = Bytes::copy_from_slice(&b[..len as usize]);
    b.advance(len as usize);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() {
        let key = RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 7 };
        let value = RecordValue::Offset(OffsetValue {
            offset: 42,
            leader_epoch: -1,
            metadata: "m".into(),
            commit_timestamp: 1_700_000_000_000,
        });
        let k = decode_key(&encode_key(&key)).unwrap();
        assert_eq!(k, key);
        assert_eq!(decode_value(&k, &encode_value(&value)).unwrap(), value);
    }

    #[test]
    fn group_records_round_trip() {
        let key = RecordKey::Group { group: "g".into() };
        let value = RecordValue::Group(GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 5,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        });
        let k = decode_key(&encode_key(&key)).unwrap();
        assert_eq!(decode_value(&k, &encode_value(&value)).unwrap(), value);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let value = encode_value(&RecordValue::Offset(OffsetValue {
            offset: 1,
            leader_epoch: 0,
            metadata: String::new(),
            commit_timestamp: 0,
        }));
        let key = RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 0 };
        for n in 0..value.len() {
            assert_eq!(decode_value(&key, &value[..n]), Err(RecordError::Truncated));
        }
        assert!(decode_key(&[0]).is_err());
        assert_eq!(decode_key(&[0, 9]), Err(RecordError::KeyVersion(9)));
    }
}
