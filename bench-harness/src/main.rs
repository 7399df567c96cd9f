//! `sluice-bench`: a load generator that speaks the Kafka protocol to any
//! Kafka-compatible broker. This first cut has one mode, `produce`, at the
//! maximum rate: one connection per partition leader, one pre-built record
//! batch re-sent with pipelined Produce requests, no per-record work. The full
//! harness (target rates, HDR histograms, consume and e2e modes) is issue 7.

mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

/// Command line.
#[derive(Parser)]
#[command(name = "sluice-bench", about = "Load generator for Kafka-compatible brokers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce at the maximum rate and report throughput.
    Produce(ProduceArgs),
}

#[derive(Parser, Clone)]
struct ProduceArgs {
    /// host:port of any broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "sluice-bench")]
    topic: String,
    /// Partitions to create the topic with and to produce to.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per batch (one batch per Produce request).
    #[arg(long, default_value_t = 256)]
    batch_records: usize,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// acks: 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Topic configs for creation, key=value (repeatable).
    #[arg(long = "topic-config")]
    topic_configs: Vec<String>,
}

fn produce(args: ProduceArgs) -> Result<(), wire::BenchError> {
    let mut admin = wire::Conn::connect(&args.bootstrap)?;
    let configs: Vec<(String, String)> =
        args.topic_configs.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
    admin.create_topic(&args.topic, args.partitions, &configs)?;
    let leaders = admin.leaders(&args.topic, args.partitions)?;
    let batch = wire::record_batch(args.batch_records, args.record_size);
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let latency_us = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for (partition, addr) in leaders.into_iter().enumerate() {
        let (args, batch, stop, records, requests, latency_us) =
            (args.clone(), batch.clone(), stop.clone(), records.clone(), requests.clone(), latency_us.clone());
        threads.push(std::thread::spawn(move || -> Result<(), wire::BenchError> {
            let mut conn = wire::Conn::connect(&addr)?;
            let request = conn.produce_request(&args.topic, partition as i32, args.acks, &batch);
            conn.pipeline(&request, args.inflight, args.acks == 0, &stop, |lat| {
                records.fetch_add(args.batch_records as u64, Ordering::Relaxed);
                requests.fetch_add(1, Ordering::Relaxed);
                latency_us.fetch_add(lat.as_micros() as u64, Ordering::Relaxed);
            })
        }));
    }
    let start = Instant::now();
    let mut last = (0u64, start);
    let bytes_per_record = args.record_size as f64;
    while start.elapsed() < Duration::from_secs(args.duration) {
        std::thread::sleep(Duration::from_secs(1));
        let now = Instant::now();
        let total = records.load(Ordering::Relaxed);
        let rate = (total - last.0) as f64 / (now - last.1).as_secs_f64();
        println!(
            "{:>6.1}s  {:>10.0} rec/s  {:>8.1} MiB/s",
            (now - start).as_secs_f64(),
            rate,
            rate * bytes_per_record / 1048576.0
        );
        last = (total, now);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| wire::BenchError::Protocol("a producer thread panicked".into()))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let total = records.load(Ordering::Relaxed) as f64;
    let reqs = requests.load(Ordering::Relaxed).max(1) as f64;
    println!(
        "produce: {} partitions, {} B records, {} per batch, {} in flight, acks={}: {:.0} rec/s, {:.1} MiB/s, mean request latency {:.2} ms",
        args.partitions,
        args.record_size,
        args.batch_records,
        args.inflight,
        args.acks,
        total / secs,
        total * bytes_per_record / 1048576.0 / secs,
        latency_us.load(Ordering::Relaxed) as f64 / reqs / 1000.0
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Produce(args) => produce(args),
    };
    if let Err(e) = result {
        eprintln!("sluice-bench: error: {e}");
        std::process::exit(1);
    }
}
