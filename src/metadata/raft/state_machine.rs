//! The metadata quorum's state machine: committed commands applied to a
//! [`ClusterMeta`], as the file log's replay applies records. A snapshot is
//! the records that rebuild the state (every topic placed, the producer id
//! block, the dynamic broker configs) with the log end they stand for.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex};

use futures_lite::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::snapshot_file::SnapshotFile;
use super::{MetaReply, MetaTypes};
use crate::metadata::controller::apply;
use crate::metadata::model::{BrokerReg, ClusterMeta};
use crate::metadata::record::MetaRecord;

type C = MetaTypes;

/// What a snapshot holds.
#[derive(Debug, Serialize, Deserialize)]
struct Image {
    records: Vec<MetaRecord>,
    log_end: i64,
    /// Registered brokers with the node ids they were given (replaying
    /// registrations would hand ids out again, in another order).
    #[serde(default)]
    brokers: Vec<BrokerReg>,
    #[serde(default)]
    next_node_id: i32,
    #[serde(default)]
    retired: BTreeMap<i32, Vec<i32>>,
}

impl Image {
    fn of(meta: &ClusterMeta) -> Self {
        let mut records: Vec<MetaRecord> = Vec::new();
        for t in meta.topics.values() {
            records.push(MetaRecord::TopicPlaced {
                name: t.name.clone(),
                id: *t.id.as_bytes(),
                replicas: t.replicas.clone(),
                configs: t.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
            if t.epochs.iter().any(|&e| e > 0) {
                records.push(MetaRecord::LeaderEpochs { name: t.name.clone(), epochs: t.epochs.clone() });
            }
            if t.isr != t.replicas {
                records.push(MetaRecord::Isrs { name: t.name.clone(), isr: t.isr.clone() });
            }
            for (&p, r) in &t.reassigning {
                let (target, original) = (r.target.clone(), r.original.clone());
                records.push(MetaRecord::Reassigning { name: t.name.clone(), partition: p as i32, target, original });
            }
        }
        records.push(MetaRecord::ProducerIdsAllocated { next: meta.next_producer_id });
        for (resource, configs) in &meta.broker_configs {
            let configs = configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            records.push(MetaRecord::BrokerConfigsSet { resource: resource.clone(), configs });
        }
        for (id, addr) in &meta.controllers {
            records.push(MetaRecord::ControllerRegistered { id: *id, addr: addr.clone() });
        }
        let brokers = meta.brokers.values().cloned().collect();
        Image {
            records,
            log_end: meta.log_end,
            brokers,
            next_node_id: meta.next_node_id,
            retired: meta.retired.clone(),
        }
    }

    /// The state it stands for, on `base` (a node's own cluster id and node
    /// count, which are not replicated).
    fn restore(self, base: &ClusterMeta) -> ClusterMeta {
        let mut meta = ClusterMeta::of_cluster(base.cluster_id.clone());
        for r in &self.records {
            apply(&mut meta, r);
        }
        meta.log_end = self.log_end;
        meta.set_brokers(self.brokers);
        meta.next_node_id = self.next_node_id;
        meta.retired = self.retired;
        meta
    }
}

#[derive(Default)]
struct Inner {
    meta: ClusterMeta,
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    current: Option<(SnapshotMetaOf<C>, Vec<u8>)>,
}

/// The state machine; clones share it.
#[derive(Clone)]
pub struct MetaStateMachine {
    inner: Arc<Mutex<Inner>>,
    /// Where snapshots are saved; `None`: kept in memory only (tests).
    file: Option<SnapshotFile>,
    /// Signalled (coalesced: one pending signal at most) after entries
    /// apply, for the publisher.
    changed: (flume::Sender<()>, flume::Receiver<()>),
    /// Orders snapshot saves (see `save_if_newer`).
    saving: Arc<Mutex<()>>,
}

impl Default for MetaStateMachine {
    fn default() -> Self {
        Self::new(ClusterMeta::default())
    }
}

impl MetaStateMachine {
    /// A state machine starting from `meta` (a node's cluster id and node
    /// count, no topics).
    pub fn new(meta: ClusterMeta) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner { meta, ..Default::default() })),
            file: None,
            changed: flume::bounded(1),
            saving: Default::default(),
        }
    }

    /// A state machine starting from `meta` whose snapshots are saved in
    /// `file`; the saved one, if any, is offered to openraft (which
    /// installs it at start, then re-applies the log after it).
    pub fn open(meta: ClusterMeta, file: SnapshotFile) -> io::Result<Self> {
        let current = file.load()?;
        let inner = Inner { meta, current, ..Default::default() };
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            file: Some(file),
            changed: flume::bounded(1),
            saving: Default::default(),
        })
    }

    /// Saves a snapshot, before it is used, and makes it the current one,
    /// unless the current one is as new: a snapshot built from an older
    /// state may finish after the leader's newer one was installed (openraft
    /// builds in a task of its own), and must not replace it, since the log
    /// may already be purged past it.
    fn save_if_newer(&self, meta: &SnapshotMetaOf<C>, bytes: &[u8]) -> io::Result<()> {
        let _order = self.saving.lock().expect("the snapshot save lock");
        let current = self.inner.lock().expect("the state machine lock").current.as_ref().map(|(m, _)| m.last_log_id);
        if current.is_some_and(|c| c >= meta.last_log_id) {
            return Ok(());
        }
        if let Some(f) = &self.file {
            f.save(meta, bytes)?;
        }
        self.inner.lock().expect("the state machine lock").current = Some((meta.clone(), bytes.to_vec()));
        Ok(())
    }

    /// A channel that receives a signal whenever applied metadata may have
    /// changed since it was last read.
    pub fn changes(&self) -> flume::Receiver<()> {
        self.changed.1.clone()
    }

    /// The metadata as of the last applied entry.
    pub fn meta(&self) -> ClusterMeta {
        self.inner.lock().expect("the state machine lock").meta.clone()
    }
}

