//! DeleteTopics, by name (all versions) or by topic id (v6).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

/// Answers DeleteTopics.
pub async fn handle(ctx: &ShardCtx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let meta = ctx.setup.snapshot.load_full();
    // (name to delete, or the error for an unknown id; the id asked for)
    let mut wanted: Vec<(Result<TopicName, ()>, uuid::Uuid)> =
        req.topic_names.iter().map(|n| (Ok(n.clone()), uuid::Uuid::nil())).collect();
    for t in &req.topics {
        match (&t.name, meta.topic_by_id(&t.topic_id)) {
            (Some(n), _) => wanted.push((Ok(n.clone()), t.topic_id)),
            (None, Some(topic)) => wanted.push((Ok(TopicName(str_bytes(topic.name.clone()))), t.topic_id)),
            (None, None) => wanted.push((Err(()), t.topic_id)),
        }
    }
    let names: Vec<String> = wanted.iter().filter_map(|(n, _)| n.as_ref().ok().map(|n| n.to_string())).collect();
    let mut results = ctx.setup.controller.delete_topics(names).await.into_iter();
    let responses = wanted
        .into_iter()
        .map(|(name, id)| match name {
            Err(()) => {
                DeletableTopicResult::default().with_topic_id(id).with_error_code(ErrorCode::UnknownTopicId.code())
            }
            Ok(name) => match results.next().expect("one result per name") {
                Ok(deleted_id) => DeletableTopicResult::default().with_name(Some(name)).with_topic_id(deleted_id),
                Err(e) => DeletableTopicResult::default()
                    .with_name(Some(name))
                    .with_topic_id(id)
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            },
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
