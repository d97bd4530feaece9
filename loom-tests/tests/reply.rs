//! Model 1: reply cells and the caller's sleep (`src/reply.rs`).
//!
//! A worker publishes replies into a lane's cells and wakes the caller if
//! it sleeps; the caller spins, then announces its sleep, passes the heavy
//! barrier, looks again and parks. Loom runs the worker's publish at every
//! point of the caller's wait: before it looks, while it spins, between its
//! announcement and its last look, and after it parked.
#![cfg(shardpool_loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{check, Preemptions};
use shardpool::loom_api::{reply_lane, Sleeper};
use std::time::Duration;

/// Under loom a non-zero spin is one `yield_now` before sleeping.
const SPIN: Duration = Duration::from_nanos(1);

/// One reply: a worker thread publishes `7` and wakes the caller, which
/// waits with `spin` and must get exactly `7`.
fn one_reply(spin: Duration) {
    check(Preemptions::Unbounded, move || {
        let (mut writer, mut reader) = reply_lane::<u64>(2);
        let sleeper = Arc::new(Sleeper::new(thread::current()));
        let waker = sleeper.clone();
        let worker = thread::spawn(move || {
            assert!(writer.publish(7).is_ok(), "a free cell takes its reply");
            waker.after_publish();
        });
        sleeper.wait(spin, &reader);
        assert_eq!(reader.take(), Some(7));
        worker.join().unwrap();
    });
}

/// A reply published while the caller spins, is about to sleep or sleeps
/// is received, and the caller is woken (loom reports a caller left parked
/// as a deadlock).
#[test]
fn reply_published_while_caller_spins_or_sleeps_is_received() {
    one_reply(SPIN);
}

/// The same with no spin: the caller goes straight to its announcement,
/// the heavy barrier and the park, racing the worker's publish, light
/// barrier and look at `sleeping`.
#[test]
fn reply_published_while_caller_sleeps_without_spinning_is_received() {
    one_reply(Duration::ZERO);
}

/// Two replies, waited for one after the other with no spin. The worker's
/// wake-up for the first may come after the caller has seen the first
/// reply and started to wait for the second: that stray wake-up ends the
/// second wait's park, and the caller must announce its sleep again before
/// it parks anew, or the worker (which cleared `sleeping` with that
/// wake-up) would publish the second reply without waking it.
#[test]
fn stray_wake_up_from_the_previous_reply_does_not_lose_the_next() {
    check(Preemptions::Unbounded, || {
        let (mut writer, mut reader) = reply_lane::<u64>(2);
        let sleeper = Arc::new(Sleeper::new(thread::current()));
        let waker = sleeper.clone();
        let worker = thread::spawn(move || {
            for v in [1, 2] {
                assert!(writer.publish(v).is_ok());
                waker.after_publish();
            }
        });
        for v in [1, 2] {
            sleeper.wait(Duration::ZERO, &reader);
            assert_eq!(reader.take(), Some(v));
        }
        worker.join().unwrap();
    });
}

/// A lane of one cell: the worker's second reply finds the cell full until
/// the caller has taken the first, and is written only after that take
/// (loom reports a write racing the caller's read of the cell). Both
/// replies arrive, in order.
#[test]
fn a_cell_is_written_again_only_after_its_reply_was_taken() {
    check(Preemptions::Env, || {
        let (mut writer, mut reader) = reply_lane::<u64>(1);
        let worker = thread::spawn(move || {
            assert!(writer.publish(1).is_ok());
            let mut v = 2;
            while let Err(back) = writer.publish(v) {
                v = back;
                thread::yield_now();
            }
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            match reader.take() {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        assert_eq!(got, [1, 2]);
        worker.join().unwrap();
    });
}

/// Sleeping on the cell: the caller marks the next reply's cell waited for
/// (a compare-and-swap) and parks; the worker publishes with a swap and
/// unparks it if it saw the mark. Two replies, waited for one after the
/// other with `spin`, both received, whatever the interleaving of the mark,
/// the swap and the park (a caller left parked is a deadlock).
fn on_cell(spin: Duration) {
    check(Preemptions::Unbounded, move || {
        let (mut writer, mut reader) = reply_lane::<u64>(2);
        let sleeper = Arc::new(Sleeper::new(thread::current()));
        sleeper.set_on_cell(true);
        let waker = sleeper.clone();
        let worker = thread::spawn(move || {
            for v in [1, 2] {
                assert!(waker.publish_to(&mut writer, v).is_ok());
            }
        });
        for v in [1, 2] {
            sleeper.wait(spin, &reader);
            assert_eq!(reader.take(), Some(v));
        }
        worker.join().unwrap();
    });
}

/// Sleeping on the cell, with no spin.
#[test]
fn replies_to_a_caller_sleeping_on_its_cell_are_received() {
    on_cell(Duration::ZERO);
}

/// Sleeping on the cell after a spin (one yield under loom).
#[test]
fn replies_to_a_caller_spinning_then_sleeping_on_its_cell_are_received() {
    on_cell(SPIN);
}
