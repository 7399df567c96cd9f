//! Cluster metadata: the model (an immutable snapshot), its durable log, the
//! controller thread that is the log's only writer, and placement.

pub mod controller;
pub mod election;
pub mod log;
pub mod model;
pub mod placement;
pub mod publish;
pub mod raft;
pub mod reassignment;
pub mod record;
pub mod replica_dirs;
pub mod topic_name;

pub use model::TopicMeta;
