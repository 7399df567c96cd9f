//! AddRaftVoter and RemoveRaftVoter (KIP-853, `kafka-metadata-quorum.sh
//! add-controller` / `remove-controller`): change the metadata quorum's
//! voter set at run time. Any broker takes them and has the quorum's leader
//! make the change. A voter to add must be running and following the log
//! (a node with `controller` in `process.roles` that is not among the
//! voters joins as an observer). sluice keeps no directory ids: the one in
//! a request is not checked.

use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::metadata::controller::AdminError;
use crate::metadata::raft::wire::VoterChange;
use crate::protocol::ErrorCode;

/// Answers AddRaftVoter.
pub async fn add(ctx: &ShardCtx, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let (code, message) = change(ctx, req.cluster_id.as_ref(), req.voter_id, VoterChange::Add).await;
    AddRaftVoterResponse::default().with_error_code(code).with_error_message(message)
}

/// Answers RemoveRaftVoter.
pub async fn remove(ctx: &ShardCtx, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let (code, message) = change(ctx, req.cluster_id.as_ref(), req.voter_id, VoterChange::Remove).await;
    RemoveRaftVoterResponse::default().with_error_code(code).with_error_message(message)
}

/// Checks the cluster id and the voter id, then has the controller make
/// the change: the error code and message to answer.
async fn change(
    ctx: &ShardCtx,
    cluster_id: Option<&StrBytes>,
    voter: i32,
    make: fn(u64) -> VoterChange,
) -> (i16, Option<StrBytes>) {
    let ours = ctx.setup.snapshot.load().cluster_id.clone();
    let result = match (cluster_id, u64::try_from(voter)) {
        (Some(id), _) if !id.is_empty() && **id != *ours => Err(AdminError::new(
            ErrorCode::InconsistentClusterId,
            format!("cluster id {} is not this cluster's ({ours})", &**id),
        )),
        (_, Err(_)) => Err(AdminError::new(ErrorCode::InvalidRequest, format!("no node has id {voter}"))),
        (_, Ok(id)) => ctx.setup.controller.change_voters(make(id)).await,
    };
    match result {
        Ok(()) => (0, None),
        Err(e) => (e.code.code(), Some(str_bytes(e.message))),
    }
}
