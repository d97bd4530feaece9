//! `nested_calls`: what a call made from an item's handler costs, against
//! the same call made from a plain thread.
//!
//! A pool of two workers pinned to the first two cores; item 0 lives on
//! worker 0, item 1 on worker 1, item 2 on worker 0. The driver thread is
//! pinned to the first core, worker 0's: so every subject's calls cross
//! the same two cores, first core to second and back. Each subject makes
//! `CALLS` trivial calls:
//!
//! - `from_a_thread`: the driver calls item 1 `CALLS` times (the plain
//!   round trip, worker 0 idle: the baseline);
//! - `from_a_handler`: the driver calls item 0 once and sleeps, and item
//!   0's handler calls item 1 `CALLS` times: each a nested call that
//!   carries its frame, and whose wait serves worker 0's lanes (finding
//!   nothing: the work-while-waiting loop when nothing is deferred);
//! - `inline`: the same, to item 2, on worker 0 itself: run inline;
//! - `handler_only`: the same with no call (the driver's call to item 0,
//!   and its sleep and wake-up, which the two subjects above pay once).
//!
//! Per call, a nested call costs (`from_a_handler` - `handler_only`) /
//! `CALLS`, against `from_a_thread` / `CALLS` for a plain one.

mod common;

use common::place;
use criterion::{Criterion, Throughput};
use shardpool::{AddRequest, Message, NewItemError, Pinning, PoolItem, Reply, Request, ThreadPool};
use std::hint::black_box;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Calls per measured iteration.
const CALLS: u64 = 1024;

/// Runs `f` to completion on this thread, parking while it is pending: the
/// driver sleeps while worker 0 runs item 0's handler, rather than spin on
/// worker 0's core.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark()
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        std::thread::park();
    }
}

struct Caller {
    pool: Arc<OnceLock<Weak<ThreadPool<Caller>>>>,
}

enum Api {
    /// Answer at once.
    Ping(u64),
    /// Call item `to` this many times (`Ping`), then answer.
    Fan { to: u64, calls: u64 },
}

impl PoolItem for Caller {
    type Init = Arc<OnceLock<Weak<ThreadPool<Caller>>>>;
    type Api = Api;
    type Response = u64;
    type ThreadState = ();

    fn new_pool_item(_id: u64, pool: Self::Init) -> Result<Self, NewItemError> {
        Ok(Caller { pool })
    }

    fn process_message(&mut self, request: Api) -> u64 {
        match request {
            Api::Ping(v) => v,
            Api::Fan { to, calls } => {
                let pool = self.pool.get().and_then(Weak::upgrade).expect("the pool");
                let mut sum = 0;
                for i in 0..calls {
                    sum += pool.send_and_receive_once(Call(to, Api::Ping(i))).expect("a nested call");
                }
                sum
            }
        }
    }
}

struct Call(u64, Api);

impl Request<Caller> for Call {
    type Response = u64;
    fn into_message(self) -> Message<Caller> {
        Message::Call { id: self.0, request: self.1 }
    }
    fn from_reply(reply: Reply<Caller>) -> Option<u64> {
        match reply {
            Reply::Response(v) => Some(v),
            _ => None,
        }
    }
}

fn nested_calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("nested_calls");
    g.throughput(Throughput::Elements(CALLS))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    let cores = vec![place::worker_core(0), place::worker_core(1)];
    let pool = Arc::new(
        ThreadPool::<Caller>::builder().workers(2).cores(cores).pinning(Pinning::BestEffort).build().unwrap(),
    );
    let cell = Arc::new(OnceLock::new());
    cell.set(Arc::downgrade(&pool)).unwrap();
    for id in 0..3 {
        pool.send_and_receive_once(AddRequest::new(id, cell.clone())).unwrap();
    }
    g.bench_function("from_a_thread", |b| {
        b.iter(|| {
            let mut sum = 0;
            for i in 0..CALLS {
                sum += pool.send_and_receive_once(Call(1, Api::Ping(i))).unwrap();
            }
            black_box(sum)
        })
    });
    let fan =
        |to, calls| black_box(block_on(pool.send_and_receive_once_async(Call(0, Api::Fan { to, calls }))));
    g.bench_function("from_a_handler", |b| b.iter(|| fan(1, CALLS).unwrap()));
    g.bench_function("inline", |b| b.iter(|| fan(2, CALLS).unwrap()));
    g.bench_function("handler_only", |b| b.iter(|| fan(1, 0).unwrap()));
    g.finish();
}

fn main() {
    place::on_driver(Some(place::worker_core(0)), || {
        let mut c = Criterion::default().configure_from_args();
        nested_calls(&mut c);
        c.final_summary();
    });
}
