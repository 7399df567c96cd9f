//! Latency histograms (HDR, microseconds) and counters shared by the
//! harness threads. Threads record per request (or per fetched batch, with
//! the batch's record count as weight), never per record.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Highest latency tracked: one minute, in microseconds.
const MAX_US: u64 = 60_000_000;

/// One latency distribution: the whole run (after warm-up) and the current
/// reporting interval.
pub struct Latency {
    pub name: &'static str,
    total: Mutex<Histogram<u64>>,
    interval: Mutex<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

impl Latency {
    pub fn new(name: &'static str) -> Self {
        Self { name, total: Mutex::new(histogram()), interval: Mutex::new(histogram()) }
    }

    /// Records `count` observations of `us` microseconds.
    pub fn record(&self, us: u64, count: u64) {
        let us = us.clamp(1, MAX_US);
        self.total.lock().expect("not poisoned").saturating_record_n(us, count);
        self.interval.lock().expect("not poisoned").saturating_record_n(us, count);
    }

    /// The interval so far, and a fresh interval.
    pub fn take_interval(&self) -> Histogram<u64> {
        std::mem::replace(&mut *self.interval.lock().expect("not poisoned"), histogram())
    }

    /// The whole run.
    pub fn total(&self) -> Histogram<u64> {
        self.total.lock().expect("not poisoned").clone()
    }

    /// Forgets everything (end of warm-up).
    pub fn reset(&self) {
        self.total.lock().expect("not poisoned").reset();
        self.interval.lock().expect("not poisoned").reset();
    }
}

/// Counters of a run.
#[derive(Default)]
pub struct Counters {
    /// Records sent (all, warm-up included).
    pub sent: AtomicU64,
    /// Records claimed by producers before sending (with `--records`, so
    /// that together they send that many, not what one report tick allows).
    pub claimed: AtomicU64,
    /// Records acknowledged (all).
    pub acked: AtomicU64,
    /// Records consumed (all).
    pub consumed: AtomicU64,
    /// Records acknowledged (or consumed, in consume mode) after warm-up.
    pub measured: AtomicU64,
    /// Their bytes.
    pub measured_bytes: AtomicU64,
    /// Produce errors.
    pub errors: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// (p50, p95, p99, p99.9, max, mean) in milliseconds.
pub fn percentiles_ms(h: &Histogram<u64>) -> [f64; 6] {
    let ms = |v: u64| v as f64 / 1000.0;
    [
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.mean() / 1000.0,
    ]
}
