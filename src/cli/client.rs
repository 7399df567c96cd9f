//! The cluster as the operator tools see it, over the shared blocking
//! client ([`sluice::client`]): a bootstrap connection, metadata, and
//! connections to other nodes opened on demand.

use std::collections::HashMap;

use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
pub use sluice::client::Conn;

use super::error::CliError;
use crate::protocol::ErrorCode;

/// How the tools name themselves to the broker.
pub const CLIENT_ID: &str = "sluice-cli";

/// The cluster as the tools see it: a bootstrap connection, metadata, and
/// connections to other nodes opened on demand.
pub struct Cluster {
    /// The bootstrap list as given.
    pub bootstrap: String,
    conns: HashMap<i32, Conn>,
    first: Conn,
    /// Latest metadata.
    pub meta: MetadataResponse,
}

impl Cluster {
    /// Connects to the first reachable bootstrap server and reads metadata
    /// for all topics.
    pub fn connect(bootstrap: &str) -> Result<Self, CliError> {
        let mut last = String::from("empty list");
        for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Conn::connect(addr, CLIENT_ID) {
                Ok(first) => {
                    let mut c = Cluster {
                        bootstrap: bootstrap.into(),
                        conns: HashMap::new(),
                        first,
                        meta: MetadataResponse::default(),
                    };
                    c.refresh(None)?;
                    return Ok(c);
                }
                Err(sluice::client::ClientError::Connect { reason, .. }) => last = reason,
                Err(e) => last = e.to_string(),
            }
        }
        Err(CliError::Unreachable { bootstrap: bootstrap.into(), reason: last })
    }

    /// Reloads metadata (all topics, or just these).
    pub fn refresh(&mut self, topics: Option<&[String]>) -> Result<(), CliError> {
        use kafka_protocol::messages::TopicName;
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        let req = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                .collect()
        }));
        self.meta = self.first.send(req)?;
        Ok(())
    }

    /// The bootstrap connection.
    pub fn any(&mut self) -> &mut Conn {
        &mut self.first
    }

    /// A connection to node `id`.
    pub fn node(&mut self, id: i32) -> Result<&mut Conn, CliError> {
        if !self.conns.contains_key(&id) {
            let b = self
                .meta
                .brokers
                .iter()
                .find(|b| b.node_id.0 == id)
                .ok_or_else(|| CliError::Usage(format!("node {id} is not in the cluster metadata")))?;
            let conn = Conn::connect(&format!("{}:{}", b.host, b.port), CLIENT_ID)?;
            self.conns.insert(id, conn);
        }
        Ok(self.conns.get_mut(&id).expect("just inserted"))
    }

    /// Every node id.
    pub fn node_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.meta.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort();
        ids
    }

    /// Leader node of each partition of `topic`, by partition index.
    pub fn leaders(&self, topic: &str) -> Result<Vec<i32>, CliError> {
        let t = self
            .meta
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == ErrorCode::None.code())
            .ok_or_else(|| CliError::UnknownTopic(topic.into()))?;
        let mut parts: Vec<(i32, i32)> = t.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
        parts.sort();
        Ok(parts.into_iter().map(|(_, l)| l).collect())
    }
}
