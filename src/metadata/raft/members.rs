//! Where the quorum's nodes listen, as its committed membership says: the
//! voters' addresses from the voter set it was initialized with (or changed
//! to), the learners' from their `Join`. Used to reach the leader, so that
//! a node finds it even when its own configuration named the quorum only
//! through `controller.quorum.bootstrap.servers`.

use std::collections::BTreeMap;

use openraft::async_runtime::WatchReceiver;

use super::MetaRaft;

/// The controller address of node `id`, voter or learner, if it is a member.
pub fn addr_of(raft: &MetaRaft, id: u64) -> Option<String> {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    m.membership_config.membership().get_node(&id).map(|n| n.addr.clone()).filter(|a| !a.is_empty())
}

/// Every voter's id and controller address (empty before this node has the
/// membership: a learner that has not been sent the log yet).
pub fn voters(raft: &MetaRaft) -> BTreeMap<u64, String> {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    let membership = m.membership_config.membership();
    membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone()))).collect()
}
