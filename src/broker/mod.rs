//! The broker process: data directory, controller thread, and one shard per
//! core, each a Kafka node on its own port.

pub mod body_pool;
pub mod connection;
pub mod context;
pub mod controller_only;
pub mod descriptors;
pub mod hw_checkpoint_task;
pub mod io_memory;
pub mod notify;
pub mod retention_task;
pub mod shard;
pub mod shutdown;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use thiserror::Error;
use tracing::{info, warn};

use crate::config::BrokerSettings;
use crate::config::kraft::ClusterProcess;
use crate::metadata::controller::{Controller, Opened};
use crate::metadata::model::BrokerReg;
use crate::metadata::raft::quorum::QuorumConfig;
use context::{Endpoints, ShardCtx, ShardSetup};

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Bind address.
    pub host: IpAddr,
    /// Base port: shard k listens on `port + k`.
    pub port: u16,
    /// Host advertised to clients.
    pub advertised_host: String,
    /// Number of shards.
    pub shards: usize,
    /// Bytes of recent batches each shard keeps in memory.
    pub cache_bytes: usize,
    /// Broker settings.
    pub settings: BrokerSettings,
    /// This broker's part in a cluster; `None`: the embedded single broker,
    /// its own one-voter quorum.
    pub cluster: Option<ClusterProcess>,
}

impl BrokerOptions {
    /// The broker id it registers under: `node.id` in a cluster, 0 alone.
    fn broker_id(&self) -> i32 {
        self.cluster.as_ref().map_or(0, |c| c.node_id)
    }

    /// The quorum it votes in, and its controller listener.
    fn quorum(&self) -> std::io::Result<(QuorumConfig, Option<std::net::TcpListener>)> {
        match &self.cluster {
            None => Ok((QuorumConfig::one_voter(), None)),
            Some(c) => cluster_quorum(c).map(|(config, listener)| (config, Some(listener))),
        }
    }

    /// A new data dir's cluster id: random alone; in a cluster, derived
    /// from the voter set, so that every broker of it reports the same.
    fn fresh_cluster_id(&self) -> String {
        match &self.cluster {
            None => uuid::Uuid::new_v4().simple().to_string()[..22].to_string(),
            Some(c) => derived_cluster_id(c),
        }
    }
}

/// For a node that joins the quorum (one not among the voters it was
/// given): asks the bootstrap servers, or else the voters, for the current
/// voters (which it then joins through) and the cluster id, which it
/// returns. `None` for one of the voters it was given, and for a node with
/// a log of its own when no one answers in a few seconds: it may be one of
/// several voters (added at run time) that restart together, and the
/// membership in its log says whom to reach.
fn discover_quorum(c: &mut ClusterProcess, data_dir: &Path) -> std::io::Result<Option<String>> {
    use crate::metadata::raft::quorum;
    if c.learner_addr.is_none() {
        return Ok(None);
    }
    let has_log = data_dir.join(quorum::DIR_NAME).exists();
    let servers: Vec<String> =
        if c.bootstrap.is_empty() { c.voters.values().cloned().collect() } else { c.bootstrap.clone() };
    let wait = if has_log { Duration::from_secs(10) } else { quorum::ELECTION_WAIT };
    let found = match quorum::discover(&servers, wait) {
        Ok(found) => found,
        Err(e) if has_log => {
            warn!("{e}; starting from this node's own metadata log");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    info!(voters = ?found.voters, cluster_id = %found.cluster_id, "the metadata quorum answered");
    let me = c.node_id as u64;
    if found.voters.contains_key(&me) && !c.can_vote {
        let e = format!("node.id {me} is a voter's: process.roles=broker is for a broker that does not vote");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e));
    }
    if found.voters.contains_key(&me) && !has_log {
        // Its vote and log are gone: voting again could elect two leaders
        // in one term.
        let e = format!(
            "node {me} is a voter of the quorum, but this data directory has no metadata log: \
             remove it (remove-controller), then start it and add it again (add-controller)"
        );
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    }
    c.voters = found.voters;
    Ok(Some(found.cluster_id))
}

