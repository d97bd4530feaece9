//! `batch`: one caller sends batches of 1, 64, 1024 and 100,000 trivial
//! requests and takes every answer, to 1 and 2 workers.
//!
//! Subjects: shardpool (`send_and_receive`, answers in request order),
//! messaging_thread_pool 5 (`send_and_receive`: sends the whole batch, then
//! takes the answers in any order), a crossbeam-channel actor per worker
//! (bounded channels drained with `try_iter`), and, with one worker, the raw
//! `rtrb` pair (rings of 256) in two forms: one element at a time, and whole
//! chunks on both sides (`rtrb_chunked`). The actor and the rtrb pairs keep up
//! to 256 requests per worker in flight and refill once half have been
//! answered, as shardpool does. The caller runs on the last core; worker
//! `i` on core `i` (so with 2 workers the caller shares a core with worker 1).

mod common;

use common::actor::ActorPool;
use common::rtrb_pair::RtrbPair;
use common::{echo, mtp, place};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [u64; 4] = [1, 64, 1024, 100_000];

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    for workers in [1usize, 2] {
        let sp = echo::echo_pool(workers);
        let mt = mtp::mtp_echo_pool(workers);
        let (actors, clients) = ActorPool::start(workers, 1, true);
        let actor = &clients[0];
        for size in SIZES {
            g.throughput(Throughput::Elements(size)).warm_up_time(Duration::from_millis(300));
            if size >= 100_000 {
                g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(2));
            } else {
                g.sampling_mode(SamplingMode::Auto)
                    .sample_size(30)
                    .measurement_time(Duration::from_millis(1500));
            }
            g.bench_with_input(BenchmarkId::new(format!("shardpool/{workers}w"), size), &size, |b, &n| {
                b.iter(|| black_box(echo::ping_batch(&sp, 0, n)))
            });
            g.bench_with_input(
                BenchmarkId::new(format!("messaging_thread_pool/{workers}w"), size),
                &size,
                |b, &n| b.iter(|| black_box(mtp::mtp_ping_batch(&mt, 0, n))),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("crossbeam_actor/{workers}w"), size),
                &size,
                |b, &n| b.iter(|| black_box(actor.batch(0, n))),
            );
            if workers == 1 {
                // Started here and stopped at once: its spinning worker shares
                // a core with the other subjects' worker 0.
                let (_pair, mut client) = RtrbPair::start(place::worker_core(0), 256);
                g.bench_with_input(BenchmarkId::new("rtrb_pair/1w", size), &size, |b, &n| {
                    b.iter(|| black_box(client.batch(0, n)))
                });
                drop((_pair, client));
                let (_pair, mut client) = RtrbPair::start_chunked(place::worker_core(0), 256);
                g.bench_with_input(BenchmarkId::new("rtrb_chunked/1w", size), &size, |b, &n| {
                    b.iter(|| black_box(client.batch_chunked(0, n)))
                });
            }
        }
        drop(clients);
        drop(actors);
    }
    g.finish();
}

fn main() {
    place::on_driver(Some(place::caller_core()), || {
        let mut c = Criterion::default().configure_from_args();
        batch(&mut c);
        c.final_summary();
    });
}
