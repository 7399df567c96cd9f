//! Consumer groups (classic protocol): the coordinator of each group is the
//! shard owning the group's `__consumer_offsets` partition, and group state
//! and committed offsets are records in that partition, replayed on load.

pub mod coordinator;
pub mod persist;
pub mod record;
pub mod state;
pub mod timer_task;

pub use coordinator::{Coordinator, OFFSETS_TOPIC};
