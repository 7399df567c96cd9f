//! AlterReplicaLogDirs, answered as Kafka answers on a broker with one log
//! directory: moving a replica to the directory it is in succeeds and
//! changes nothing; any other path is `LOG_DIR_NOT_FOUND`; a partition this
//! node does not hold is `NOT_LEADER_OR_FOLLOWER`.

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};

use super::describe_log_dirs::log_dir;
use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

/// Answers AlterReplicaLogDirs.
pub fn handle(ctx: &ShardCtx, req: AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse {
    let ours = log_dir(&ctx.setup.data_dir);
    let meta = ctx.setup.snapshot.load();
    let mut results = Vec::new();
    for dir in &req.dirs {
        let same_dir = log_dir(std::path::Path::new(dir.path.as_str())) == ours;
        for t in &dir.topics {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let held = meta.topic(&t.name).and_then(|topic| ctx.partition(topic, p)).is_some();
                    let code = match (same_dir, held) {
                        (false, _) => ErrorCode::LogDirNotFound,
                        (true, false) => ErrorCode::NotLeaderOrFollower,
                        (true, true) => ErrorCode::None,
                    };
                    AlterReplicaLogDirPartitionResult::default().with_partition_index(p).with_error_code(code.code())
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default().with_topic_name(t.name.clone()).with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}
