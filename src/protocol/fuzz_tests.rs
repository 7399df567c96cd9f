//! A bounded mutation fuzzer that runs with the unit tests (so in CI): it
//! takes the seed corpus in `fuzz/corpus/` (request frames and record
//! batches as real clients build them; `fuzz/make_corpus.py` writes it),
//! mutates inputs at random and feeds them to everything that parses bytes
//! from the network: request framing and decoding, record-batch validation,
//! recompression (the decompressors) and `__consumer_offsets` record decoding.
//! Any panic fails the test and leaves the input in `target/fuzz-crashes/`.
//!
//! Not `cargo fuzz`: that needs a nightly toolchain and an unbounded run;
//! this runs on stable for `SLUICE_FUZZ_SECS` seconds (default 8) from a
//! fixed seed, so CI is repeatable; `SLUICE_FUZZ_SEED=random` (or a number)
//! explores further, and the seed is printed so any failure can be replayed.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Compression;

use super::{batch, batch_walk, frame, rewrite};
use crate::group::record;
use crate::storage::compaction;

/// xorshift64*: small, fast and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that tend to break length and count handling.
const INTERESTING: &[i32] = &[0, -1, 1, 0x7f, 0x80, 0xff, 0x7fff, -0x8000, 0x7fff_ffff, i32::MIN, 61, 4096];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len().max(1);
        match rng.below(8) {
            0 if !b.is_empty() => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(len);
                b[i] = rng.next() as u8;
            }
            2 if b.len() >= 4 => {
                let i = rng.below(b.len() - 3);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                b[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 if b.len() >= 2 => {
                let i = rng.below(b.len() - 1);
                let v = INTERESTING[rng.below(INTERESTING.len())] as i16;
                b[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            4 => b.truncate(rng.below(len)),
            5 => {
                let i = rng.below(len);
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                let at = i.min(b.len());
                b.splice(at..at, extra);
            }
            6 if !b.is_empty() => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16)).min(b.len());
                b.drain(from..to);
            }
            _ => {
                // Splice in a piece of another input.
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + rng.below(64)).min(other.len());
                    let at = rng.below(len).min(b.len());
                    b.splice(at..at, other[from..to].iter().copied());
                }
            }
        }
    }
    b
}

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} missing: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("corpus file")).collect();
    assert!(!inputs.is_empty(), "empty fuzz corpus {}", dir.display());
    inputs
}

fn exercise_batch(b: &[u8]) {
    let _ = batch::peek(b);
    if let Ok(h) = batch::parse_header(b) {
        let _ = super::batch_walk::first_at_or_after(b, &h, 1, 1 << 20);
    }
    if let Ok(headers) = batch::validate_all(b) {
        let mut copy = b.to_vec();
        rewrite::stamp_log_append_time(&mut copy, 1);
        batch::validate_all(&copy).expect("stamping keeps a valid batch valid");
        let mut at = 0;
        for h in &headers {
            let one = &b[at..at + h.total_len];
            at += h.total_len;
            exercise_walked(one, h);
        }
    }
    // Whatever reads a stored log must take anything without panicking.
    let latest = compaction::note_window(b);
    let _ = compaction::clean_window(&latest, b, 0);
}

/// A batch whose records the walk accepts must recompress into a batch
/// that is valid and walks the same.
fn exercise_walked(one: &[u8], h: &batch::BatchHeader) {
    const MAX: usize = 4 << 20;
    let Ok(facts) = batch_walk::check(one, h, MAX) else {
        return;
    };
    for codec in [Compression::None, Compression::Zstd] {
        let out = rewrite::recompress(one, h, codec, MAX, MAX).expect("a walked batch recompresses");
        let nh = batch::validate(&out).expect("a recompressed batch is valid");
        let again = batch_walk::check(&out, &nh, MAX).expect("a recompressed batch walks");
        assert_eq!(again.null_key, facts.null_key);
    }
}

/// Input: a 2-byte key length, the key, then the value.
fn exercise_records(b: &[u8]) {
    let Some((len, rest)) = b.split_at_checked(2) else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(u16::from_be_bytes([len[0], len[1]])).min(rest.len()));
    if let Ok(key) = record::decode_key(key) {
        let _ = record::decode_value(&key, value);
    }
}

fn record_input(key: &record::RecordKey, value: &record::RecordValue) -> Vec<u8> {
    let (k, v) = (record::encode_key(key), record::encode_value(value));
    let mut b = (k.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(&k);
    b.extend_from_slice(&v);
    b
}

fn budget() -> Duration {
    let secs = std::env::var("SLUICE_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(8.0_f64);
    Duration::from_secs_f64(secs)
}

/// The seed: fixed by default, so that CI is repeatable; `random` explores.
fn seed() -> u64 {
    match std::env::var("SLUICE_FUZZ_SEED").as_deref() {
        Ok("random") => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
        }
        Ok(s) => s.parse().unwrap_or(DEFAULT_SEED),
        Err(_) => DEFAULT_SEED,
    }
}

/// The seed CI runs with.
const DEFAULT_SEED: u64 = 0x5eed_5111_ce00_0001;

/// Runs `target` on mutations of `inputs` for `time`; panics (with the seed
/// and the saved input) if any call panics.
fn fuzz(name: &str, inputs: &[Vec<u8>], time: Duration, target: impl Fn(&[u8])) -> usize {
    let seed = seed();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut runs = 0usize;
    let quiet = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    while start.elapsed() < time {
        let base = &inputs[rng.below(inputs.len())];
        let input = mutate(&mut rng, base, inputs);
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| target(&input))) {
            panic::set_hook(quiet);
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}-{seed}-{runs}.bin"));
            let _ = std::fs::write(&path, &input);
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{name}: panic on run {runs} (SLUICE_FUZZ_SEED={seed}), input saved to {}: {msg:?}", path.display());
        }
        runs += 1;
    }
    panic::set_hook(quiet);
    eprintln!("fuzz {name}: {runs} inputs in {:?} (SLUICE_FUZZ_SEED={seed})", start.elapsed());
    runs
}

