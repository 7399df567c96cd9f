//! Broker sessions (KIP-631's heartbeats, on the quorum): every broker
//! tells the quorum's leader it is alive every `broker.heartbeat.interval.ms`;
//! the leader fences a broker it has not heard from for
//! `broker.session.timeout.ms` (a `BrokerFenced` record) and unfences a
//! fenced one that heartbeats again. Sessions live in the leader's memory,
//! as Kafka's controller keeps them: a new leader gives every broker a
//! full session from the moment it leads. Both loops run on the quorum's
//! tokio runtime, never on a shard's reactor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::network::exchange;
use super::server::propose_here;
use super::state_machine::MetaStateMachine;
use super::wire::{ProposeError, Request, Response};
use super::{MetaCommand, MetaRaft};
use crate::metadata::record::MetaRecord;

/// How often the leader looks for expired sessions.
const EXPIRY_CHECK: Duration = Duration::from_millis(200);

/// When the leader last heard from each broker.
#[derive(Debug, Default)]
pub struct Sessions {
    seen: Mutex<HashMap<i32, Instant>>,
}

impl Sessions {
    /// Broker `broker` is alive now.
    pub fn heard(&self, broker: i32) {
        self.seen.lock().expect("the sessions lock").insert(broker, Instant::now());
    }

    /// Every broker's session starts over now (a new leader's grace).
    fn restart_all(&self, brokers: impl Iterator<Item = i32>) {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("the sessions lock");
        seen.clear();
        seen.extend(brokers.map(|b| (b, now)));
    }

    /// Forgets `broker`'s session (it is fenced): when it is unfenced, a
    /// new one starts then, not from its last heartbeat before.
    fn forget(&self, broker: i32) {
        self.seen.lock().expect("the sessions lock").remove(&broker);
    }

    /// Whether `broker`'s session ran out; a broker not heard of yet starts
    /// one now.
    fn expired(&self, broker: i32, timeout: Duration) -> bool {
        let mut seen = self.seen.lock().expect("the sessions lock");
        seen.entry(broker).or_insert_with(Instant::now).elapsed() > timeout
    }
}

/// The leader's side of a heartbeat from `broker`: its session goes on, and
/// it is unfenced if it was fenced.
pub async fn on_heartbeat(
    raft: &MetaRaft,
    sm: &MetaStateMachine,
    sessions: &Sessions,
    broker: i32,
) -> Result<(), ProposeError> {
    let me = raft.metrics().borrow_watched().id;
    if raft.current_leader().await != Some(me) {
        return Err(ProposeError::NotLeader { leader: raft.current_leader().await });
    }
    sessions.heard(broker);
    if sm.meta().brokers.get(&broker).is_some_and(|b| b.fenced) {
        info!(broker, "unfencing broker: it heartbeats again");
        propose_here(raft, MetaCommand::always(vec![MetaRecord::BrokerUnfenced { broker }])).await?;
    }
    Ok(())
}

/// The leader's loop: fences brokers whose session ran out. It ends when
/// this broker shuts down (its own heartbeats have stopped).
pub async fn expire(
    raft: MetaRaft,
    sm: MetaStateMachine,
    sessions: Arc<Sessions>,
    timeout: Duration,
    stopping: Arc<AtomicBool>,
) {
    let mut led_term = None;
    loop {
        tokio::time::sleep(EXPIRY_CHECK).await;
        if stopping.load(Ordering::Acquire) {
            return;
        }
        let (me, leader, term) = {
            let m = raft.metrics();
            let m = m.borrow_watched();
            (m.id, m.current_leader, m.current_term)
        };
        if leader != Some(me) {
            led_term = None;
            continue;
        }
        let meta = sm.meta();
        if led_term != Some(term) {
            sessions.restart_all(meta.brokers.keys().copied());
            led_term = Some(term);
        }
        for b in meta.brokers.values().filter(|b| b.fenced) {
            sessions.forget(b.id);
        }
        for b in meta.brokers.values().filter(|b| !b.fenced) {
            if sessions.expired(b.id, timeout) {
                warn!(broker = b.id, ?timeout, "fencing broker: no heartbeat within broker.session.timeout.ms");
                let fence = MetaCommand::always(vec![MetaRecord::BrokerFenced { broker: b.id }]);
                if let Err(e) = propose_here(&raft, fence).await {
                    warn!(broker = b.id, "cannot fence broker: {e}");
                }
            }
        }
    }
}

/// A broker's loop: heartbeats to the leader, wherever it is.
pub async fn heartbeat(
    raft: MetaRaft,
    sm: MetaStateMachine,
    sessions: Arc<Sessions>,
    broker: i32,
    interval: Duration,
    stopping: Arc<AtomicBool>,
) {
    let mut conn: Option<(u64, Option<TcpStream>)> = None;
    loop {
        // A broker shutting down has asked to be fenced: a heartbeat now
        // would unfence it.
        if stopping.load(Ordering::Acquire) {
            return;
        }
        let me = raft.metrics().borrow_watched().id;
        let sent = match raft.current_leader().await {
            Some(l) if l == me => on_heartbeat(&raft, &sm, &sessions, broker).await,
            Some(l) => {
                if conn.as_ref().is_none_or(|(to, _)| *to != l) {
                    conn = Some((l, None));
                }
                let (_, c) = conn.as_mut().expect("set above");
                let addr = super::members::addr_of(&raft, l).unwrap_or_default();
                match tokio::time::timeout(interval, exchange(c, &addr, &Request::Heartbeat { broker })).await {
                    Ok(Ok(Response::HeartbeatAnswer(r))) => r,
                    Ok(Ok(other)) => Err(ProposeError::Unavailable(format!("unexpected answer {other:?}"))),
                    Ok(Err(e)) => Err(ProposeError::Unavailable(e.to_string())),
                    Err(_) => {
                        *c = None;
                        Err(ProposeError::Unavailable("heartbeat timed out".into()))
                    }
                }
            }
            None => Err(ProposeError::NotLeader { leader: None }),
        };
        if let Err(e) = sent {
            tracing::debug!(broker, "heartbeat not delivered: {e}");
        }
        tokio::time::sleep(interval).await;
    }
}
