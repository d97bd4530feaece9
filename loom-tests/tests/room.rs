//! Async callers waiting for room in a full ring (`src/room.rs`): a future
//! that finds its ring full leaves its waker with the lane, announces it
//! (`waiting`, then the heavy barrier) and tries its push once more; the
//! worker, after each drained chunk, passes its light barrier and wakes
//! whoever waits. Loom runs the worker's drain at every point of the
//! future's wait: a future left waiting with the ring drained is reported
//! as a deadlock (loom's `block_on` parks between polls).
#![cfg(shardpool_loom)]

use loom_tests::{check, pool, Preemptions};
use shardpool::AddRequest;

/// A ring of one, filled by a request sent without a reply; then an async
/// call, which finds the ring full (unless the worker drained it first) and
/// must be woken when the worker frees it. Answered, and the pool shuts
/// down.
#[test]
fn an_async_call_on_a_full_ring_is_woken_when_the_worker_frees_it() {
    check(Preemptions::AtMost(2), || {
        let pool = pool(1, 1);
        pool.send(AddRequest::new(0, ())).unwrap();
        let added = loom::future::block_on(pool.send_and_receive_once_async(AddRequest::new(1, ()))).unwrap();
        assert_eq!(added.id, 1);
    });
}