/// The data dir's cluster id (`meta.properties`, written on first start):
/// `quorums` where a quorum named one (a node that joins), which a data
/// dir of another cluster must not hold.
fn cluster_id_of(data_dir: &Path, quorums: Option<String>, fresh: impl FnOnce() -> String) -> std::io::Result<String> {
    let id = cluster_id(data_dir, || quorums.clone().unwrap_or_else(fresh))?;
    match quorums {
        Some(q) if q != id => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("this data directory belongs to cluster {id}, but the metadata quorum is cluster {q}"),
        )),
        _ => Ok(id),
    }
}

/// A cluster node's quorum, and its controller listener (bound here, so
/// that a port in use is reported before anything starts).
fn cluster_quorum(c: &ClusterProcess) -> std::io::Result<(QuorumConfig, std::net::TcpListener)> {
    let listener = std::net::TcpListener::bind(c.controller).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot bind the controller listener {}: {e}", c.controller))
    })?;
    let config = QuorumConfig {
        id: c.node_id as u64,
        voters: c.voters.clone(),
        learner_addr: c.learner_addr.clone(),
        bootstrap: c.bootstrap.clone(),
        can_vote: c.can_vote,
        snapshots: Default::default(),
    };
    Ok((config, listener))
}

/// The cluster id every node of a quorum derives from its voter set.
fn derived_cluster_id(c: &ClusterProcess) -> String {
    let text = format!("{:?}", c.voters);
    let part = |salt: &str| crate::crc::crc32c(format!("{salt}{text}").as_bytes());
    format!("{:08x}{:08x}{:08x}", part("a"), part("b"), part("c"))[..22].to_string()
}

/// Why the broker could not start.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(
        "io_uring is unavailable ({0}).\n\
         sluice needs io_uring (Linux 5.8+) and {kib} KiB of lockable memory per shard.\n\
         - If running in a container, allow the io_uring syscalls (e.g. docker --security-opt seccomp=unconfined)\n\
         - Raise the locked-memory limit: `ulimit -l unlimited`, or LimitMEMLOCK=infinity in the systemd unit\n\
         - Check /proc/sys/kernel/io_uring_disabled is 0",
        kib = io_memory::MIN_IO_MEMORY >> 10
    )]
    IoUring(String),
    #[error("cannot start shard {shard}: {reason}")]
    Shard { shard: usize, reason: String },
    #[error("data directory {0} is in use by another sluice broker (its .lock is held)")]
    Locked(PathBuf),
    #[error("port {port} + {shards} shards exceeds 65535")]
    Ports { port: u16, shards: usize },
}

/// Creates the data dir if need be and locks it for the life of the
/// process: two brokers on one directory would corrupt each other's logs.
fn take_data_dir(data_dir: &Path) -> Result<(), BrokerError> {
    let dir_err = |source| BrokerError::DataDir { path: data_dir.to_path_buf(), source };
    std::fs::create_dir_all(data_dir).map_err(dir_err)?;
    let (lock, free) = lock_data_dir(data_dir).map_err(dir_err)?;
    if !free {
        return Err(BrokerError::Locked(data_dir.to_path_buf()));
    }
    std::mem::forget(lock);
    Ok(())
}

/// Reads or creates `meta.properties` and returns the cluster id.
fn cluster_id(data_dir: &Path, fresh: impl FnOnce() -> String) -> std::io::Result<String> {
    let path = data_dir.join("meta.properties");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
                return Ok(id.trim().to_string());
            }
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let id = fresh();
    let tmp = data_dir.join("meta.properties.tmp");
    std::fs::write(&tmp, format!("version=1\ncluster.id={id}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

/// Takes an exclusive `flock` on `<data-dir>/.lock`; the bool says whether
/// it was free. The lock goes with the process, even on kill -9.
fn lock_data_dir(data_dir: &Path) -> std::io::Result<(std::fs::File, bool)> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(data_dir.join(".lock"))?;
    // SAFETY: flock on an fd we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok((f, true));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok((f, false)) } else { Err(e) }
}

/// The CPUs this process may run on, to pin shards to.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    let cpus: Vec<usize> = if ok {
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() { vec![0] } else { cpus }
}

