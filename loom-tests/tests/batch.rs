//! Model 5: batches through `send_and_receive` over small rings: wrapping
//! a ring, stalling on a full one (alone, or behind another batch of the
//! same thread), and a lane carried from one worker pass to the next
//! (`Responses` in `src/caller/batch.rs`, the ring in `src/sync/ring.rs`, the
//! worker's drain and carry in `src/worker/mod.rs`).
#![cfg(shardpool_loom)]

use loom_tests::{builder, check, pool, Preemptions};
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
    // Three threads and a whole batch's life: one preemption keeps it within
    // the suite's budget (two take 1,166,572 executions, about 3.5 minutes).
    check(Preemptions::AtMost(1), || {
        let pool = builder(2, 2).membarrier(true).build().unwrap();
        let ids: Vec<u64> = pool
            .send_and_receive([0, 2, 4].map(|id| AddRequest::new(id, ())))
            .unwrap()
            .map(|r| r.unwrap().id)
            .collect();
        assert_eq!(ids, [0, 2, 4]);
    });
}

/// A worker that takes one request per pass (`max_batch(1)`) and a batch of
/// three on a ring that holds all three: whatever the worker took with its
/// first look at the doorbell, the lane is still non-empty after each pass
/// and no caller rings again, so only the carry (`Worker::run`) brings the
/// worker back to it instead of to sleep. All three are answered, in order.
#[test]
fn lane_left_non_empty_by_max_batch_is_carried_to_the_next_pass() {
    check(Preemptions::Env, || {
        // With lazy announcements: the pushes are rung once, at the end of
        // the burst, which the carry must then make last.
        let pool = builder(1, 3).max_batch(1).membarrier(true).build().unwrap();
        let ids: Vec<u64> = pool
            .send_and_receive((0..3).map(|id| AddRequest::new(id, ())))
            .unwrap()
            .map(|r| r.unwrap().id)
            .collect();
        assert_eq!(ids, [0, 1, 2]);
    });
}

/// Two batches on one thread, the second stalled behind a ring that the
/// first filled. Two workers with rings of one (a window of two): the first
/// batch's first `next` sends id 1 to worker 1 and id 0 to worker 0, filling
/// worker 0's ring, and returns worker 1's answer with the first batch kept
/// alive. The second batch's only request, id 2, goes to worker 0: unless
/// the worker has taken id 0 already, it finds the ring full with nothing of
/// its own batch in flight, and `Responses::next` waits for room (the
/// worker drains the first batch's request meanwhile). Every response comes
/// back, each batch in its own order.
#[test]
fn second_batch_stalled_behind_the_firsts_full_ring_is_answered_in_order() {
    // As above: one preemption (two take 538,900 executions, about 2.3
    // minutes); the stall is still reached, as the mutation in the README's
    // table shows.
    check(Preemptions::AtMost(1), || {
        let pool = builder(2, 1).membarrier(true).build().unwrap();
        let mut first = pool.send_and_receive([1, 0].map(|id| AddRequest::new(id, ()))).unwrap();
        assert_eq!(first.next().unwrap().unwrap().id, 1);
        let second: Vec<u64> =
            pool.send_and_receive([AddRequest::new(2, ())]).unwrap().map(|r| r.unwrap().id).collect();
        assert_eq!(second, [2]);
        let rest: Vec<u64> = first.map(|r| r.unwrap().id).collect();
        assert_eq!(rest, [0]);
    });
}
