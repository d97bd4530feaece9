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
//!   runs on the runtime's worker thread (pinned to the first core);
//! - `tokio_actor_same_thread`: the same actor on a current-thread runtime
//!   shared with the caller: no thread is woken (and nothing runs in
//!   parallel), the best case of a tokio actor's latency.
//!
//! `async_batch`: 1024 pings, by `send_and_receive` (blocking) and by
//! `send_and_receive_async` polled to the end in a task.
//!
//! The runtime has one worker thread (the actor's, and the tasks that
//! `spawn_blocking` hands back to) plus its blocking pool; every loop is
//! timed inside one `block_on`, so the runtime's entry is not measured.

mod common;

use common::echo::{self, Ping, ITEMS};
use common::place;
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The tokio actor: answers a ping with the id, as `Echo` does.
async fn actor(mut requests: mpsc::Receiver<(u64, oneshot::Sender<u64>)>) {
    while let Some((id, reply)) = requests.recv().await {
        let _ = reply.send(id);
        // Drain what has arrived without awaiting again.
        while let Ok((id, reply)) = requests.try_recv() {
            let _ = reply.send(id);
        }
    }
}

fn async_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| {
            place::pin_current(place::worker_core(0));
        })
        .build()
        .expect("a tokio runtime");
    let pool = Arc::new(echo::echo_pool(1));

    let mut g = c.benchmark_group("async_call");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    g.bench_function("shardpool_blocking", |b| b.iter(|| black_box(echo::ping(&pool, black_box(7)))));
    g.bench_function("shardpool_async", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(pool.send_and_receive_once_async(Ping(i % ITEMS)).await.expect("a ping"));
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("spawn_blocking", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let pool = pool.clone();
                    let r = tokio::task::spawn_blocking(move || echo::ping(&pool, i % ITEMS)).await;
                    black_box(r.expect("the blocking task"));
                }
                start.elapsed()
            })
        })
    });
    {
        let (tx, rx) = mpsc::channel(256);
        let server = rt.spawn(actor(rx));
        g.bench_function("tokio_actor", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        let (reply, answer) = oneshot::channel();
                        tx.send((i % ITEMS, reply)).await.expect("the actor is up");
                        black_box(answer.await.expect("an answer"));
                    }
                    start.elapsed()
                })
            })
        });
        drop(tx);
        rt.block_on(server).expect("the actor ends");
    }
    {
        // The same actor on a current-thread runtime, with the caller: no
        // thread is woken, a call is two task switches (and no parallelism).
        let local = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
        let (tx, rx) = mpsc::channel(256);
        let server = local.spawn(actor(rx));
        g.bench_function("tokio_actor_same_thread", |b| {
            b.iter_custom(|iters| {
                local.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        let (reply, answer) = oneshot::channel();
                        tx.send((i % ITEMS, reply)).await.expect("the actor is up");
                        black_box(answer.await.expect("an answer"));
                    }
                    start.elapsed()
                })
            })
        });
        drop(tx);
        local.block_on(server).expect("the actor ends");
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
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut responses = pool.send_and_receive_async((0..1024).map(|i| Ping(i % ITEMS)));
                    let mut acc = 0;
                    while let Some(r) = responses.next().await {
                        acc ^= r.expect("a ping's answer");
                    }
                    black_box(acc);
                }
                start.elapsed()
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
