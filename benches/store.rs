//! Durable write latency on sled: group commit against one flush per write.
//!
//! Each configuration opens a fresh sled directory and runs N concurrent writers (1, 100,
//! 1,000), each in a closed loop: write one 200-byte event, wait for the acknowledgement
//! (the flush covering it), repeat. It prints p50/p99/p99.9 of the acknowledged-write
//! latency, durable writes per second and writes per flush, then runs a small criterion
//! benchmark of a single writer.
//!
//! A closed loop measures throughput: with N writers the mean latency is N / throughput
//! (Little's law), so compare modes at the same N, and read the N = 1 row as the cost of
//! one durable write. Latency is measured at a set load in a second table: 1,000 writers,
//! each writing at a fixed rate (a random phase each), latency counted from the *scheduled*
//! time so a slow write delays the next one's clock too (no coordinated omission). A third
//! table gives the CPU time per durable write, with records of ieum's mean size: the part
//! of ieum's CPU per message that belongs to sled. Run: `cargo bench --bench store` (about
//! 30 s). Under `cargo test` it runs a few writes per configuration as a smoke test.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use ieum::metrics::process_cpu_seconds;
use ieum::store::{GroupCommit, MemoryBackend, Store, StoreOptions, Tree, Write, event_key};
use tokio::runtime::Runtime;

const VALUE_BYTES: usize = 200;
/// The mean size of the record ieum writes per message (a citizen's line, its triage note
/// and the bot's reply with its resource cards, sealed, with the progress head): 1,144
/// bytes over the load corpus.
const RECORD_BYTES: usize = 1150;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn conv(n: u64) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..8].copy_from_slice(&n.to_be_bytes());
    c
}

fn put(writer: u64, seq: u64, bytes: usize) -> Vec<Write> {
    vec![Write::put(
        Tree::Events,
        event_key(&conv(writer), seq),
        vec![b'x'; bytes],
    )]
}

struct Run {
    latencies_us: Vec<u64>,
    elapsed: Duration,
    writes: u64,
    flushes: u64,
    /// CPU seconds the process spent in the measured window.
    cpu_secs: f64,
}

/// How each writer paces its writes.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Write, wait for the ack, write again.
    Closed,
    /// This many writes a second at a fixed phase; latency counts from the scheduled time.
    Rate(f64),
}

/// `writers` writers at `pace`: `warmup`, then `measure` (latencies recorded).
async fn run(
    store: &Store,
    writers: u64,
    pace: Pace,
    bytes: usize,
    warmup: Duration,
    measure: Duration,
) -> Run {
    let start = tokio::time::Instant::now();
    let measure_from = start + warmup;
    let stop = measure_from + measure;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        let before = process_cpu_seconds();
        tokio::time::sleep_until(stop).await;
        process_cpu_seconds() - before
    });
    let before = Arc::new(std::sync::Mutex::new(None));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        let before = Arc::clone(&before);
        let mut tick = match pace {
            Pace::Closed => None,
            Pace::Rate(rate) => {
                let period = Duration::from_secs_f64(1.0 / rate);
                // Spread the writers' phases over one period, deterministically.
                let phase = period.mul_f64((w as f64 * 0.618_034).fract());
                Some(tokio::time::interval_at(start + phase, period))
            }
        };
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut seq = 0u64;
            loop {
                let scheduled = match tick.as_mut() {
                    Some(tick) => tick.tick().await,
                    None => tokio::time::Instant::now(),
                };
                if scheduled >= stop {
                    break;
                }
                if scheduled >= measure_from {
                    let mut b = before.lock().expect("lock");
                    if b.is_none() {
                        *b = Some(store.stats());
                    }
                }
                store
                    .write(put(w, seq, bytes))
                    .await
                    .expect("durable write");
                if scheduled >= measure_from {
                    lat.push(scheduled.elapsed().as_micros() as u64);
                }
                seq += 1;
            }
            lat
        });
    }
    let mut latencies_us = Vec::new();
    while let Some(lat) = tasks.join_next().await {
        latencies_us.extend(lat.expect("writer task"));
    }
    let after = store.stats();
    let before = before
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or(after.clone());
    latencies_us.sort_unstable();
    Run {
        elapsed: measure,
        writes: latencies_us.len() as u64,
        flushes: after.flushes - before.flushes,
        latencies_us,
        cpu_secs: cpu.await.expect("cpu sampler"),
    }
}

/// 1,000 writers at set rates, group commit on and off.
fn set_load_table(full: bool) {
    let window = window(full, 1000, 5000, 200);
    let rt = runtime();
    println!(
        "\n| mode | writers | rate per writer | writes/s | writes/flush | p50 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|---|---|---|"
    );
    for rate in [1.0, 10.0, 30.0] {
        for mode in [GroupCommit::On, GroupCommit::Off] {
            let r = fresh(
                &rt,
                Engine::Sled,
                mode,
                1000,
                Pace::Rate(rate),
                VALUE_BYTES,
                window,
            );
            println!(
                "| {mode:?} | 1000 | {rate}/s | {:.0} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} |",
                r.per_sec(),
                r.per_flush(),
                pct(&r.latencies_us, 0.50),
                pct(&r.latencies_us, 0.99),
                pct(&r.latencies_us, 0.999),
                pct(&r.latencies_us, 1.0),
            );
        }
    }
    println!();
}

