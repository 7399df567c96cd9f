//! The operator tools: `sluice topics`, `configs`, `produce`, `consume`,
//! `groups` and `cluster`, each a Kafka-protocol client (kafka-protocol encodes every
//! message, as in the broker), usable against sluice or any Kafka cluster.

pub mod client;
pub mod cluster;
pub mod configs;
pub mod consume;
pub mod elect_leaders;
pub mod error;
pub mod group_member;
pub mod groups;
pub mod offsets;
pub mod produce;
pub mod quorum;
pub mod reassign;
pub mod throttle;
pub mod topics;
