//! DescribeLogDirs: the broker's one log directory (the data dir), its
//! total and usable bytes, and the size of each partition this node (shard)
//! holds, as leader or follower. The offset lag of a leader's own replica
//! is 0, as Kafka reports it; a follower's is how far its log end trails
//! the high watermark its leader last sent it.

use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::broker::context::ShardCtx;
use crate::protocol::ErrorCode;

/// Answers DescribeLogDirs (a null topic list asks for every partition).
pub async fn handle(ctx: &ShardCtx, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let dir = log_dir(&ctx.setup.data_dir);
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(dir.clone()))
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    let result = match space(dir).await {
        Ok((total, usable)) => result.with_total_bytes(total).with_usable_bytes(usable),
        Err(e) => {
            tracing::warn!("cannot read the data dir's free space: {e}");
            result.with_error_code(ErrorCode::KafkaStorageError.code())
        }
    };
    let topics = partitions(ctx, &req);
    DescribeLogDirsResponse::default().with_results(vec![result.with_topics(topics)])
}

/// The data dir as an absolute path, as Kafka names its log dirs.
pub fn log_dir(data_dir: &Path) -> String {
    std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()).to_string_lossy().into_owned()
}

/// Total and usable bytes of the file system holding `dir`, read on the
/// shard's blocking thread (statvfs may wait on the disk).
async fn space(dir: String) -> std::io::Result<(i64, i64)> {
    glommio::executor()
        .spawn_blocking(move || {
            let c = std::ffi::CString::new(dir).map_err(std::io::Error::other)?;
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: `c` is a valid C string and `st` a writable statvfs.
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let block = st.f_frsize as i64;
            Ok((block.saturating_mul(st.f_blocks as i64), block.saturating_mul(st.f_bavail as i64)))
        })
        .await
}

/// The requested partitions this shard holds, with their sizes and lags.
fn partitions(ctx: &ShardCtx, req: &DescribeLogDirsRequest) -> Vec<DescribeLogDirsTopic> {
    let meta = ctx.setup.snapshot.load();
    let wanted: Vec<(String, Option<&[i32]>)> = match &req.topics {
        None => meta.topics.keys().map(|n| (n.clone(), None)).collect(),
        Some(ts) => ts.iter().map(|t| (t.topic.to_string(), Some(t.partitions.as_slice()))).collect(),
    };
    let mut out = Vec::new();
    for (name, only) in wanted {
        let Some(topic) = meta.topic(&name) else { continue };
        let indexes: Vec<i32> = match only {
            Some(list) => list.to_vec(),
            None => (0..topic.leaders.len() as i32).collect(),
        };
        let parts: Vec<_> = indexes
            .into_iter()
            .filter_map(|p| ctx.partition(topic, p).map(|log| (p, log)))
            .map(|(p, log)| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p)
                    .with_partition_size(log.size_bytes() as i64)
                    .with_offset_lag(log.lag_behind_leader())
            })
            .collect();
        if !parts.is_empty() {
            out.push(DescribeLogDirsTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(parts));
        }
    }
    out
}
