//! `sluice-bench`: a load generator that speaks the Kafka protocol to any
//! Kafka-compatible cluster (sluice, Apache Kafka, Redpanda, ...).
//!
//! Modes: `produce`, `consume` and `e2e` (produce-to-consume latency). Every
//! request carries one pre-built record batch (no per-record work). With
//! `--rate` the producers run open loop: request k of a producer is due at
//! start + k * interval whether or not earlier ones returned, and its latency
//! counts from that due time, so a stalled broker shows in the tail instead
//! of being hidden by the client waiting (coordinated omission). Without
//! `--rate` each connection keeps `--inflight` requests outstanding.
//! Latencies go into HDR histograms; the run prints a line per second and a
//! summary, and leaves `.hgrm` distributions, `summary.json` and
//! `latency.svg` in `--output`.

mod batch;
mod report;
mod stats;
mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kafka_protocol::records::Compression;

use batch::Template;
use sluice::client::codec_by_name;
use sluice::client::partitioner::partition_for_key;
use stats::{Counters, Latency, percentiles_ms};
use wire::Requests;

/// Command line.
#[derive(Parser)]
#[command(name = "sluice-bench", about = "Load generator for Kafka-compatible brokers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce and report throughput and produce latency.
    ///
    /// Example: sluice-bench produce --bootstrap 127.0.0.1:9092 --rate 20000 --duration 30 --output out/
    Produce(Opts),
    /// Consume a topic (from the earliest offset) and report throughput and fetch latency.
    ///
    /// Example: sluice-bench consume --bootstrap 127.0.0.1:9092 --topic t --records 1000000
    Consume(Opts),
    /// Produce and consume at once and report produce-to-consume latency.
    ///
    /// Example: sluice-bench e2e --bootstrap 127.0.0.1:9092 --rate 20000 --duration 30
    E2e(Opts),
}

/// How record keys (and so partitions) are chosen, per batch.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Keys {
    /// No key: partitions in turn.
    None,
    /// Uniformly random keys.
    Uniform,
    /// Zipf-distributed keys (s = 1): a few hot partitions.
    Zipf,
}

