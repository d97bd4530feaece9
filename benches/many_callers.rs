//! `many_callers`: 1, 2, 4, 8, 16 and 64 caller threads share one pool of 2
//! workers, each making round trips (`send_and_receive_once`). On 2 cores
//! most callers are oversubscribed; the figure is the total throughput (the
//! perf harness also reports its fairness across callers).
//!
//! Each iteration is 64 round trips in all, split evenly over the callers,
//! which start together on a barrier (registration with the pool and thread
//! start-up are not timed). Subjects: shardpool, messaging_thread_pool 5,
//! crossbeam-channel actors (one per worker, a reply channel per caller,
//! bounded channels drained with `try_iter`), and ffwd-style delegation (a
//! request line per caller, answers written a response line at a time; its
//! two servers spin for ever).

mod common;

use common::actor::ActorPool;
use common::ffwd::FfwdPool;
use common::{echo, mtp, place};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

const CALLERS: [usize; 6] = [1, 2, 4, 8, 16, 64];
const PER_ITERATION: u64 = 64;

/// Starts `callers` threads that each call `call(caller, i)` for `i` in
/// `0..per_caller` once all are ready; returns the time from their release to
/// the last one's end. Each first makes one untimed call (registration).
fn run_callers(callers: usize, per_caller: u64, call: impl Fn(usize, u64) + Sync) -> Duration {
    let start = Barrier::new(callers + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|c| {
                let (start, call) = (&start, &call);
                s.spawn(move || {
                    call(c, 0);
                    start.wait();
                    for i in 0..per_caller {
                        call(c, i);
                    }
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        for h in handles {
            h.join().expect("a caller thread");
        }
        t.elapsed()
    })
}

fn many_callers(c: &mut Criterion) {
    let workers = 2;
    let sp = echo::echo_pool(workers);
    let mt = mtp::mtp_echo_pool(workers);
    let mut g = c.benchmark_group("many_callers");
    g.throughput(Throughput::Elements(PER_ITERATION))
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(15);
    for callers in CALLERS {
        let per = PER_ITERATION / callers as u64;
        let id = move |c: usize, i: u64| (c as u64 * 7 + i) % echo::ITEMS;
        g.bench_with_input(BenchmarkId::new("shardpool", callers), &callers, |b, &n| {
            b.iter_custom(|iters| {
                run_callers(n, iters * per, |c, i| {
                    black_box(echo::ping(&sp, id(c, i)));
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("messaging_thread_pool", callers), &callers, |b, &n| {
            b.iter_custom(|iters| {
                run_callers(n, iters * per, |c, i| {
                    black_box(mtp::mtp_ping(&mt, id(c, i)));
                })
            })
        });
        let (actors, clients) = ActorPool::start(workers, callers, true);
        g.bench_with_input(BenchmarkId::new("crossbeam_actor", callers), &callers, |b, &n| {
            b.iter_custom(|iters| {
                run_callers(n, iters * per, |c, i| {
                    black_box(clients[c].call(id(c, i)));
                })
            })
        });
        drop(clients);
        drop(actors);
        let (servers, clients) = FfwdPool::start(workers, callers, true);
        g.bench_with_input(BenchmarkId::new("ffwd", callers), &callers, |b, &n| {
            b.iter_custom(|iters| {
                run_callers(n, iters * per, |c, i| {
                    black_box(clients[c].call(id(c, i)));
                })
            })
        });
        drop(clients);
        drop(servers);
    }
    g.finish();
}

fn main() {
    place::on_driver(None, || {
        let mut c = Criterion::default().configure_from_args();
        many_callers(&mut c);
        c.final_summary();
    });
}