/// Default shard count: one per allowed core.
pub fn default_shards() -> usize {
    allowed_cpus().len()
}

/// Asks the kernel for a small io_uring directly. glommio panics (and the
/// release build aborts) when the ring cannot be made, so this must come
/// first: it turns EPERM (seccomp, `kernel.io_uring_disabled`) or ENOSYS into
/// an error with advice.
fn probe_kernel_io_uring() -> Result<(), BrokerError> {
    // struct io_uring_params is 120 bytes; zeroed means "defaults".
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes `params` (120 bytes) only.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(BrokerError::IoUring(format!("io_uring_setup: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: fd is a ring descriptor this function owns.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// Fails early, with advice, if io_uring cannot be set up here.
fn probe_io_uring() -> Result<(), BrokerError> {
    probe_kernel_io_uring()?;
    let made = std::panic::catch_unwind(|| {
        LocalExecutorBuilder::new(Placement::Unbound).io_memory(io_memory::MIN_IO_MEMORY).make()
    });
    match made {
        Ok(Ok(ex)) => {
            drop(ex);
            Ok(())
        }
        Ok(Err(e)) => Err(BrokerError::IoUring(e.to_string())),
        Err(_) => Err(BrokerError::IoUring("executor setup panicked".into())),
    }
}

/// Keeps glibc from handing large freed blocks (request buffers, DMA
/// chunks of 256 KiB to a few MiB) back to the kernel: otherwise each new
/// one is a fresh mmap whose every page faults on first touch, which cost a
/// shard more CPU than the data copies on the produce path. The memory stays
/// bounded by what the shards hold at their peak.
/// Returns whether glibc took both settings.
fn keep_freed_memory() -> bool {
    // SAFETY: mallopt only sets allocator parameters; it runs before any
    // other thread is started.
    unsafe {
        // 32 MiB is the most glibc accepts on 64-bit (64 MiB was refused,
        // leaving its dynamic threshold).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20) == 1
    }
}

/// Runs the broker until SIGTERM or SIGINT (clean shutdown) or a kill.
pub fn run(mut opts: BrokerOptions) -> Result<(), BrokerError> {
    // Before any thread exists, so that all of them inherit the mask.
    let signals = shutdown::block_signals();
    let dir_err = |source| BrokerError::DataDir { path: opts.data_dir.clone(), source };
    if usize::from(opts.port) + opts.shards > 65536 {
        return Err(BrokerError::Ports { port: opts.port, shards: opts.shards });
    }
    take_data_dir(&opts.data_dir)?;
    let quorums_id = match opts.cluster.as_mut() {
        Some(c) => discover_quorum(c, &opts.data_dir).map_err(dir_err)?,
        None => None,
    };
    probe_io_uring()?;
    match descriptors::raise_limit() {
        Ok(r) => info!(before = r.before, now = r.now, hard = r.hard, "file descriptor limit (RLIMIT_NOFILE)"),
        Err(e) => warn!("cannot raise the file descriptor limit: {e}"),
    }
    if !keep_freed_memory() {
        warn!("glibc refused the malloc settings that keep freed buffers for reuse");
    }
    let cluster_id = cluster_id_of(&opts.data_dir, quorums_id, || opts.fresh_cluster_id()).map_err(dir_err)?;
    crate::storage::iopoll_probe::prepare(&opts.data_dir).map_err(dir_err)?;
    let clean_start = shutdown::take_marker(&opts.data_dir).map_err(dir_err)?;
    let checkpointed = Arc::new(hw_checkpoint_task::previous(&opts.data_dir));
    let (quorum, controller_listener) = opts.quorum().map_err(dir_err)?;
    let me = BrokerReg {
        id: opts.broker_id(),
        nodes: Vec::new(),
        shards: opts.shards,
        host: opts.advertised_host.clone(),
        port: opts.port,
        rack: opts.settings.rack().map(str::to_string),
        fenced: false,
    };
    let Opened { controller, snapshot, node_settings, nodes, quorum_view } = Controller::open(
        opts.data_dir.clone(),
        cluster_id.clone(),
        me,
        opts.settings.clone(),
        quorum,
        controller_listener,
    )
    .map_err(dir_err)?;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..opts.shards).map(|_| flume::bounded(64)).unzip();
    let shard_commands = senders.clone();
    let handle = controller.spawn(senders).map_err(dir_err)?;
    let endpoints = Arc::new(Endpoints { advertised_host: opts.advertised_host.clone(), bind_host: opts.host });
    let cpus = allowed_cpus();
    let arena = io_memory::plan(opts.cache_bytes, opts.shards);
    match &arena.limited_by {
        None => info!(
            bytes = arena.per_shard,
            "each shard registers its I/O buffers with io_uring (glommio warns if the kernel refuses)"
        ),
        Some(why) => warn!(
            "{why}: each shard registers only {} KiB of I/O buffers, and appends run slower \
             (raise it with `ulimit -l unlimited` or LimitMEMLOCK=infinity, or grant CAP_IPC_LOCK)",
            arena.per_shard >> 10
        ),
    }
    let mut joins = Vec::new();
    let mut readies = Vec::new();
    for (k, commands) in receivers.into_iter().enumerate() {
        let (ready_tx, ready_rx) = flume::bounded(1);
        readies.push(ready_rx);
        let setup = ShardSetup {
            node_id: nodes[k],
            snapshot: snapshot.clone(),
            quorum: quorum_view.clone(),
            controller: handle.clone(),
            settings: node_settings[k].clone(),
            endpoints: endpoints.clone(),
            data_dir: opts.data_dir.clone(),
            clean_start,
            cache_bytes: opts.cache_bytes,
            checkpointed: checkpointed.clone(),
        };
        let bind = SocketAddr::new(opts.host, opts.port + k as u16);
        let join = LocalExecutorBuilder::new(Placement::Fixed(cpus[k % cpus.len()]))
            .name(&format!("shard-{k}"))
            .io_memory(arena.per_shard)
            .spawn(move || async move {
                shard::run(Rc::new(ShardCtx::new(setup)), commands, bind, ready_tx).await;
            })
            .map_err(|e| BrokerError::Shard { shard: k, reason: e.to_string() })?;
        joins.push(join);
    }
    for (k, ready) in readies.into_iter().enumerate() {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(BrokerError::Shard { shard: k, reason }),
            Err(_) => {
                let reason = match joins.remove(k).join() {
                    Err(e) => e.to_string(),
                    Ok(()) => "exited during start-up".to_string(),
                };
                return Err(BrokerError::IoUring(format!("shard {k}: {reason}")));
            }
        }
    }
    info!(
        shards = opts.shards,
        host = %opts.host,
        ports = %format!("{}..={}", opts.port, opts.port as usize + opts.shards - 1),
        advertised = %opts.advertised_host,
        data_dir = %opts.data_dir.display(),
        cluster_id = %cluster_id,
        clean_start,
        "sluice broker ready"
    );
    let interval = Duration::from_millis(opts.settings.hw_checkpoint_interval_ms());
    hw_checkpoint_task::spawn(shard_commands.clone(), opts.data_dir.clone(), interval).map_err(dir_err)?;
    let sig = shutdown::wait_for_signal(&signals);
    info!(signal = sig, "shutting down");
    // A controlled shutdown tells the quorum first, so that clients are no
    // longer sent here while the shards stop.
    if let Err(e) = handle.leave_blocking() {
        warn!("could not tell the metadata quorum this broker is stopping: {e}");
    }
    shutdown::shut_down(&shard_commands, &opts.data_dir);
    // Shard threads end with the process.
    drop(joins);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_takes_the_malloc_settings() {
        assert!(super::keep_freed_memory());
    }
}
