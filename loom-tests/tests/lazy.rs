//! Lazy announcements (`src/doorbell.rs`): a batch push that no caller rang
//! is found by the worker before it parks. The caller's side (push, light
//! barrier, look for SLEEPING) is in `CallerHandle::announce_push`, the
//! worker's (announce sleep, heavy barrier, poll every ring) in
//! `Worker::idle`.
#![cfg(shardpool_loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom_tests::{check, Preemptions};
use shardpool::{AddRequest, Message, NewItemError, Pinning, PoolItem, Reply, Request, ThreadPool};
use std::time::Duration;

/// A caller spin long enough that callers announce their sleeps behind the
/// heavy barrier (a short one makes them sleep on their reply cells,
/// `Local::choose_sleep`). Under loom any non-zero spin is one yield.
const ANNOUNCING: Duration = Duration::from_millis(1);

/// An item that raises a flag when it is called.
struct Flag(Arc<AtomicBool>);

/// Call the item `.0`.
struct Poke(u64);

impl PoolItem for Flag {
    type Init = Arc<AtomicBool>;
    type Api = ();
    type Response = ();
    type ThreadState = ();

    fn new_pool_item(_: u64, flag: Arc<AtomicBool>) -> Result<Self, NewItemError> {
        Ok(Flag(flag))
    }

    fn process_message(&mut self, _: ()) {
        self.0.store(true, Ordering::Release);
    }
}

impl Request<Flag> for Poke {
    type Response = ();
    fn into_message(self) -> Message<Flag> {
        Message::Call { id: self.0, request: () }
    }
    fn from_reply(reply: Reply<Flag>) -> Option<()> {
        matches!(reply, Reply::Response(())).then_some(())
    }
}

/// A batch's iterator yields one request, then blocks until that request
/// has been processed, as an iterator reading a socket might. Nobody rings
/// the worker in between: the push was announced lazily (the worker was
/// awake, or going to sleep, when the caller looked). The worker, idle with
/// no spin, announces its sleep, passes the heavy barrier and polls: it
/// must find the push (or the caller must have seen SLEEPING and rung).
/// A push stranded in the ring leaves the iterator spinning for ever, which
/// loom reports as exceeding its branch bound.
#[test]
fn a_lazily_announced_push_is_found_while_the_iterator_blocks() {
    check(Preemptions::Env, || {
        let flag = Arc::new(AtomicBool::new(false));
        let pool = ThreadPool::<Flag>::builder()
            .workers(1)
            .ring_capacity(2)
            // Callers that announce their sleep (`ANNOUNCING`).
            .caller_spin(ANNOUNCING)
            .worker_spin(Duration::ZERO)
            .pinning(Pinning::Off)
            .build()
            .unwrap();
        pool.send_and_receive_once(AddRequest::new(0, flag.clone())).unwrap();
        let mut first = true;
        let requests = std::iter::from_fn(move || {
            if std::mem::take(&mut first) {
                return Some(Poke(0));
            }
            while !flag.load(Ordering::Acquire) {
                loom::thread::yield_now();
            }
            None
        });
        assert_eq!(pool.send_and_receive(requests).unwrap().filter(Result::is_ok).count(), 1);
    });
}

/// Single calls, lazily announced (`CallerHandle::announce`): two calls in
/// a row from one caller to a worker that goes to sleep as soon as it is
/// idle. Nobody rings an awake worker: each push is found by the worker's
/// look at its rings (the pass after it answered the first call, or Q
/// after its heavy barrier), or the caller saw SLEEPING and rang. Both are
/// answered; a push stranded in the ring leaves the caller parked, which
/// loom reports as a deadlock.
#[test]
fn lazily_announced_calls_racing_the_workers_sleep_are_answered() {
    check(Preemptions::Env, || {
        let pool = loom_tests::builder(1, 2).caller_spin(ANNOUNCING).membarrier(true).build().unwrap();
        for id in 1..=2 {
            assert_eq!(pool.send_and_receive_once(AddRequest::new(id, ())).unwrap().id, id);
        }
        drop(pool);
    });
}

/// The same two calls to a worker that spins once (under loom, one yield)
/// before it sleeps: its spin's look at the rings may find the second push,
/// and the pass that follows then skips its own look (`Host::looked`); or
/// the worker sleeps, and its poll after the heavy barrier, or the caller's
/// ring, finds it. Both answered; a push stranded leaves the caller parked,
/// which loom reports as a deadlock.
#[test]
fn lazily_announced_calls_to_a_worker_that_spins_are_answered() {
    check(Preemptions::Env, || {
        let pool = loom_tests::builder(1, 2)
            .caller_spin(ANNOUNCING)
            .worker_spin(Duration::from_nanos(1))
            .membarrier(true)
            .build()
            .unwrap();
        for id in 1..=2 {
            assert_eq!(pool.send_and_receive_once(AddRequest::new(id, ())).unwrap().id, id);
        }
        drop(pool);
    });
}

/// The same two calls from a caller with no spin, which sleeps on its reply
/// cells (`src/reply.rs`) while its pushes are still announced lazily: the
/// worker's look at its rings (or its poll after the heavy barrier) finds
/// each push, and its swap into the cell wakes the parked caller.
#[test]
fn lazily_announced_calls_from_a_caller_sleeping_on_its_cells_are_answered() {
    check(Preemptions::Env, || {
        let pool = loom_tests::builder(1, 2).membarrier(true).build().unwrap();
        for id in 1..=2 {
            assert_eq!(pool.send_and_receive_once(AddRequest::new(id, ())).unwrap().id, id);
        }
        drop(pool);
    });
}
