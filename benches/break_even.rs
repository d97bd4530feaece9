//! `break_even`: when is it worth sending work to the pool? 1000 messages,
//! each carrying `W` ns of calibrated CPU work (W = 100 ns .. 100 µs), to a
//! pool of 2 workers, against doing the same work inline on the calling
//! thread. The speed-up is `inline / pool` (criterion reports the throughput
//! of each; their ratio is the speed-up).
//!
//! The pools are measured with batches back to back, and with each batch
//! after 1 ms of idleness (the workers have parked; the timed part is the
//! batch alone). messaging_thread_pool 5 runs the same batches.

mod common;

use common::work::{burn, rounds_for};
use common::{echo, mtp, place};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

const MESSAGES: u64 = 1000;
const WORK_NS: [u64; 6] = [100, 300, 1_000, 3_000, 10_000, 100_000];
const GAP: Duration = Duration::from_millis(1);

/// Times `iters` runs of `f`, each after an untimed idle gap.
fn after_gap(iters: u64, mut f: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        thread::sleep(GAP);
        let t = Instant::now();
        f();
        total += t.elapsed();
    }
    total
}

fn break_even(c: &mut Criterion) {
    let sp = echo::echo_pool(2);
    let mt = mtp::mtp_echo_pool(2);
    let mut g = c.benchmark_group("break_even");
    g.throughput(Throughput::Elements(MESSAGES));
    for w in WORK_NS {
        let rounds = rounds_for(w);
        if w >= 10_000 {
            g.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_millis(300));
            g.measurement_time(Duration::from_secs(2));
        } else {
            g.sampling_mode(SamplingMode::Auto).sample_size(20).warm_up_time(Duration::from_millis(200));
            g.measurement_time(Duration::from_secs(1));
        }
        let param = format!("{w}ns");
        g.bench_with_input(BenchmarkId::new("inline", &param), &rounds, |b, &r| {
            b.iter(|| (0..MESSAGES).fold(0u64, |acc, _| acc ^ burn(black_box(r))))
        });
        g.bench_with_input(BenchmarkId::new("shardpool", &param), &rounds, |b, &r| {
            b.iter(|| echo::burn_batch(&sp, MESSAGES, r))
        });
        g.bench_with_input(BenchmarkId::new("shardpool_after_1ms_idle", &param), &rounds, |b, &r| {
            b.iter_custom(|iters| {
                after_gap(iters, || {
                    black_box(echo::burn_batch(&sp, MESSAGES, r));
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("messaging_thread_pool", &param), &rounds, |b, &r| {
            b.iter(|| mtp::mtp_burn_batch(&mt, MESSAGES, r))
        });
        g.bench_with_input(
            BenchmarkId::new("messaging_thread_pool_after_1ms_idle", &param),
            &rounds,
            |b, &r| {
                b.iter_custom(|iters| {
                    after_gap(iters, || {
                        black_box(mtp::mtp_burn_batch(&mt, MESSAGES, r));
                    })
                })
            },
        );
    }
    g.finish();
}

fn main() {
    place::on_driver(None, || {
        let mut c = Criterion::default().configure_from_args();
        break_even(&mut c);
        c.final_summary();
    });
}
