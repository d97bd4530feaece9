//! A fixed workload whose instructions `perf/instructions.sh` counts under
//! callgrind: a count per request that does not move with the machine's
//! speed, unlike every time in the benches.
//!
//! `instructions rt N`: N round trips to a 1-worker Echo pool;
//! `instructions batch N`: N batches of 1024 pings; `instructions
//! rtrb_chunked N`: N batches of 1024 through the chunked rtrb pair's code,
//! both ends run in turn on this one thread (no waiting at all: the least
//! the pair executes per element).
//!
//! The pool's waits (the caller's spin in `Sleeper::wait_timed`, the
//! worker's idle `Looper::spin_timed`) run longer under callgrind, which
//! runs one thread at a time, than on the machine: the script leaves them
//! out. The pool polls (`Idle::Poll`) and its callers spin for a second, so
//! that nobody parks.

#[path = "../../benches/common/mod.rs"]
mod common;

use common::echo::{echo_pool_with, ping, ping_batch, ITEMS};
use common::rtrb_pair::{answer_queued, send_run, take_ready};
use rtrb::RingBuffer;
use shardpool::Idle;
use std::hint::black_box;
use std::time::Duration;

#[inline(never)]
fn caller_rt(pool: &shardpool::ThreadPool<common::echo::Echo>, n: u64) -> u64 {
    (0..n).fold(0, |acc, i| acc ^ ping(pool, i % ITEMS))
}

#[inline(never)]
fn caller_batch(pool: &shardpool::ThreadPool<common::echo::Echo>, n: u64) -> u64 {
    (0..n).fold(0, |acc, i| acc ^ ping_batch(pool, i * 1024, 1024))
}

/// The chunked pair's steps for one batch of `n` (at most the capacity),
/// run in turn: the caller's send, the worker's answer, the caller's
/// receive, each as one chunk (the steps of `RtrbPair::start_chunked` and
/// `RtrbClient::batch_chunked`).
#[inline(never)]
fn pair_chunked(
    requests: &mut rtrb::Producer<u64>,
    inbox: &mut rtrb::Consumer<u64>,
    outbox: &mut rtrb::Producer<u64>,
    replies: &mut rtrb::Consumer<u64>,
    first: u64,
    n: usize,
) -> u64 {
    assert_eq!(send_run(requests, first, n), n, "room for the batch");
    answer_queued(inbox, outbox);
    take_ready(replies, 0).1
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let pool = || {
        echo_pool_with(1, |b| {
            b.idle(Idle::Poll).worker_spin(Duration::from_secs(1)).caller_spin(Duration::from_secs(1))
        })
    };
    let out = match mode.as_str() {
        "rt" => caller_rt(&pool(), n),
        "batch" => caller_batch(&pool(), n),
        "rtrb_chunked" => {
            let (mut requests, mut inbox) = RingBuffer::<u64>::new(1024);
            let (mut outbox, mut replies) = RingBuffer::<u64>::new(1024);
            (0..n).fold(0, |acc, i| {
                acc ^ pair_chunked(&mut requests, &mut inbox, &mut outbox, &mut replies, i * 1024, 1024)
            })
        }
        _ => {
            eprintln!("usage: instructions (rt|batch|rtrb_chunked) N");
            std::process::exit(2);
        }
    };
    black_box(out);
}
