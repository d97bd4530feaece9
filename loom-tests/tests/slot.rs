//! Async reply slots (`src/slot.rs`): a worker publishes a reply into a
//! slot and wakes the waker the receiver left there; the receiver may poll
//! with one waker and then another, or give up, at any point of the
//! worker's publish. Each model checks that the reply is taken exactly once
//! (by the receiver, or dropped by whoever holds it when the receiver has
//! gone), that a receiver left waiting is woken (loom reports one left
//! parked as a deadlock), that the value and the waker are never touched by
//! both sides at once (loom's cell tracking), and that the slot returns to
//! its owner exactly once.
#![cfg(shardpool_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{check, Preemptions};
use shardpool::loom_api::SlotOwner;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

/// A reply that counts its drops.
struct Reply(u64, Arc<AtomicUsize>);

impl Drop for Reply {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

/// A waker that does nothing: a poll whose wake-up nobody waits for.
fn noop() -> Waker {
    Waker::noop().clone()
}

/// The receiver polls once and blocks on the slot (loom's `block_on`
/// parks between polls); the worker publishes at every point of it. The
/// reply is received, and the slot comes back to its owner once.
#[test]
fn a_reply_racing_the_first_poll_is_received() {
    check(Preemptions::Unbounded, || {
        let mut owner = SlotOwner::<u64>::new();
        let h = owner.alloc();
        let worker = {
            let h = h.clone();
            // SAFETY: the one reply to the slot's one request.
            thread::spawn(move || assert!(unsafe { h.publish(7) }.is_none()))
        };
        // SAFETY: polled until `Ready`, then left alone.
        let v = loom::future::block_on(poll_fn(|cx| unsafe { h.poll(cx) }));
        assert_eq!(v, 7);
        worker.join().unwrap();
        assert_eq!(owner.reclaim(), vec![h.addr()], "freed once, by one side");
    });
}

/// The receiver polls with one waker, then blocks with another (the task
/// moved, or its runtime gave it a new waker): the first is replaced while
/// the worker may be reading it, and the second is woken.
#[test]
fn a_reply_racing_a_change_of_waker_wakes_the_new_one() {
    check(Preemptions::Unbounded, || {
        let mut owner = SlotOwner::<u64>::new();
        let h = owner.alloc();
        let worker = {
            let h = h.clone();
            // SAFETY: as above.
            thread::spawn(move || assert!(unsafe { h.publish(8) }.is_none()))
        };
        let first = noop();
        // SAFETY: as above: not polled again after `Ready`.
        let v = match unsafe { h.poll(&mut Context::from_waker(&first)) } {
            Poll::Ready(v) => v,
            Poll::Pending => loom::future::block_on(poll_fn(|cx| unsafe { h.poll(cx) })),
        };
        assert_eq!(v, 8);
        worker.join().unwrap();
        assert_eq!(owner.reclaim(), vec![h.addr()]);
    });
}

/// The receiver polls once, then gives up (the future is dropped), racing
/// the worker's publish: the reply is dropped exactly once, by whichever
/// side held it, and the slot comes back once.
#[test]
fn a_reply_racing_a_cancellation_is_dropped_once() {
    check(Preemptions::Unbounded, || {
        let mut owner = SlotOwner::<Reply>::new();
        let h = owner.alloc();
        let drops = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (h, drops) = (h.clone(), drops.clone());
            // SAFETY: as above.
            thread::spawn(move || drop(unsafe { h.publish(Reply(9, drops)) }))
        };
        let waker = noop();
        // SAFETY: closed at most once, and not after `Ready`.
        match unsafe { h.poll(&mut Context::from_waker(&waker)) } {
            Poll::Ready(r) => assert_eq!(r.0, 9),
            Poll::Pending => drop(unsafe { h.close() }),
        }
        worker.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1, "the reply is dropped once");
        assert_eq!(owner.reclaim(), vec![h.addr()]);
    });
}

/// Cancelled before any poll (a timeout that fired at once): the worker's
/// publish races the close alone.
#[test]
fn a_reply_racing_a_cancellation_before_any_poll_is_dropped_once() {
    check(Preemptions::Unbounded, || {
        let mut owner = SlotOwner::<Reply>::new();
        let h = owner.alloc();
        let drops = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (h, drops) = (h.clone(), drops.clone());
            // SAFETY: as above.
            thread::spawn(move || drop(unsafe { h.publish(Reply(1, drops)) }))
        };
        // SAFETY: closed once.
        drop(unsafe { h.close() });
        worker.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert_eq!(owner.reclaim(), vec![h.addr()]);
    });
}

/// Slots freed on two threads at once while the owner empties the returned
/// stack: each comes back exactly once, and a slot handed out again (its
/// state reset by the owner) carries its next reply to a receiver on yet
/// another thread.
#[test]
fn slots_freed_on_two_threads_while_the_owner_reclaims_come_back_once() {
    check(Preemptions::AtMost(2), || {
        let mut owner = SlotOwner::<u64>::new();
        let (a, b) = (owner.alloc(), owner.alloc());
        let freer = |h: shardpool::loom_api::SlotHandle<u64>, v: u64| {
            thread::spawn(move || {
                // SAFETY: one reply, then one close, which takes it (no
                // waker was left) and frees the slot on this thread.
                unsafe {
                    assert!(h.publish(v).is_none());
                    assert_eq!(h.close(), Some(v));
                }
            })
        };
        let (x, y) = (freer(a.clone(), 1), freer(b.clone(), 2));
        let mut back = owner.reclaim();
        x.join().unwrap();
        y.join().unwrap();
        back.extend(owner.reclaim());
        back.sort_unstable();
        let mut both = vec![a.addr(), b.addr()];
        both.sort_unstable();
        assert_eq!(back, both, "each slot back exactly once");
        let c = owner.alloc();
        assert!(c.addr() == a.addr() || c.addr() == b.addr(), "reused, not grown");
        let z = {
            let c = c.clone();
            // SAFETY: the one reply to the reused slot's new request.
            thread::spawn(move || assert!(unsafe { c.publish(3) }.is_none()))
        };
        // SAFETY: polled until `Ready`.
        assert_eq!(loom::future::block_on(poll_fn(|cx| unsafe { c.poll(cx) })), 3);
        z.join().unwrap();
    });
}