#[derive(Args, Clone)]
struct Opts {
    /// host:port of any broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "sluice-bench")]
    topic: String,
    /// Partitions to create the topic with and to use.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Topic configs for creation, key=value (repeatable).
    #[arg(long = "topic-config")]
    topic_configs: Vec<String>,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Key distribution (chooses each batch's key and partition).
    #[arg(long, value_enum, default_value = "none")]
    keys: Keys,
    /// Distinct keys for uniform/zipf.
    #[arg(long, default_value_t = 1000)]
    key_space: u64,
    /// Producer connections (threads).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// acks: 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Compression of the pre-built batch: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Records per batch (one batch per Produce request).
    #[arg(long, default_value_t = 256)]
    batch_records: usize,
    /// With --rate: send a smaller batch at least this often (ms), as a
    /// producer's linger.ms would.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Produce requests in flight per connection (max-throughput mode).
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Target rate in records/s over all producers (open loop); 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to run (after warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop after this many records instead (consume: records to read).
    #[arg(long)]
    records: Option<u64>,
    /// Seconds excluded from the figures at the start.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// consume: start over from the first offset whenever every partition is
    /// read to its end (re-reads recent data: measures the broker's cache).
    #[arg(long)]
    rewind: bool,
    /// Directory for latency .hgrm files, summary.json and latency.svg.
    #[arg(long)]
    output: Option<PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Produce,
    Consume,
    E2e,
}

/// What the threads share.
struct Run {
    opts: Opts,
    mode: Mode,
    counters: Counters,
    produce: Latency,
    fetch: Latency,
    e2e: Latency,
    /// Producers stop sending.
    stop_producing: AtomicBool,
    /// Consumers stop fetching.
    stop_consuming: AtomicBool,
    /// Warm-up is over: figures count from here.
    measuring: AtomicBool,
}

fn codec(name: &str) -> Result<Compression, wire::BenchError> {
    codec_by_name(name).ok_or_else(|| wire::BenchError::Protocol(format!("unknown compression {name}")))
}

/// xorshift64*, for key choice (not per record).
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Per batch: which key (if any), hence which template and partition.
struct KeyChooser {
    keys: Keys,
    space: u64,
    zipf_norm: f64,
    rng: Rng,
    turn: usize,
}

impl KeyChooser {
    fn new(keys: Keys, space: u64, seed: u64) -> Self {
        let zipf_norm = (1..=space.max(1)).map(|k| 1.0 / k as f64).sum();
        Self { keys, space: space.max(1), zipf_norm, rng: Rng(seed | 1), turn: seed as usize }
    }
    fn next(&mut self) -> Option<u64> {
        match self.keys {
            Keys::None => None,
            Keys::Uniform => Some((self.rng.next_f64() * self.space as f64) as u64 % self.space),
            Keys::Zipf => {
                // Inverse CDF by walking: fine for key spaces of thousands.
                let target = self.rng.next_f64() * self.zipf_norm;
                let mut acc = 0.0;
                for k in 1..=self.space {
                    acc += 1.0 / k as f64;
                    if acc >= target {
                        return Some(k - 1);
                    }
                }
                Some(self.space - 1)
            }
        }
    }
}

/// Most pre-encoded produce requests a producer keeps (per key and
/// partition); beyond it requests are encoded as they go.
const MAX_FRAMES: usize = 64;

/// A producer's connection to one leader: the writing half, the queue of
/// due times its reader thread matches responses to, and that thread.
type LeaderConn = (wire::Conn, mpsc::SyncSender<(Instant, u64)>, std::thread::JoinHandle<Result<(), wire::BenchError>>);

/// One producer thread: its own connection per partition leader, a reader
/// thread per connection matching responses to their due times.
fn producer(run: Arc<Run>, id: usize, leaders: Vec<String>, per_batch: usize) -> Result<(), wire::BenchError> {
    let o = &run.opts;
    let compression = codec(&o.compression)?;
    let partitions = leaders.len();
    let mut conns: BTreeMap<String, LeaderConn> = BTreeMap::new();
    for addr in &leaders {
        if conns.contains_key(addr) {
            continue;
        }
        let conn = wire::connect(addr)?;
        let mut stream = conn.reader()?;
        // Bounded by --inflight in max mode; in rate mode the queue only
        // limits memory (sends are on schedule).
        let depth = if o.rate > 0 { 100_000 } else { o.inflight.max(1) };
        let (tx, rx) = mpsc::sync_channel::<(Instant, u64)>(depth);
        let r = run.clone();
        let acks0 = o.acks == 0;
        let reader = std::thread::spawn(move || -> Result<(), wire::BenchError> {
            while let Ok((due, records)) = rx.recv() {
                if !acks0 {
                    let errors = wire::read_produce_response(&mut stream)?;
                    if errors > 0 {
                        Counters::add(&r.counters.errors, records);
                        continue;
                    }
                    if r.measuring.load(Ordering::Relaxed) {
                        r.produce.record(due.elapsed().as_micros() as u64, 1);
                    }
                }
                Counters::add(&r.counters.acked, records);
                if r.measuring.load(Ordering::Relaxed) && r.mode != Mode::Consume {
                    Counters::add(&r.counters.measured, records);
                    Counters::add(&r.counters.measured_bytes, records * o_size(&r));
                }
            }
            Ok(())
        });
        conns.insert(addr.clone(), (conn, tx, reader));
    }
    // Templates: one per key (or one without), and pre-encoded frames for
    // produce mode (no stamping needed there).
    let mut chooser = KeyChooser::new(o.keys, o.key_space, 0x9e37_79b9 ^ id as u64);
    let mut templates: BTreeMap<Option<u64>, Template> = BTreeMap::new();
    let mut frames: BTreeMap<(Option<u64>, usize), BytesMut> = BTreeMap::new();
    let interval =
        (o.rate > 0).then(|| Duration::from_secs_f64(per_batch as f64 / (o.rate as f64 / o.producers as f64)));
    let start = Instant::now();
    let mut k: u64 = 0;
    while !run.stop_producing.load(Ordering::Relaxed) {
        if let Some(n) = o.records
            && run.counters.claimed.fetch_add(per_batch as u64, Ordering::Relaxed) >= n
        {
            break;
        }
        let due = match interval {
            Some(iv) => {
                let due = start + iv.mul_f64(k as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                due
            }
            None => Instant::now(),
        };
        k += 1;
        let key = chooser.next();
        let partition = match key {
            None => {
                chooser.turn = chooser.turn.wrapping_add(1);
                chooser.turn % partitions
            }
            Some(key) => partition_for_key(format!("key-{key}").as_bytes(), partitions),
        };
        let template = templates.entry(key).or_insert_with(|| {
            Template::new(per_batch, o.record_size, key.map(|k| Bytes::from(format!("key-{k}"))), compression)
        });
        let (conn, tx, _) = conns.get_mut(&leaders[partition]).expect("a connection per leader");
        // In max mode this blocks while --inflight requests are outstanding.
        if tx.send((due, per_batch as u64)).is_err() {
            break;
        }
        // The request is encoded once per (key, partition) and re-sent,
        // stamped in place: no copy of the batch per request (the harness
        // shares the machine with the broker it measures).
        if frames.len() < MAX_FRAMES || frames.contains_key(&(key, partition)) {
            let frame = frames
                .entry((key, partition))
                .or_insert_with(|| conn.produce_request(&o.topic, partition as i32, o.acks, &template.stamped(0)));
            let at = frame.len() - template.byte_len();
            template.stamp(&mut frame[at..], batch::now_us());
            conn.send_frame(frame)?;
        } else {
            let batch = template.stamped(batch::now_us());
            let mut frame = conn.produce_request(&o.topic, partition as i32, o.acks, &batch);
            conn.send_frame(&mut frame)?;
        }
        Counters::add(&run.counters.sent, per_batch as u64);
    }
    for (_, (_, tx, reader)) in conns {
        drop(tx);
        reader.join().map_err(|_| wire::BenchError::Protocol("a reader thread panicked".into()))??;
    }
    Ok(())
}

fn o_size(r: &Run) -> u64 {
    r.opts.record_size as u64
}

/// One consumer thread per leader node: fetches its partitions from `start`.
fn consumer(run: Arc<Run>, addr: String, mut positions: Vec<(i32, i64)>) -> Result<(), wire::BenchError> {
    let mut conn = wire::connect(&addr)?;
    let start = positions.clone();
    let mut sent = Vec::new();
    while !run.stop_consuming.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let parts = conn.fetch(&run.opts.topic, &positions, 100)?;
        let fetch_us = t0.elapsed().as_micros() as u64;
        let now_us = batch::now_us();
        let mut got = 0u64;
        let mut at_end = true;
        for (p, err, hw, data) in parts {
            if err != 0 {
                return Err(wire::BenchError::Protocol(format!("fetch error {err} on partition {p}")));
            }
            sent.clear();
            batch::sent_times(&data, &mut sent);
            let mut last = None;
            let mut rest: &[u8] = &data;
            while let Some(p) = sluice::batch::peek(rest).filter(|p| p.total_len <= rest.len()) {
                last = Some(p.last_offset);
                rest = &rest[p.total_len..];
            }
            if let Some(last) = last
                && let Some(pos) = positions.iter_mut().find(|(q, _)| *q == p)
            {
                pos.1 = last + 1;
            }
            if positions.iter().any(|(q, o)| *q == p && *o < hw) {
                at_end = false;
            }
            for &(sent_us, count) in &sent {
                got += count;
                if run.mode == Mode::E2e && run.measuring.load(Ordering::Relaxed) {
                    run.e2e.record((now_us - sent_us).max(1) as u64, count);
                }
            }
        }
        Counters::add(&run.counters.consumed, got);
        if run.opts.rewind && at_end {
            positions.clone_from(&start);
        }
        if run.measuring.load(Ordering::Relaxed) {
            if got > 0 {
                run.fetch.record(fetch_us, 1);
            }
            if run.mode == Mode::Consume {
                Counters::add(&run.counters.measured, got);
                Counters::add(&run.counters.measured_bytes, got * o_size(&run));
            }
        }
    }
    Ok(())
}

fn line(label: &str, h: &hdrhistogram::Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("{label} -");
    }
    let [p50, p95, p99, p999, max, mean] = percentiles_ms(h);
    format!("{label} avg {mean:.2} p50 {p50:.2} p95 {p95:.2} p99 {p99:.2} p99.9 {p999:.2} max {max:.2} ms")
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn run(mode: Mode, opts: Opts) -> Result<(), wire::BenchError> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut admin = wire::connect(&opts.bootstrap)?;
    let configs: Vec<(String, String)> =
        opts.topic_configs.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
    if mode != Mode::Consume {
        admin.create_topic(&opts.topic, opts.partitions, &configs)?;
    }
    let leaders = admin.leaders(&opts.topic, opts.partitions)?;
    // In rate mode a batch holds what arrives in one linger interval (at most --batch-records).
    let per_batch = if opts.rate > 0 {
        let per_producer = opts.rate as f64 / opts.producers.max(1) as f64;
        ((per_producer * opts.linger_ms as f64 / 1000.0).ceil() as usize).clamp(1, opts.batch_records)
    } else {
        opts.batch_records
    };
    let run = Arc::new(Run {
        opts: opts.clone(),
        mode,
        counters: Counters::default(),
        produce: Latency::new("produce"),
        fetch: Latency::new("fetch"),
        e2e: Latency::new("end-to-end"),
        stop_producing: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
        measuring: AtomicBool::new(opts.warmup == 0),
    });
    let mut consumers = Vec::new();
    if mode != Mode::Produce {
        let mut by_node: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (p, a) in leaders.iter().enumerate() {
            by_node.entry(a.clone()).or_default().push(p as i32);
        }
        for (addr, parts) in by_node {
            let mut c = wire::connect(&addr)?;
            let start = c.list_offsets(&opts.topic, &parts, if mode == Mode::E2e { -1 } else { -2 })?;
            let r = run.clone();
            consumers.push(std::thread::spawn(move || consumer(r, addr, start)));
        }
    }
    let mut producers = Vec::new();
    if mode != Mode::Consume {
        for id in 0..opts.producers.max(1) {
            let (r, l) = (run.clone(), leaders.clone());
            producers.push(std::thread::spawn(move || producer(r, id, l, per_batch)));
        }
    }
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let mut measure_start = Instant::now();
    let mut last = (0u64, Instant::now());
    let headline = if mode == Mode::E2e {
        &run.e2e
    } else if mode == Mode::Consume {
        &run.fetch
    } else {
        &run.produce
    };
    let mut tick = 0u64;
    let mut recent: VecDeque<String> = VecDeque::new();
    let count_done = || {
        opts.records.is_some_and(|n| {
            if mode == Mode::Consume {
                Counters::get(&run.counters.consumed) >= n
            } else {
                producers.iter().all(|t| t.is_finished())
            }
        })
    };
    loop {
        // A report a second; a run with --records ends as soon as it is done.
        let tick_start = Instant::now();
        while tick_start.elapsed() < Duration::from_secs(1) && !count_done() && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        tick += 1;
        if !run.measuring.load(Ordering::Relaxed) && t0.elapsed() >= Duration::from_secs(opts.warmup) {
            for l in [&run.produce, &run.fetch, &run.e2e] {
                l.reset();
            }
            run.measuring.store(true, Ordering::Relaxed);
            measure_start = Instant::now();
            last = (Counters::get(&run.counters.measured), Instant::now());
            println!("warm-up of {}s done", opts.warmup);
            continue;
        }
        let now = Instant::now();
        let m = Counters::get(&run.counters.measured);
        let rate = (m - last.0) as f64 / (now - last.1).as_secs_f64();
        let l = format!(
            "{:>6.1}s {:>10.0} rec/s {:>8.1} MB/s  {}",
            (now - t0).as_secs_f64(),
            rate,
            rate * opts.record_size as f64 / 1e6,
            line(headline.name, &headline.take_interval())
        );
        println!("{l}");
        recent.push_back(l);
        if recent.len() > 3 {
            recent.pop_front();
        }
        last = (m, now);
        let measuring = run.measuring.load(Ordering::Relaxed);
        let done_by_time =
            opts.records.is_none() && measuring && measure_start.elapsed() >= Duration::from_secs(opts.duration);
        let done_by_count = count_done();
        let failed = producers.iter().chain(consumers.iter()).any(|t| t.is_finished());
        if STOP.load(Ordering::SeqCst) || done_by_time || done_by_count || failed || tick > 86_400 {
            break;
        }
    }
    let measured_secs = measure_start.elapsed().as_secs_f64();
    run.stop_producing.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for t in producers {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("a producer thread panicked".into()),
        }
    }
    // e2e: let the consumers catch up with everything acknowledged.
    if mode == Mode::E2e {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Counters::get(&run.counters.consumed) < Counters::get(&run.counters.acked) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    run.stop_consuming.store(true, Ordering::Relaxed);
    for t in consumers {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("a consumer thread panicked".into()),
        }
    }
    let cpu = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    let c = &run.counters;
    let measured = Counters::get(&c.measured);
    let rec_s = measured as f64 / measured_secs;
    let mb_s = Counters::get(&c.measured_bytes) as f64 / measured_secs / 1e6;
    println!(
        "{measured} records in {measured_secs:.1}s, {rec_s:.0} records/sec ({mb_s:.2} MB/sec); sent {}, acknowledged {}, consumed {}, errors {}",
        Counters::get(&c.sent),
        Counters::get(&c.acked),
        Counters::get(&c.consumed),
        Counters::get(&c.errors)
    );
    let (hp, hf, he) = (run.produce.total(), run.fetch.total(), run.e2e.total());
    for (label, h) in [("produce latency", &hp), ("fetch latency", &hf), ("end-to-end latency", &he)] {
        if !h.is_empty() {
            println!("{}", line(label, h));
        }
    }
    println!(
        "\n{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "p50", "p90", "p95", "p99", "p99.9", "p99.99", "max"
    );
    for (label, h) in [("produce", &hp), ("fetch", &hf), ("end-to-end", &he)] {
        if !h.is_empty() {
            let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
            println!(
                "{label:<22} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                q(0.5),
                q(0.9),
                q(0.95),
                q(0.99),
                q(0.999),
                q(0.9999),
                h.max() as f64 / 1000.0
            );
        }
    }
    println!("harness CPU: {cpu:.2} cores");
    if let Some(dir) = &opts.output {
        let mode_name = match mode {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        };
        let mut series = Vec::new();
        let mut latencies = serde_json::Map::new();
        for (file, name, h) in [
            ("produce-latency.hgrm", "produce", &hp),
            ("fetch-latency.hgrm", "fetch", &hf),
            ("e2e-latency.hgrm", "end_to_end", &he),
        ] {
            if !h.is_empty() {
                report::write(dir, file, &report::hgrm(h))?;
                latencies.insert(name.into(), report::latency_json(h));
                series.push((name, h));
            }
        }
        let summary = serde_json::json!({
            "mode": mode_name, "topic": opts.topic, "partitions": opts.partitions, "record_size": opts.record_size,
            "records_per_batch": per_batch, "producers": opts.producers, "acks": opts.acks,
            "compression": opts.compression, "target_rate": opts.rate, "warmup_s": opts.warmup,
            "measured_s": measured_secs, "records": measured, "records_per_s": rec_s, "mb_per_s": mb_s,
            "sent": Counters::get(&c.sent), "acknowledged": Counters::get(&c.acked),
            "consumed": Counters::get(&c.consumed), "errors": Counters::get(&c.errors),
            "harness_cpu_cores": cpu, "latency": latencies, "interrupted": STOP.load(Ordering::SeqCst),
        });
        report::write(dir, "summary.json", &serde_json::to_string_pretty(&summary).expect("json"))?;
        report::write(
            dir,
            "latency.svg",
            &report::svg(&format!("sluice-bench {mode_name}: latency by percentile"), &series),
        )?;
        println!("wrote {}/{{summary.json,latency.svg,*.hgrm}}", dir.display());
    }
    if !errors.is_empty() {
        return Err(wire::BenchError::Protocol(errors.join("; ")));
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Produce(o) => run(Mode::Produce, o),
        Command::Consume(o) => run(Mode::Consume, o),
        Command::E2e(o) => run(Mode::E2e, o),
    };
    if let Err(e) = result {
        eprintln!("sluice-bench: error: {e}");
        std::process::exit(1);
    }
}