#[test]
fn corpus_is_valid() {
    for req in corpus("requests") {
        frame::decode_request(Bytes::from(req)).expect("every corpus request decodes");
    }
    for b in corpus("batches") {
        let headers = batch::validate_all(&b).expect("every corpus batch is valid");
        let mut at = 0;
        for h in &headers {
            let one = &b[at..at + h.total_len];
            at += h.total_len;
            batch_walk::check(one, h, 1 << 20).expect("every corpus batch walks");
            rewrite::recompress(one, h, Compression::Zstd, 1 << 20, 1 << 20).expect("every corpus batch recompresses");
        }
    }
}

#[test]
fn fuzz_request_decoding() {
    let inputs = corpus("requests");
    let runs = fuzz("requests", &inputs, budget() / 2, |b| {
        let _ = frame::decode_request(Bytes::copy_from_slice(b));
    });
    assert!(runs > 0);
}

#[test]
fn fuzz_batches_and_group_records() {
    let batches = corpus("batches");
    let runs = fuzz("batches", &batches, budget() / 3, |b| {
        exercise_batch(b);
        // Make the CRC right again (as an attacker can), so that the code
        // behind the CRC check gets fuzzed too.
        let mut fixed = b.to_vec();
        batch::reseal(&mut fixed);
        exercise_batch(&fixed);
    });
    assert!(runs > 0);
    let offset = record::RecordValue::Offset(record::OffsetValue {
        offset: 42,
        leader_epoch: -1,
        metadata: "m".into(),
        commit_timestamp: 1,
    });
    let group = record::RecordValue::Group(record::GroupValue {
        protocol_type: "consumer".into(),
        generation: 2,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        state_timestamp: 3,
        members: vec![record::MemberValue {
            member_id: "m1".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1,
            session_timeout_ms: 2,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        }],
    });
    let records = vec![
        record_input(&record::RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 3 }, &offset),
        record_input(&record::RecordKey::Group { group: "group".into() }, &group),
    ];
    let runs = fuzz("group-records", &records, budget() / 6, exercise_records);
    assert!(runs > 0);
}

/// A zigzag varint, as records carry their fields.
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The bytes of `n` random well-formed records.
fn random_records(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut body = vec![0u8];
        put_varint(&mut body, rng.below(1000) as i64);
        put_varint(&mut body, i as i64);
        for _ in 0..2 {
            match rng.below(4) {
                0 => put_varint(&mut body, -1),
                _ => {
                    let len = rng.below(40);
                    put_varint(&mut body, len as i64);
                    body.extend((0..len).map(|_| rng.next() as u8));
                }
            }
        }
        let headers = rng.below(3);
        put_varint(&mut body, headers as i64);
        for _ in 0..headers {
            put_varint(&mut body, 1);
            body.push(b'h');
            put_varint(&mut body, 2);
            body.extend(b"hv");
        }
        put_varint(&mut out, body.len() as i64);
        out.extend(body);
    }
    out
}

/// A lie told inside decompressed records: a varint replaced by a value
/// that breaks lengths and counts.
fn lie(rng: &mut Rng, records: &mut Vec<u8>) {
    if records.is_empty() {
        return;
    }
    let at = rng.below(records.len());
    let mut v = Vec::new();
    put_varint(&mut v, i64::from(INTERESTING[rng.below(INTERESTING.len())]));
    let end = (at + 1 + rng.below(3)).min(records.len());
    records.splice(at..end, v);
}

/// Structure-aware: well-formed records with lies inside them or in the
/// header's count, compressed with every codec behind a valid CRC (as an
/// attacker would send them), through everything that reads records.
#[test]
fn fuzz_compressed_batches_with_lying_counts() {
    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let seed = seed();
    let mut rng = Rng(seed ^ 0x1ce);
    let start = Instant::now();
    let mut runs = 0usize;
    let mut refused = 0usize;
    while start.elapsed() < budget() / 4 {
        let n = 1 + rng.below(20);
        let mut records = random_records(&mut rng, n);
        let mut count = n as i32;
        match rng.below(3) {
            0 => lie(&mut rng, &mut records),
            1 => count = INTERESTING[rng.below(INTERESTING.len())],
            _ => {}
        }
        let mut header = crate::protocol::batch::testing::make_batch(1, 0)[..batch::HEADER_LEN].to_vec();
        header[23..27].copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
        let codec = CODECS[rng.below(CODECS.len())];
        let b = rewrite::rebuild(&header, &records, count, codec).expect("encodes");
        let input = b.clone();
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| exercise_batch(&input))) {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("structured-{seed}-{runs}.bin"));
            let _ = std::fs::write(&path, &b);
            panic!("structured: panic on run {runs} (SLUICE_FUZZ_SEED={seed}), input in {}: {e:?}", path.display());
        }
        // A lying count can break the header itself (negative counts).
        let walked = batch::validate(&b).map(|h| super::batch_walk::check(&b, &h, 1 << 20));
        if !matches!(walked, Ok(Ok(_))) {
            refused += 1;
        }
        runs += 1;
    }
    eprintln!(
        "fuzz structured: {runs} batches ({refused} refused by the walk) in {:?} (SLUICE_FUZZ_SEED={seed})",
        start.elapsed()
    );
    assert!(runs > 0 && refused > 0 && refused < runs, "{refused} of {runs} refused");
}
