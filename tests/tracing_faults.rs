//! With the `tracing` feature, a subscriber that panics (on every event, on
//! every other span's creation and entry, and on leaving and closing the
//! others) costs the events and spans, not the pool: no worker dies, no call
//! aborts the process, and no thread's exit does. Its own binary, since the
//! subscriber is global.
#![cfg(feature = "tracing")]

mod common;

use common::*;
use shardpool::{AddRequest, Error, Pinning, ThreadPool};
use std::sync::atomic::{AtomicUsize, Ordering};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// How many times the subscriber was called (and panicked).
static CALLS: AtomicUsize = AtomicUsize::new(0);
/// Panics by hook: new_span, enter, exit, try_close, event.
static BY_HOOK: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];
const HOOKS: [&str; 5] = ["new_span", "enter", "exit", "try_close", "event"];
/// How many enters were asked for.
static ENTERS: AtomicUsize = AtomicUsize::new(0);
/// How many spans were asked for.
static SPANS: AtomicUsize = AtomicUsize::new(0);

struct Panicking;

impl Panicking {
    fn fail(&self, what: &str) -> ! {
        CALLS.fetch_add(1, Ordering::SeqCst);
        if let Some(i) = HOOKS.iter().position(|h| *h == what) {
            BY_HOOK[i].fetch_add(1, Ordering::SeqCst);
        }
        panic!("the subscriber fails on {what}")
    }
}

impl Subscriber for Panicking {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "shardpool"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Every other span is made, so that its enter, exit and close are
        // called (and panic) too.
        if SPANS.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            self.fail("new_span")
        }
        Id::from_u64(1)
    }
    fn try_close(&self, _: Id) -> bool {
        self.fail("try_close")
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {
        self.fail("event")
    }
    fn enter(&self, _: &Id) {
        // Every other enter succeeds, so that exit is called (and panics).
        if ENTERS.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            self.fail("enter")
        }
    }
    fn exit(&self, _: &Id) {
        self.fail("exit")
    }
}

#[test]
fn a_panicking_subscriber_costs_events_not_workers_or_threads() {
    tracing::subscriber::set_global_default(Panicking).unwrap();
    let pool = ThreadPool::<Node>::builder().workers(2).pinning(Pinning::Off).build().unwrap();
    pool.send_and_receive_once(AddRequest::new(1, NodeInit::value(1))).unwrap();
    // A faulting item is reported (an event) and still answered.
    assert!(matches!(pool.send_and_receive_once(Boom(1)), Err(Error::Panicked { id: 1, .. })));
    // A caller thread that exits retires its handle from a thread-local
    // destructor, which emits an event: the panic there must not abort.
    std::thread::scope(|s| {
        s.spawn(|| {
            pool.send_and_receive_once(AddRequest::new(2, NodeInit::value(2))).unwrap();
        });
    });
    // Both workers still serve.
    assert_eq!(pool.send_and_receive_once(Get(2)), Ok(2));
    pool.send_and_receive_once(AddRequest::new(3, NodeInit::value(3))).unwrap();
    assert_eq!(pool.send_and_receive_once(Get(3)), Ok(3));
    pool.shutdown().unwrap();
    assert!(CALLS.load(Ordering::SeqCst) > 0, "the subscriber was called");
    // Every kind of call into it panicked at least once and was survived.
    for (hook, n) in HOOKS.iter().zip(&BY_HOOK) {
        assert!(n.load(Ordering::SeqCst) > 0, "no panic in {hook}");
    }
}
