//! `sluice-bench`: the load generator. Its content is issue 7; until then
//! the throughput figures in docs/BENCHMARKS.md come from
//! `scripts/bench-confluent.py` (confluent-kafka).

fn main() {
    eprintln!("sluice-bench is not built yet (issue 7); use scripts/bench-confluent.py");
    std::process::exit(2);
}
