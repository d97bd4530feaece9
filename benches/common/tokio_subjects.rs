//! The async subjects, written once for `benches/async_calls.rs` and the
//! perf harness's "Async callers" section: a tokio runtime placed like the
//! other subjects' servers, the usual tokio actor, and the loops each
//! subject times (one call at a time, each awaited before the next).

use super::echo::{ping, Echo, Ping, ITEMS};
use super::place;
use shardpool::ThreadPool;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The actor's request channel: an id, and where to send the answer.
pub type Requests = mpsc::Sender<(u64, oneshot::Sender<u64>)>;

/// A multi-thread runtime with one worker thread, pinned to the core the
/// other subjects' servers use (worker 0's). Its blocking pool's threads,
/// started later by `spawn_blocking`, run on any core of the process, as a
/// service's would (pinned to the worker's core they would queue behind it).
pub fn runtime() -> Runtime {
    let first = Arc::new(AtomicBool::new(true));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || {
            // The worker thread starts with the runtime, before any
            // blocking thread.
            if first.swap(false, Ordering::Relaxed) {
                place::pin_current(place::worker_core(0));
            } else {
                place::unpin_current();
            }
        })
        .build()
        .expect("a tokio runtime")
}

/// The usual tokio actor, spawned on `rt`: a task owning the state (here
/// only the answer to a ping, the id), draining a bounded `mpsc` of
/// requests, each carrying a `oneshot` for its answer.
pub fn start_actor(rt: &Runtime) -> (Requests, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(256);
    let server = rt.spawn(async move {
        while let Some((id, reply)) = rx.recv().await {
            let _ = reply.send(id);
            // Drain what has arrived without awaiting again.
            while let Ok((id, reply)) = rx.try_recv() {
                let _ = reply.send(id);
            }
        }
    });
    (tx, server)
}

/// `n` calls to the actor, each awaited before the next.
pub async fn actor_calls(tx: &Requests, n: u64) {
    for i in 0..n {
        let (reply, answer) = oneshot::channel();
        tx.send((i % ITEMS, reply)).await.expect("the actor is up");
        black_box(answer.await.expect("an answer"));
    }
}

/// `n` awaited shardpool calls, each awaited before the next.
pub async fn shardpool_calls(pool: &ThreadPool<Echo>, n: u64) {
    for i in 0..n {
        black_box(pool.send_and_receive_once_async(Ping(i % ITEMS)).await.expect("a ping"));
    }
}

/// `n` blocking shardpool calls, each wrapped in `spawn_blocking`: what an
/// async service does without an async API.
pub async fn spawn_blocking_calls(pool: &Arc<ThreadPool<Echo>>, n: u64) {
    for i in 0..n {
        let pool = pool.clone();
        let r = tokio::task::spawn_blocking(move || ping(&pool, i % ITEMS)).await;
        black_box(r.expect("the blocking task"));
    }
}

/// One async batch of `n` pings, awaited to the end; the xor of the answers.
pub async fn async_batch(pool: &ThreadPool<Echo>, n: u64) -> u64 {
    let mut responses = pool.send_and_receive_async((0..n).map(|i| Ping(i % ITEMS)));
    let mut acc = 0;
    while let Some(r) = responses.next().await {
        acc ^= r.expect("a ping's answer");
    }
    acc
}
