//! With the `tracing` feature, the pool reports its lifecycle and faults.
#![cfg(feature = "tracing")]

mod common;

use common::*;
use shardpool::{AddRequest, Error, Pinning, RemoveRequest, ThreadPool};
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event's message, from every thread.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Collect;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Collect {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "shardpool"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        EVENTS.lock().unwrap().push(m.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn lifecycle_and_faults_are_reported() {
    tracing::subscriber::set_global_default(Collect).unwrap();
    let pool = ThreadPool::<Node>::builder().workers(2).pinning(Pinning::Off).build().unwrap();
    pool.send_and_receive_once(AddRequest::new(1, NodeInit::value(1))).unwrap();
    assert!(matches!(pool.send_and_receive_once(Boom(1)), Err(Error::Panicked { id: 1, .. })));
    assert_eq!(pool.send_and_receive_once(Get(1)), Err(Error::UnknownId { id: 1 }));
    pool.send_and_receive_once(AddRequest::new(2, NodeInit::value(2))).unwrap();
    assert!(pool.send_and_receive_once(RemoveRequest(2)).unwrap().existed);
    pool.shutdown().unwrap();

    let events = EVENTS.lock().unwrap();
    for expected in [
        "worker started",
        "caller thread registered",
        "item added",
        "item panicked and was removed",
        "request for an unknown id",
        "item removed",
        "pool shutting down",
        "worker shutting down",
        "worker exited",
    ] {
        assert!(events.iter().any(|e| e == expected), "no {expected:?} event in {events:?}");
    }
    assert_eq!(events.iter().filter(|e| *e == "worker started").count(), 2);
}
