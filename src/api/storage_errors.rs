//! The one mapping from the partition log's errors to the Kafka error codes
//! clients get, shared by produce, fetch, ListOffsets and DeleteRecords.

use crate::protocol::ErrorCode;
use crate::storage::StorageError;
use crate::storage::partition::ReadError;
use crate::storage::producer_state::SequenceError;

/// The code for a failed read (fetch, ListOffsets, DeleteRecords).
pub fn read_error(e: &ReadError) -> ErrorCode {
    match e {
        ReadError::OutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        ReadError::Io(_) => ErrorCode::KafkaStorageError,
    }
}

/// The code for a failed append.
pub fn append_error(e: &StorageError) -> ErrorCode {
    match e {
        StorageError::Sequence(SequenceError::InvalidEpoch { .. }) => ErrorCode::InvalidProducerEpoch,
        StorageError::Sequence(SequenceError::OutOfOrder { .. }) => ErrorCode::OutOfOrderSequenceNumber,
        StorageError::Invalid(_) => ErrorCode::CorruptMessage,
        StorageError::Io(_) | StorageError::Closed | StorageError::CutOff { .. } => ErrorCode::KafkaStorageError,
        // A follower cutting its log back leads nothing: clients go elsewhere.
        StorageError::Truncating | StorageError::StaleEpoch { .. } | StorageError::LeaderMoved => {
            ErrorCode::NotLeaderOrFollower
        }
    }
}
