//! The quorum's network for a single voter: it has no peers, so openraft
//! never sends anything; every call answers Unreachable. The TCP network
//! of several voters is the next slice of issue 23.

use std::future::Future;
use std::io::Cursor;

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, OptionalSend};

use super::MetaTypes;

type C = MetaTypes;

/// Builds clients for peers a one-voter quorum does not have.
#[derive(Debug, Clone, Default)]
pub struct NoPeers;

/// A client that reaches nobody.
#[derive(Debug, Clone)]
pub struct NoPeer(u64);

impl NoPeer {
    fn unreachable(&self) -> Unreachable<C> {
        Unreachable::from_string(format!("node {} is not a voter of this one-voter quorum", self.0))
    }
}

impl RaftNetworkFactory<C> for NoPeers {
    type Network = NoPeer;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        NoPeer(target)
    }
}

impl RaftNetworkV2<C> for NoPeer {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(&mut self, _rpc: VoteRequest<C>, _option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<C>,
        _snapshot: SnapshotOf<C, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}
