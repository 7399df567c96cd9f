//! DeleteRecords: advance partitions' log start offsets; whole segments below
//! the new start are deleted.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::storage_errors;
use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;
use crate::storage::ReadError;

/// Answers DeleteRecords.
pub async fn handle(ctx: &ShardCtx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let meta = ctx.setup.snapshot.load_full();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = meta.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
            let code = match topic {
                // Group and offset records are the coordinator's to remove.
                Some(topic) if topic.name == crate::group::OFFSETS_TOPIC => Err(ErrorCode::InvalidTopic),
                None => Err(ErrorCode::UnknownTopicOrPartition),
                Some(topic) => match ctx.owned_log(topic, p.partition_index) {
                    Err(code) => Err(code),
                    Ok(log) => log.delete_records(p.offset).await.map_err(|e| {
                        if let ReadError::Io(_) = e {
                            tracing::error!(topic = %topic.name, partition = p.partition_index, "delete records failed: {e}");
                        }
                        storage_errors::read_error(&e)
                    }),
                },
            };
            partitions.push(match code {
                Ok(low) => base.with_low_watermark(low),
                Err(code) => base.with_error_code(code.code()),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
