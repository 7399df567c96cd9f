//! ElectLeaders (KIP-460, `kafka-leader-election.sh`): moves each named
//! partition's leadership to its preferred replica (election type 0, the
//! first assigned, if live and in sync) or, unclean (type 1), to a live
//! replica where none leads. A null list means every partition. Answered
//! per partition, as Kafka does: `ELECTION_NOT_NEEDED` where nothing would
//! change, `PREFERRED_LEADER_NOT_AVAILABLE`, `ELIGIBLE_LEADERS_NOT_AVAILABLE`,
//! `UNKNOWN_TOPIC_OR_PARTITION`. For every partition (a null list), those
//! that need no election are left out of the answer.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

/// Election type 1: unclean (type 0 is preferred).
const UNCLEAN: i8 = 1;

/// Answers ElectLeaders.
pub async fn handle(ctx: &ShardCtx, req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let unclean = version >= 1 && req.election_type == UNCLEAN;
    let all = req.topic_partitions.is_none();
    let asked: Vec<(String, i32)> = match req.topic_partitions {
        Some(list) => list.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.to_string(), p))).collect(),
        None => {
            let meta = ctx.setup.snapshot.load();
            meta.topics.values().flat_map(|t| (0..t.replicas.len() as i32).map(|p| (t.name.clone(), p))).collect()
        }
    };
    let results = ctx.setup.controller.elect_leaders(unclean, asked.clone()).await;
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, p), result) in asked.into_iter().zip(results) {
        let (code, message) = match result {
            Ok(()) => (ErrorCode::None, None),
            Err(e) if all && e.code == ErrorCode::ElectionNotNeeded => continue,
            Err(e) => (e.code, Some(str_bytes(e.message))),
        };
        let part =
            PartitionResult::default().with_partition_id(p).with_error_code(code.code()).with_error_message(message);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partition_result.push(part),
            None => topics.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(vec![part]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(topics)
}
