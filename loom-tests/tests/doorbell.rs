//! Model 2: worker sleep and wake-up (`src/doorbell.rs` and the worker loop
//! in `src/worker/mod.rs`).
//!
//! A caller pushes into its ring and then rings the doorbell; the worker
//! takes the doorbell's bits, drains the hinted rings, and when it found
//! nothing tries to sleep. A push racing with that decision must never be
//! left in a ring with the worker asleep.
#![cfg(shardpool_loom)]

use loom::thread;
use loom_tests::{builder, check, pool, Preemptions};
use shardpool::loom_api::{lane_bit, spsc, Doorbell};
use shardpool::AddRequest;
use std::time::Duration;

/// The doorbell protocol on its own, with the worker's loop reduced to its
/// order of steps (`Worker::run` / `Worker::idle` with no spin): take the
/// bits, drain the hinted rings, and only when no hint came, `try_sleep` and
/// `park_until_rung`. Two callers each push one value into their own ring
/// and ring their lane's bit, racing with the worker's sleep and with each
/// other's wake-up (only the one that clears SLEEPING unparks). The worker
/// must receive both values; a lost wake-up leaves it parked, which loom
/// reports as a deadlock.
#[test]
fn push_racing_the_workers_sleep_is_never_lost() {
    check(Preemptions::Unbounded, || {
        let bell = loom::sync::Arc::new(Doorbell::new());
        bell.set_thread(thread::current());
        let mut consumers = Vec::new();
        let mut callers = Vec::new();
        for lane in 0..2u32 {
            let (mut producer, consumer) = spsc::<u32>(1);
            consumers.push(consumer);
            let bell = bell.clone();
            callers.push(thread::spawn(move || {
                producer.push(lane).unwrap();
                bell.ring(lane_bit(lane));
            }));
        }
        let mut got = Vec::new();
        while got.len() < 2 {
            let bits = bell.take();
            for (lane, consumer) in consumers.iter_mut().enumerate() {
                if bits & lane_bit(lane as u32) != 0 {
                    got.extend(std::iter::from_fn(|| consumer.pop()));
                }
            }
            if bits == 0 && bell.try_sleep() {
                bell.park_until_rung();
            }
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1]);
        for c in callers {
            c.join().unwrap();
        }
    });
}

/// The real worker loop: a one-worker pool whose worker goes to sleep as
/// soon as it is idle, and a caller whose first call (registration, push,
/// doorbell, wait on its slot) races with that. The call is answered, and
/// shutdown (dropping the pool) wakes and joins the worker.
#[test]
fn call_racing_the_idle_workers_sleep_is_answered() {
    check(Preemptions::Env, || {
        let pool = pool(1, 2);
        let added = pool.send_and_receive_once(AddRequest::new(1, ())).unwrap();
        assert_eq!(added.id, 1);
        drop(pool);
    });
}

/// Two calls in a row from one caller: the second push races with the
/// worker going back to sleep after answering the first (the hint bit is
/// set again after the worker's `take`, so its `try_sleep` must fail or
/// the caller must wake it).
#[test]
fn second_call_racing_the_worker_going_back_to_sleep_is_answered() {
    check(Preemptions::Env, || {
        let pool = pool(1, 2);
        for id in 1..=2 {
            assert_eq!(pool.send_and_receive_once(AddRequest::new(id, ())).unwrap().id, id);
        }
        drop(pool);
    });
}

/// The same two calls with an idle worker that spins before sleeping
/// (under loom: one yield, `Worker::idle`). The second push may be seen by
/// the spin's look at the doorbell, by the failed CAS to SLEEPING, or by the
/// wake-up; it is answered either way.
#[test]
fn push_racing_the_idle_workers_spin_is_answered() {
    check(Preemptions::Env, || {
        let pool = builder(1, 2).worker_spin(Duration::from_nanos(1)).build().unwrap();
        for id in 1..=2 {
            assert_eq!(pool.send_and_receive_once(AddRequest::new(id, ())).unwrap().id, id);
        }
        drop(pool);
    });
}
