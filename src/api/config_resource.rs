//! The resources DescribeConfigs, IncrementalAlterConfigs and AlterConfigs
//! name, resolved once: a topic, the broker cluster default (`""`) or one
//! node, or a consumer group.

use crate::broker::context::ShardCtx;
use crate::config::edit::ConfigEdit;
use crate::protocol::ErrorCode;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;

/// A config resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A topic, by name (not checked to exist here).
    Topic(String),
    /// The dynamic cluster-wide default (`None`) or node N.
    Broker(Option<i32>),
    /// A consumer group's configs (KIP-848's; none apply to classic groups).
    Group(String),
}

/// A refusal, with the error code and message to answer.
pub type Refusal = (ErrorCode, String);

/// The resource of `resource_type` named `name`.
pub fn resolve(ctx: &ShardCtx, resource_type: i8, name: &str) -> Result<Resource, Refusal> {
    match resource_type {
        TOPIC => Ok(Resource::Topic(name.to_string())),
        BROKER if name.is_empty() => Ok(Resource::Broker(None)),
        BROKER => {
            let meta = ctx.setup.snapshot.load();
            match name.parse::<i32>() {
                Ok(n) if meta.node(n).is_some() => Ok(Resource::Broker(Some(n))),
                _ => {
                    let ids: Vec<i32> = meta.live_nodes().iter().map(|(n, _)| *n).collect();
                    Err((ErrorCode::InvalidRequest, format!("no broker {name:?}: node ids are {ids:?}")))
                }
            }
        }
        GROUP if name.is_empty() => Err((ErrorCode::InvalidGroupId, "the group id is empty".into())),
        GROUP => Ok(Resource::Group(name.to_string())),
        other => Err((ErrorCode::InvalidRequest, format!("config resource type {other} is not supported"))),
    }
}

/// Applies `edit` to `resource` (or only checks it, `validate_only`).
pub async fn alter(ctx: &ShardCtx, resource: Resource, edit: ConfigEdit, validate_only: bool) -> Result<(), Refusal> {
    let controller = &ctx.setup.controller;
    let done = match resource {
        Resource::Topic(name) => controller.alter_topic_configs(name, edit, validate_only).await,
        Resource::Broker(node) => controller.alter_broker_configs(node, edit, validate_only).await,
        Resource::Group(_) => {
            let nothing = matches!(&edit, ConfigEdit::Replace(m) if m.is_empty());
            return if nothing {
                Ok(())
            } else {
                Err((
                    ErrorCode::InvalidConfig,
                    "group configs apply to KIP-848 consumer and share groups, which sluice does not run yet; \
                     classic groups take their timeouts from their members"
                        .into(),
                ))
            };
        }
    };
    done.map_err(|e| (e.code, e.message))
}
