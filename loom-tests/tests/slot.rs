//! Model 1: the response slot handshake (`src/slot.rs`).
//!
//! The caller arms a slot, the worker publishes into it, and the caller
//! spins, then parks, and takes the reply. Loom runs the worker's publish at
//! every point of the caller's wait: before it looks, while it spins, between
//! its last look and its WAITING -> PARKED CAS, and after it parked.
#![cfg(shardpool_loom)]

use loom::thread;
use loom_tests::{check, Preemptions};
use shardpool::loom_api::Slots;
use std::time::Duration;

/// Under loom a non-zero spin is one `yield_now` before parking.
const SPIN: Duration = Duration::from_nanos(1);

/// One request: the caller arms slot 0, a worker thread publishes `value`
/// into it, and the caller waits with `spin` and must get exactly `value`.
fn one_reply(spin: Duration) {
    check(Preemptions::Unbounded, move || {
        let slots = Slots::<u64>::new();
        let reply = slots.arm(0);
        let caller = thread::current();
        let worker = thread::spawn(move || {
            assert!(reply.publish(7, &caller).is_ok(), "an armed slot accepts its reply");
        });
        assert_eq!(slots.wait(0, spin), 7);
        worker.join().unwrap();
    });
}

/// A reply published while the caller spins, is about to park, or has
/// parked is received, and the caller is woken (loom reports a caller left
/// parked as a deadlock).
#[test]
fn reply_published_while_caller_spins_or_parks_is_received() {
    one_reply(SPIN);
}

/// The same with no spin: the caller goes straight to the CAS and the park,
/// racing the worker's publishing swap.
#[test]
fn reply_published_while_caller_parks_without_spinning_is_received() {
    one_reply(Duration::ZERO);
}

/// Two slots, answered in order: the unpark for the first slot may come
/// after the caller already saw it READY and moved on to park on the second.
/// That stray token must not end the second wait early (the caller re-checks
/// READY after every wake-up), and the second wake-up must not be lost.
#[test]
fn stray_unpark_from_previous_slot_does_not_end_next_wait() {
    check(Preemptions::Unbounded, || {
        let slots = Slots::<u64>::new();
        let (first, second) = (slots.arm(0), slots.arm(1));
        let caller = thread::current();
        let worker = thread::spawn(move || {
            assert!(first.publish(1, &caller).is_ok());
            assert!(second.publish(2, &caller).is_ok());
        });
        assert_eq!(slots.wait(0, Duration::ZERO), 1);
        assert_eq!(slots.wait(1, Duration::ZERO), 2);
        worker.join().unwrap();
    });
}

/// A reply carrying an old generation is never read. The slot's first use,
/// generation 0, is answered and taken; the caller re-arms it for generation
/// 1 and waits, while a late duplicate of the first reply and the real second
/// reply race with each other and with the caller's spin, CAS and park. The
/// duplicate is refused whatever the slot's state (WAITING, PARKED or READY
/// of generation 1), and the caller reads only the real reply.
///
/// The duplicate is sent after the re-arm, the case the generation exists
/// for (a duplicate sent before it finds the slot EMPTY or READY of the
/// first generation and is refused by the phase check alone).
#[test]
fn stale_generation_is_never_read() {
    check(Preemptions::Env, || {
        let slots = Slots::<u64>::new();
        let first = slots.arm(0);
        let caller = thread::current();
        thread::spawn(move || assert!(first.publish(1, &caller).is_ok())).join().unwrap();
        assert_eq!(slots.wait(0, Duration::ZERO), 1);

        let second = slots.arm(0);
        // SAFETY: generation 0 was answered and taken above; the slot has
        // moved past it, so no other reference of generation 0 is published.
        let duplicate = unsafe { slots.stale(0, 0) };
        let caller = thread::current();
        let late = thread::spawn(move || {
            assert_eq!(duplicate.publish(99, &caller), Err(99), "a stale generation is refused");
        });
        let caller = thread::current();
        let worker = thread::spawn(move || assert!(second.publish(2, &caller).is_ok()));
        assert_eq!(slots.wait(0, SPIN), 2);
        late.join().unwrap();
        worker.join().unwrap();
    });
}
