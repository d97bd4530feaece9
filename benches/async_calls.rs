//! `async_calls`: one request at a time, awaited in a tokio task, and a
//! batch of 1024 streamed to an awaiting task, against the blocking forms.
//!
//! Subjects of `async_call`, each answering a trivial request, the task
//! running in `Runtime::block_on` on the measuring thread (pinned to the
//! last core) and the server on the first core:
//! - `shardpool_blocking`: `send_and_receive_once` from the measuring
//!   thread, no runtime (the reference);
//! - `shardpool_async`: `send_and_receive_once_async(..).await`;
//! - `spawn_blocking`: what an async service does without an async API:
//!   `spawn_blocking(move || pool.send_and_receive_once(..)).await`;
//! - `tokio_actor`: the usual tokio actor: a task owning the state, a
//!   bounded `mpsc` channel of requests, each carrying a `oneshot` sender
//!   for its reply; the actor drains what has arrived before it awaits. It
//!   runs on the runtime's one worker thread (pinned to the first core);
//! - `tokio_actor_same_thread`: the same actor on a current-thread runtime
//!   shared with the caller: no thread is woken (and nothing runs in
//!   parallel), the best case of a tokio actor's latency.
//!
//! `async_batch`: 1024 pings, by `send_and_receive` (blocking) and by
//! `send_and_receive_async` polled to the end in a task.
//!
//! Every subject addresses the items in turn (`i % ITEMS`), and every async
//! loop is timed inside one `block_on`, so the runtime's entry is not
//! measured. The subjects are in `common/tokio_subjects.rs`, shared with
//! the perf harness.

mod common;

use common::echo::{self, ITEMS};
use common::place;
use common::tokio_subjects::{
    actor_calls, async_batch, runtime, shardpool_calls, spawn_blocking_calls, start_actor,
};
use criterion::{Criterion, Throughput};
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How long `run` takes, awaited inside one `block_on` on `rt`.
fn timed<F: Future<Output = ()>>(rt: &Runtime, run: F) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        run.await;
        start.elapsed()
    })
}

fn async_calls(c: &mut Criterion) {
    let rt = runtime();
    let pool = Arc::new(echo::echo_pool(1));

    let mut g = c.benchmark_group("async_call");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    let mut id = 0u64;
    g.bench_function("shardpool_blocking", |b| {
        b.iter(|| {
            id = (id + 1) % ITEMS;
            black_box(echo::ping(&pool, id))
        })
    });
    g.bench_function("shardpool_async", |b| b.iter_custom(|iters| timed(&rt, shardpool_calls(&pool, iters))));
    g.bench_function("spawn_blocking", |b| {
        b.iter_custom(|iters| timed(&rt, spawn_blocking_calls(&pool, iters)))
    });
    let same_thread = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
    for (name, rt) in [("tokio_actor", &rt), ("tokio_actor_same_thread", &same_thread)] {
        let (tx, server) = start_actor(rt);
        g.bench_function(name, |b| b.iter_custom(|iters| timed(rt, actor_calls(&tx, iters))));
        drop(tx);
        rt.block_on(server).expect("the actor ends");
    }
    g.finish();

    let mut g = c.benchmark_group("async_batch");
    g.throughput(Throughput::Elements(1024))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    g.bench_function("shardpool_blocking/1024", |b| b.iter(|| black_box(echo::ping_batch(&pool, 0, 1024))));
    g.bench_function("shardpool_async/1024", |b| {
        b.iter_custom(|iters| {
            timed(&rt, async {
                for _ in 0..iters {
                    black_box(async_batch(&pool, 1024).await);
                }
            })
        })
    });
    g.finish();
}

fn main() {
    place::on_driver(Some(place::caller_core()), || {
        let mut c = Criterion::default().configure_from_args();
        async_calls(&mut c);
        c.final_summary();
    });
}
