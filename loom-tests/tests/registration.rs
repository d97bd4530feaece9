//! Model 3: caller registration and retirement (`src/caller/mod.rs`, and the
//! worker's `accept` / lane removal in `src/worker/mod.rs`).
//!
//! A thread's first call registers it: its ring goes to the worker through
//! the registration queue and a CONTROL ring. When the thread exits, its
//! handle retires: it marks itself retired and rings its lane; the worker
//! drops the lane once it is empty, and the lane id is reused.
#![cfg(shardpool_loom)]

use loom::thread;
use loom_tests::{check, pool, Preemptions};
use shardpool::loom_api::live_callers;
use shardpool::AddRequest;

/// A caller thread registers and calls while another caller's request is
/// being drained, then exits (retires) while the worker may still be
/// draining: both calls are answered, and the worker reclaims the exited
/// caller's lane while the pool runs (the count of live callers falls back to
/// one; loom also reports any `Arc` leaked at the end).
#[test]
fn caller_arriving_and_retiring_while_the_worker_drains() {
    check(Preemptions::Env, || {
        let pool = loom::sync::Arc::new(pool(1, 2));
        let p = pool.clone();
        let other = thread::spawn(move || {
            assert_eq!(p.send_and_receive_once(AddRequest::new(2, ())).unwrap().id, 2);
        });
        assert_eq!(pool.send_and_receive_once(AddRequest::new(1, ())).unwrap().id, 1);
        other.join().unwrap();
        // The exited thread's retirement rang its lane; the worker must drop
        // the lane without any further call from us.
        while live_callers(&pool) != 1 {
            thread::yield_now();
        }
    });
}

/// Two caller threads that each call once and exit, racing with each other's
/// registration and retirement; then a third, later caller reuses a freed
/// lane id (a retired lane must not be confused with the new one sharing its
/// hint bit) and is answered.
#[test]
fn retired_lane_is_reused_by_a_later_caller() {
    // Five threads: two preemptions take more than ten minutes.
    check(Preemptions::AtMost(1), || {
        let pool = loom::sync::Arc::new(pool(1, 2));
        let callers: Vec<_> = (1..=2)
            .map(|id| {
                let p = pool.clone();
                thread::spawn(move || {
                    assert_eq!(p.send_and_receive_once(AddRequest::new(id, ())).unwrap().id, id);
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        let p = pool.clone();
        thread::spawn(move || {
            assert_eq!(p.send_and_receive_once(AddRequest::new(3, ())).unwrap().id, 3);
        })
        .join()
        .unwrap();
        while live_callers(&pool) != 0 {
            thread::yield_now();
        }
    });
}
