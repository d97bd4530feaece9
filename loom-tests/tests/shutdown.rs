//! Model 4: shutdown racing with callers (the gate in `src/gate/`, the
//! worker's shutdown in `src/worker/mod.rs`, `Shared::close` in `src/shared.rs`).
//!
//! Every request a caller manages to send before the pool closes is
//! answered; every other one fails with `Error::Shutdown`; nobody is left
//! parked (loom reports a thread parked forever as a deadlock) and shutdown
//! returns with every worker joined.
#![cfg(shardpool_loom)]

use loom::thread;
use loom_tests::{check, pool, Preemptions, Seen};
use shardpool::{AddRequest, Error};

/// A request's outcome during shutdown: answered, or refused as `Shutdown`.
fn answered_or_refused(result: Result<shardpool::AddResponse, Error>, id: u64) -> bool {
    match result {
        Ok(added) => {
            assert_eq!(added.id, id);
            true
        }
        Err(Error::Shutdown) => false,
        Err(e) => panic!("request {id}: unexpected error {e:?}"),
    }
}

/// A caller thread registers and makes two calls while the main thread shuts
/// the pool down: the registration and each call race with `close` and with
/// the worker's drain-and-exit. Each call is answered or refused with
/// `Shutdown`, and once one is refused so is the next.
#[test]
fn calls_racing_shutdown_are_answered_or_refused() {
    check(Preemptions::Env, || {
        let pool = loom::sync::Arc::new(pool(1, 2));
        let p = pool.clone();
        let caller = thread::spawn(move || {
            let first = answered_or_refused(p.send_and_receive_once(AddRequest::new(1, ())), 1);
            let second = answered_or_refused(p.send_and_receive_once(AddRequest::new(2, ())), 2);
            assert!(first || !second, "a call was answered after an earlier one was refused");
        });
        pool.shutdown().unwrap();
        caller.join().unwrap();
        assert!(pool.is_shut_down());
    });
}

/// A batch of two requests racing shutdown: every response is an answer or
/// `Shutdown` (a request refused at the gate is answered locally), answers
/// come before refusals, the iterator yields exactly two, and neither the
/// caller nor shutdown hangs.
#[test]
fn batch_racing_shutdown_is_answered_or_refused() {
    check(Preemptions::Env, || {
        let pool = loom::sync::Arc::new(pool(1, 2));
        let p = pool.clone();
        let caller = thread::spawn(move || {
            let responses = match p.send_and_receive((1..=2).map(|id| AddRequest::new(id, ()))) {
                Ok(responses) => responses,
                // The pool was already closed when the batch began.
                Err(e) => return assert_eq!(e, Error::Shutdown),
            };
            let results: Vec<_> = responses.collect();
            assert_eq!(results.len(), 2);
            let answered: Vec<bool> =
                (1..=2).zip(results).map(|(id, r)| answered_or_refused(r, id)).collect();
            assert!(answered[0] || !answered[1], "a request was answered after an earlier one was refused");
        });
        pool.shutdown().unwrap();
        caller.join().unwrap();
    });
}

/// Two callers, one already registered, racing shutdown: the registered one
/// calls again while a new one registers; shutdown waits for whichever is
/// inside its gate and answers what it sent.
#[test]
fn registered_and_arriving_callers_racing_shutdown() {
    check(Preemptions::Env, || {
        let pool = loom::sync::Arc::new(pool(1, 2));
        let p = pool.clone();
        let (tx, rx) = loom::sync::mpsc::channel::<()>();
        let registered = thread::spawn(move || {
            assert_eq!(p.send_and_receive_once(AddRequest::new(1, ())).unwrap().id, 1);
            tx.send(()).unwrap();
            answered_or_refused(p.send_and_receive_once(AddRequest::new(2, ())), 2);
        });
        rx.recv().unwrap();
        let p = pool.clone();
        let arriving = thread::spawn(move || {
            answered_or_refused(p.send_and_receive_once(AddRequest::new(3, ())), 3);
        });
        pool.shutdown().unwrap();
        registered.join().unwrap();
        arriving.join().unwrap();
    });
}

/// Two threads each make their first call, so each registers (pushing its
/// ring to the worker and ringing CONTROL), while the main thread shuts the
/// pool down. A registration's CONTROL can reach the worker after `closed`
/// is stored but before shutdown's heavy barrier: the worker must not start
/// its shutdown on that bit (only the seal does), and `Gate::quiesced`
/// asserts under loom that a worker quiesces only after the barrier. Every
/// call is answered or refused with `Shutdown`, nobody hangs, the worker is
/// joined.
///
/// Each execution's pair of outcomes is recorded outside the model, and all
/// four pairs must have been seen: the model does not pass by exploring only
/// the schedules where shutdown wins.
#[test]
fn two_new_callers_registering_while_shutdown_runs() {
    let seen = Seen::default();
    let record = seen.clone();
    // Four threads (main, worker, two callers). One preemption never has
    // both callers answered (`seen` fails on `[true, true]`); two take
    // about 300,000 executions; three would take far longer than the suite's
    // budget.
    check(Preemptions::AtMost(2), move || {
        let pool = loom::sync::Arc::new(pool(1, 2));
        let callers: Vec<_> = (1..=2)
            .map(|id| {
                let p = pool.clone();
                thread::spawn(move || {
                    answered_or_refused(p.send_and_receive_once(AddRequest::new(id, ())), id)
                })
            })
            .collect();
        pool.shutdown().unwrap();
        let answered: Vec<bool> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert!(pool.is_shut_down());
        record.insert(format!("{answered:?}"));
    });
    seen.assert_all(["[false, false]", "[false, true]", "[true, false]", "[true, true]"]);
}
