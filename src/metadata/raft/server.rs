//! The quorum's network, server side: the controller listener. Each
//! connection carries one request at a time, answered in order; requests go
//! to this node's raft, proposals too (a proposal reaching a controller
//! that does not lead is answered with the leader it knows of).

use std::io;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::type_config::alias::SnapshotOf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::sessions::{self, Sessions};
use super::state_machine::MetaStateMachine;
use super::view::SharedView;
use super::wire::{ProposeError, Request, Response, VoterChange};
use super::{MetaCommand, MetaRaft, MetaTypes, frame};

type C = MetaTypes;

/// What the listener serves requests from.
#[derive(Clone)]
pub struct Node {
    pub raft: MetaRaft,
    pub sm: MetaStateMachine,
    pub sessions: Arc<Sessions>,
    pub view: SharedView,
}

/// Most connections served at once: peers, and brokers forwarding
/// proposals. More wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;

/// Accepts connections on `listener` for as long as the runtime runs.
pub async fn serve(listener: TcpListener, node: Node) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!("controller listener accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(conn, &node).await
                && e.kind() != io::ErrorKind::UnexpectedEof
            {
                debug!(%peer, "controller connection closed: {e}");
            }
            drop(permit);
        });
    }
}

async fn serve_connection(mut conn: TcpStream, node: &Node) -> io::Result<()> {
    conn.set_nodelay(true)?;
    loop {
        let req: Request = frame::read(&mut conn).await?;
        let resp = answer(node, req).await;
        frame::write(&mut conn, &resp).await?;
    }
}

async fn answer(node: &Node, req: Request) -> Response {
    let raft = &node.raft;
    match req {
        Request::AppendEntries(rpc) => raft.append_entries(rpc).await.map_or_else(failed, Response::AppendEntries),
        Request::Vote(rpc) => raft.vote(rpc).await.map_or_else(failed, Response::Vote),
        Request::PreVote(rpc) => raft.pre_vote(rpc).await.map_or_else(failed, Response::Vote),
        Request::Snapshot { vote, meta, data } => {
            let snapshot = SnapshotOf::<C, _> { meta, snapshot: std::io::Cursor::new(data) };
            raft.install_full_snapshot(vote, snapshot).await.map_or_else(failed, Response::Snapshot)
        }
        Request::Propose(cmd) => Response::Proposed(propose_here(raft, cmd).await),
        Request::Join { id, addr } => Response::Joined(add_learner(raft, id, addr).await),
        Request::RemoveLearner { id } => Response::Joined(remove_learner(raft, id).await),
        Request::ChangeVoters(change) => Response::Joined(change_voters(raft, change).await),
        Request::Describe => Response::Described((**node.view.load()).clone()),
        Request::Voters => Response::Voters(super::quorum::Discovered {
            voters: super::members::voters(raft),
            cluster_id: node.sm.meta().cluster_id,
        }),
        Request::Heartbeat { broker } => {
            Response::HeartbeatAnswer(sessions::on_heartbeat(raft, &node.sm, &node.sessions, broker).await)
        }
    }
}

fn failed(e: impl std::fmt::Display) -> Response {
    Response::Failed(e.to_string())
}

/// Adds node `id` at `addr` as a learner: it is sent the log from now on.
async fn add_learner(raft: &MetaRaft, id: u64, addr: String) -> Result<(), ProposeError> {
    tracing::info!(node = id, %addr, "a broker that does not vote joins the metadata quorum as a learner");
    match raft.add_learner(id, openraft::BasicNode::new(addr), false).await {
        Ok(_) => Ok(()),
        Err(e) => Err(not_done(e)),
    }
}

/// Stops sending the log to learner `id` (a decommissioned broker); a node
/// that is not a learner is left as it is.
pub async fn remove_learner(raft: &MetaRaft, id: u64) -> Result<(), ProposeError> {
    let is_learner = raft.metrics().borrow_watched().membership_config.membership().learner_ids().any(|l| l == id);
    if !is_learner {
        return Ok(());
    }
    let remove = openraft::ChangeMembers::RemoveNodes(std::collections::BTreeSet::from([id]));
    match raft.change_membership(remove, false).await {
        Ok(_) => Ok(()),
        Err(e) => Err(not_done(e)),
    }
}

/// Changes the voter set through joint consensus; a removed voter stays a
/// learner. openraft refuses adding a node that is not a learner.
pub async fn change_voters(raft: &MetaRaft, change: VoterChange) -> Result<(), ProposeError> {
    if let VoterChange::Add(id) = change {
        following(raft, id)?;
    }
    tracing::info!(?change, "changing the metadata quorum's voters");
    let change = match change {
        VoterChange::Add(id) => openraft::ChangeMembers::AddVoterIds(std::collections::BTreeSet::from([id])),
        VoterChange::Remove(id) => openraft::ChangeMembers::RemoveVoters(std::collections::BTreeSet::from([id])),
    };
    match raft.change_membership(change, true).await {
        Ok(_) => Ok(()),
        Err(e) => Err(not_done(e)),
    }
}

/// How far behind the leader's log a learner may be and still be made a
/// voter (it catches up the rest as a voter).
const MAX_LAG_TO_VOTE: u64 = 100;

/// How recently a learner must have answered the leader to be made a voter.
const MAX_SILENCE_TO_VOTE: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks, where this node leads, that learner `id` answers and is caught
/// up, as Kafka checks an observer before AddRaftVoter: a voter that does
/// not answer would leave the joint majority short, and the change would
/// not commit.
fn following(raft: &MetaRaft, id: u64) -> Result<(), ProposeError> {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    let (Some(replication), Some(heartbeat)) = (&m.replication, &m.heartbeat) else {
        return Err(ProposeError::NotLeader { leader: m.current_leader });
    };
    let answered =
        heartbeat.get(&id).cloned().flatten().is_some_and(|at| openraft::Instant::elapsed(&*at) < MAX_SILENCE_TO_VOTE);
    let matched = replication.get(&id).cloned().flatten().map_or(0, |l| l.index + 1);
    let end = m.last_log_index.map_or(0, |i| i + 1);
    if !answered || matched + MAX_LAG_TO_VOTE < end {
        return Err(ProposeError::Refused(format!(
            "node {id} does not follow the quorum's log (it has {matched} of {end} entries{}): start it, and retry once it has caught up",
            if answered { "" } else { ", and has not answered lately" }
        )));
    }
    Ok(())
}

/// Why a write on this node's raft (a proposal or a membership change) was
/// not done: another node leads, or the outcome is unknown.
fn not_done(e: RaftError<C, ClientWriteError<C>>) -> ProposeError {
    match e.forward_to_leader() {
        Some(f) => ProposeError::NotLeader { leader: f.leader_id },
        None => ProposeError::Unavailable(e.to_string()),
    }
}

/// Commits `cmd` through this node's raft, which must lead.
pub async fn propose_here(raft: &MetaRaft, cmd: MetaCommand) -> Result<super::MetaReply, ProposeError> {
    match raft.client_write(cmd).await {
        Ok(r) => Ok(r.data),
        Err(e) => Err(not_done(e)),
    }
}
