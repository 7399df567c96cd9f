//! The quorum's network, client side: one TCP connection per peer
//! controller, opened when first needed and again after any failure, with
//! one request in flight at a time (openraft sends a peer's RPCs in order).
//! A peer that cannot be connected to is `Unreachable`, which makes openraft
//! back off; a failure mid-exchange is a network error and the connection
//! is dropped.

use std::future::Future;
use std::io::{self, Cursor};
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, OptionalSend};
use tokio::net::TcpStream;

use super::MetaTypes;
use super::frame;
use super::wire::{Request, Response};

type C = MetaTypes;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds a client per peer, from the address in its membership entry.
#[derive(Debug, Clone, Default)]
pub struct TcpPeers;

/// A client of one peer controller.
#[derive(Debug)]
pub struct TcpPeer {
    target: u64,
    addr: String,
    conn: Option<TcpStream>,
}

impl RaftNetworkFactory<C> for TcpPeers {
    type Network = TcpPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        TcpPeer { target, addr: node.addr.clone(), conn: None }
    }
}

/// One exchange on a connection to `addr` (`conn`, or a new one).
pub async fn exchange(conn: &mut Option<TcpStream>, addr: &str, req: &Request) -> Result<Response, ExchangeError> {
    if conn.is_none() {
        let c = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| ExchangeError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(ExchangeError::Connect)?;
        c.set_nodelay(true).map_err(ExchangeError::Connect)?;
        *conn = Some(c);
    }
    let c = conn.as_mut().expect("connected above");
    let result = async {
        frame::write(c, req).await?;
        frame::read::<Response, _>(c).await
    }
    .await;
    result.map_err(|e| {
        *conn = None;
        ExchangeError::Io(e)
    })
}

/// One exchange on a new connection to `addr`, given up after `limit`: a
/// peer that accepted and then stopped (paused, cut off) must not hold the
/// caller forever.
pub async fn exchange_within(addr: &str, req: &Request, limit: Duration) -> Result<Response, ExchangeError> {
    tokio::time::timeout(limit, exchange(&mut None, addr, req))
        .await
        .unwrap_or_else(|_| Err(ExchangeError::Io(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))))
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("exchange failed: {0}")]
    Io(io::Error),
}

impl TcpPeer {
    /// Sends `req` and reads the answer within `ttl`.
    async fn call(&mut self, req: Request, ttl: Duration) -> Result<Response, RPCError<C>> {
        let done = tokio::time::timeout(ttl, exchange(&mut self.conn, &self.addr, &req)).await;
        match done {
            Err(_) => {
                self.conn = None;
                let e =
                    io::Error::new(io::ErrorKind::TimedOut, format!("no answer from node {} in {ttl:?}", self.target));
                Err(RPCError::Network(NetworkError::new(&e)))
            }
            Ok(Err(ExchangeError::Connect(e))) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Ok(Err(ExchangeError::Io(e))) => Err(RPCError::Network(NetworkError::new(&e))),
            Ok(Ok(Response::Failed(why))) => Err(RPCError::Network(NetworkError::from_string(why))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

fn unexpected(resp: Response) -> RPCError<C> {
    RPCError::Network(NetworkError::from_string(format!("unexpected answer: {resp:?}")))
}

impl RaftNetworkV2<C> for TcpPeer {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        match self.call(Request::AppendEntries(rpc), option.hard_ttl()).await? {
            Response::AppendEntries(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.call(Request::Vote(rpc), option.hard_ttl()).await? {
            Response::Vote(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.call(Request::PreVote(rpc), option.hard_ttl()).await? {
            Response::Vote(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let req = Request::Snapshot { vote, meta: snapshot.meta, data: snapshot.snapshot.into_inner() };
        match self.call(req, option.hard_ttl()).await? {
            Response::Snapshot(r) => Ok(r),
            other => Err(unexpected(other).into()),
        }
    }
}
