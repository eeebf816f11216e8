//! Failover latency on the simulator clock: from an election (or switchover) to the rw Service
//! selecting the new primary. `cargo bench --bench failover_latency` prints p50/p99.

#[path = "restore.rs"]
mod restore;
// The restore schedules (`schedule::run_restore`) are the simulation test's, not this bench's.
#[allow(dead_code)]
#[path = "schedule.rs"]
mod schedule;
#[path = "simops.rs"]
mod simops;
#[path = "world.rs"]
mod world;

fn main() {
    let count: u64 = std::env::var("SIM_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let mut samples: Vec<u64> = Vec::new();
    for seed in 0..count {
        match schedule::run(seed, &schedule::real, false) {
            Ok(outcome) => samples.extend(outcome.label_latencies_ms),
            Err(e) => panic!("{e}"),
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "role change -> rw Service selects the new primary, {} elections/switchovers over {count} schedules \
         (simulated clock): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (target p99 <= 1000 ms)",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        samples[samples.len() - 1]
    );
}
