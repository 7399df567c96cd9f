//! What controllers send each other, one framed request and one framed
//! response per exchange (`frame.rs`): openraft's three RPCs (and the
//! pre-vote), and a proposal forwarded from a controller that does not lead
//! to the one that does.

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotMetaOf, VoteOf};
use serde::{Deserialize, Serialize};

use super::view::QuorumView;
use super::{MetaCommand, MetaReply, MetaTypes};

type C = MetaTypes;

/// A request to a controller.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    PreVote(VoteRequest<C>),
    /// A whole snapshot: the metadata image is small enough for one frame.
    Snapshot {
        vote: VoteOf<C>,
        meta: SnapshotMetaOf<C>,
        data: Vec<u8>,
    },
    /// Commit this command (sent to the leader).
    Propose(MetaCommand),
    /// Broker `broker` is alive (sent to the leader).
    Heartbeat {
        broker: i32,
    },
    /// Node `id`, a broker that does not vote, follows the log at `addr`
    /// from now on (sent to the leader).
    Join {
        id: u64,
        addr: String,
    },
    /// Node `id`, a learner, is no longer sent the log (sent to the leader).
    RemoveLearner {
        id: u64,
    },
    /// A learner becomes a voter, or a voter a learner (sent to the leader).
    ChangeVoters(VoterChange),
    /// The quorum as the node asked sees it (asked of the leader, which
    /// knows every voter's log end).
    Describe,
    /// The voters and their addresses (asked by a broker that was given
    /// only `controller.quorum.bootstrap.servers`).
    Voters,
}

/// A controller's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(AppendEntriesResponse<C>),
    Vote(VoteResponse<C>),
    Snapshot(SnapshotResponse<C>),
    Proposed(Result<MetaReply, ProposeError>),
    HeartbeatAnswer(Result<(), ProposeError>),
    Joined(Result<(), ProposeError>),
    Described(QuorumView),
    Voters(super::quorum::Discovered),
    /// The controller could not serve the request (its raft stopped).
    Failed(String),
}

/// A change of the voter set (AddRaftVoter, RemoveRaftVoter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoterChange {
    /// Learner `id` votes from now on.
    Add(u64),
    /// Voter `id` no longer votes; it goes on following the log.
    Remove(u64),
}

/// Why a proposal was not committed.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    /// The controller asked does not lead; `leader` is the one it knows of.
    #[error("controller is not the quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// No leader can be reached, or the commit's outcome is unknown.
    #[error("{0}")]
    Unavailable(String),
    /// The leader will not do it as asked (a voter change it checked): not
    /// retried.
    #[error("{0}")]
    Refused(String),
}