/// A table's (warmup, measured) window, in milliseconds: as given under `cargo bench`, and a
/// short smoke run (no warmup) under `cargo test`.
fn window(full: bool, warmup_ms: u64, measure_ms: u64, smoke_ms: u64) -> (Duration, Duration) {
    let ms = Duration::from_millis;
    if full {
        (ms(warmup_ms), ms(measure_ms))
    } else {
        (Duration::ZERO, ms(smoke_ms))
    }
}

/// What the store runs on.
#[derive(Debug, Clone, Copy)]
enum Engine {
    Sled,
    /// The in-memory backend: the bench's and the store handle's own cost, without sled.
    Memory,
}

/// `writers` writers at `pace` on a fresh store (sled in a new directory, or memory), closed
/// after. `window` is (warmup, measured).
fn fresh(
    rt: &Runtime,
    engine: Engine,
    mode: GroupCommit,
    writers: u64,
    pace: Pace,
    bytes: usize,
    (warmup, measure): (Duration, Duration),
) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions::new().group_commit(mode);
    let store = match engine {
        Engine::Sled => Store::open_sled(dir.path(), opts).expect("open sled"),
        Engine::Memory => {
            Store::with_options(Arc::new(MemoryBackend::new()), opts).expect("memory store")
        }
    };
    let r = rt.block_on(run(&store, writers, pace, bytes, warmup, measure));
    rt.block_on(store.close()).expect("close");
    r
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    fn per_flush(&self) -> f64 {
        self.writes as f64 / self.flushes.max(1) as f64
    }
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn concurrency_table(full: bool) {
    let window = window(full, 300, 2000, 50);
    let rt = runtime();
    println!(
        "\n| mode | writers | writes/s | writes/flush | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|---|"
    );
    for writers in [1u64, 100, 1000] {
        for mode in [GroupCommit::On, GroupCommit::Off] {
            let r = fresh(
                &rt,
                Engine::Sled,
                mode,
                writers,
                Pace::Closed,
                VALUE_BYTES,
                window,
            );
            println!(
                "| {mode:?} | {writers} | {:.0} | {:.1} | {:.3} | {:.3} | {:.3} |",
                r.per_sec(),
                r.per_flush(),
                pct(&r.latencies_us, 0.50),
                pct(&r.latencies_us, 0.99),
                pct(&r.latencies_us, 0.999),
            );
        }
    }
    println!();
}

/// What a durable write costs in CPU, for comparison with ieum's CPU per message under
/// load (`BENCHMARKS.md`, "The ceiling"): 1,000 writers with group commit, in a closed
/// loop writing records of 200 bytes and of ieum's mean record size, then at ieum's own
/// message rate. Keys are laid out as ieum's: each writer appends to its own conversation.
fn cpu_table(full: bool) {
    let window = window(full, 500, 4000, 50);
    let rt = runtime();
    println!(
        "\n| engine | writers | pace | record bytes | writes/s | writes/flush | CPU µs per durable write |\n|---|---|---|---|---|---|---|"
    );
    // Closed loops give sled its best case (hundreds of writes per flush); 16 writes/s per
    // writer is ieum's own rate in its closed-loop benchmark (about 16,000 messages/s). The
    // memory rows are the bench's own cost (writer tasks, timers, the store's thread and
    // channels): sled's share is the difference.
    let runs = [
        (Engine::Sled, Pace::Closed, VALUE_BYTES),
        (Engine::Sled, Pace::Closed, RECORD_BYTES),
        (Engine::Memory, Pace::Closed, RECORD_BYTES),
        (Engine::Sled, Pace::Rate(16.0), RECORD_BYTES),
        (Engine::Memory, Pace::Rate(16.0), RECORD_BYTES),
    ];
    for (engine, pace, bytes) in runs {
        let r = fresh(&rt, engine, GroupCommit::On, 1000, pace, bytes, window);
        let pace = match pace {
            Pace::Closed => "closed loop".to_owned(),
            Pace::Rate(rate) => format!("{rate}/s each"),
        };
        println!(
            "| {engine:?} | 1000 | {pace} | {bytes} | {:.0} | {:.1} | {:.1} |",
            r.per_sec(),
            r.per_flush(),
            r.cpu_secs * 1e6 / r.writes.max(1) as f64,
        );
    }
    println!();
}

fn single_writer(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("durable_write_1_writer");
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for mode in [GroupCommit::On, GroupCommit::Off] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sled(dir.path(), StoreOptions::new().group_commit(mode))
            .expect("open sled");
        let mut seq = 0u64;
        g.bench_function(format!("{mode:?}"), |b| {
            b.iter(|| {
                seq += 1;
                rt.block_on(store.write(put(0, seq, VALUE_BYTES)))
                    .expect("durable write")
            })
        });
        rt.block_on(store.close()).expect("close");
    }
    g.finish();
}

criterion_group!(benches, single_writer);

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then just smoke-test.
    let full = std::env::args().any(|a| a == "--bench");
    concurrency_table(full);
    set_load_table(full);
    cpu_table(full);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
