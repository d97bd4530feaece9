//! Model 5: a batch through `send_and_receive` that wraps a ring of
//! capacity 2 (`Responses` in `src/caller.rs`, the ring in
//! `src/sync/ring.rs`, the worker's drain in `src/worker.rs`).
#![cfg(shardpool_loom)]

use loom_tests::{check, pool, Preemptions};
use shardpool::AddRequest;

/// Three requests through a ring of two with one worker: the third push
/// reuses the ring's first cell, which the worker must have drained first.
/// All three are answered, in request order.
#[test]
fn batch_wrapping_the_ring_is_answered_in_order() {
    check(Preemptions::Env, || {
        let pool = pool(1, 2);
        let ids: Vec<u64> = pool
            .send_and_receive((0..3).map(|id| AddRequest::new(id, ())))
            .unwrap()
            .map(|r| r.unwrap().id)
            .collect();
        assert_eq!(ids, [0, 1, 2]);
    });
}

/// The same with two workers and every id placed on worker 0: the window
/// (ring capacity × workers = 4) is wider than the ring, so unless the
/// worker has already drained a cell the third request finds the ring full,
/// stalls, and is sent by the next `next()`, after the first response. All
/// three are answered, in order; worker 1 only sleeps and shuts down.
#[test]
fn batch_stalled_on_a_full_ring_is_answered_in_order() {
    check(Preemptions::Env, || {
        let pool = pool(2, 2);
        let ids: Vec<u64> = pool
            .send_and_receive([0, 2, 4].map(|id| AddRequest::new(id, ())))
            .unwrap()
            .map(|r| r.unwrap().id)
            .collect();
        assert_eq!(ids, [0, 2, 4]);
    });
}