impl RaftSnapshotBuilder<C> for MetaStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Self::SnapshotData>, io::Error> {
        let (meta, bytes) = {
            let inner = self.inner.lock().expect("the state machine lock");
            let bytes = serde_json::to_vec(&Image::of(&inner.meta)).map_err(io::Error::other)?;
            let meta =
                SnapshotMetaOf::<C> { last_log_id: inner.last_applied, last_membership: inner.membership.clone() };
            (meta, bytes)
        };
        // On disk before openraft purges the log it covers.
        self.save_if_newer(&meta, &bytes)?;
        Ok(SnapshotOf::<C, _> { meta, snapshot: Cursor::new(bytes) })
    }
}

impl RaftStateMachine<C> for MetaStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let inner = self.inner.lock().expect("the state machine lock");
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(next) = entries.next().await {
            let (entry, responder) = next?;
            let reply = {
                let mut inner = self.inner.lock().expect("the state machine lock");
                inner.last_applied = Some(entry.log_id);
                let mut applied = true;
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(cmd) => {
                        applied = cmd.expect_log_end.is_none_or(|end| end == inner.meta.log_end);
                        if applied {
                            for r in &cmd.records {
                                apply(&mut inner.meta, r);
                            }
                        }
                    }
                    EntryPayload::Membership(m) => {
                        inner.membership = StoredMembershipOf::<C>::new(Some(entry.log_id), m);
                    }
                }
                MetaReply { log_end: inner.meta.log_end, index: entry.log_id.index, applied }
            };
            let _ = self.changed.0.try_send(());
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let image: Image = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        // A snapshot sent by the leader: on disk before the log is purged up
        // to it (the one loaded at start is already there).
        self.save_if_newer(meta, &bytes)?;
        let mut inner = self.inner.lock().expect("the state machine lock");
        inner.meta = image.restore(&inner.meta);
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        let _ = self.changed.0.try_send(());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Self::SnapshotData>>, io::Error> {
        let inner = self.inner.lock().expect("the state machine lock");
        Ok(inner
            .current
            .as_ref()
            .map(|(meta, bytes)| SnapshotOf::<C, _> { meta: meta.clone(), snapshot: Cursor::new(bytes.clone()) }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::log_store::MetaLogStore;
    use super::*;
    use openraft::StorageError;
    use openraft::testing::log::{StoreBuilder, Suite};

    /// Fresh stores in a directory of their own, dropped with the guard.
    struct Builder;

    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl StoreBuilder<C, MetaLogStore, MetaStateMachine, TempDir> for Builder {
        async fn build(&self) -> Result<(TempDir, MetaLogStore, MetaStateMachine), StorageError<C>> {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("sluice-raft-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let store = MetaLogStore::open(&dir).expect("the log opens");
            Ok((TempDir(dir), store, MetaStateMachine::default()))
        }
    }

    /// A snapshot built from an older state that finishes after a newer one
    /// was installed (openraft builds in a task of its own) does not replace
    /// it, on disk or as the current one; a restart offers the newer one.
    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = std::env::temp_dir().join(format!("sluice-raft-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _guard = TempDir(dir.clone());
        let snap = |index: u64| SnapshotMetaOf::<C> {
            last_log_id: Some(openraft::testing::log_id::<C>(1, 0, index)),
            last_membership: Default::default(),
        };
        let image = |n: i64| {
            let mut meta = ClusterMeta::default();
            meta.log_end = n;
            serde_json::to_vec(&Image::of(&meta)).unwrap()
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut sm = MetaStateMachine::open(ClusterMeta::default(), SnapshotFile::new(&dir)).unwrap();
            sm.install_snapshot(&snap(50), Cursor::new(image(50))).await.unwrap();
            sm.save_if_newer(&snap(10), &image(10)).unwrap();
            let current = sm.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(current.meta, snap(50));
            let mut again = MetaStateMachine::open(ClusterMeta::default(), SnapshotFile::new(&dir)).unwrap();
            assert_eq!(again.get_current_snapshot().await.unwrap().unwrap().meta, snap(50), "the file kept it too");
        });
    }

    /// A snapshot's image rebuilds what the log built: leader epochs and
    /// registered controllers too.
    #[test]
    fn an_image_restores_leader_epochs_and_controllers() {
        let mut meta = ClusterMeta::of_cluster("c");
        for r in [
            MetaRecord::TopicPlaced {
                name: "t".into(),
                id: [1; 16],
                replicas: vec![vec![0], vec![1]],
                configs: vec![],
            },
            MetaRecord::PartitionReassigned { name: "t".into(), partition: 1, replicas: vec![0] },
            MetaRecord::ControllerRegistered { id: 4, addr: "h:9093".into() },
        ] {
            apply(&mut meta, &r);
        }
        let restored = Image::of(&meta).restore(&meta);
        assert_eq!(restored.topic("t").unwrap().epochs, [0, 1]);
        assert_eq!(restored.controllers, meta.controllers);
    }

    #[test]
    fn passes_openrafts_storage_suite() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async { Suite::test_all(Builder).await }).expect("openraft's storage suite");
    }
}
