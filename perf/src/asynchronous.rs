//! Async callers: one trivial request at a time awaited in a tokio task,
//! and a batch of 1024 streamed to one, against the blocking forms and
//! against what an async service would do without an async API
//! (`spawn_blocking`) or with the usual tokio actor (a task, a bounded
//! `mpsc` of requests, a `oneshot` per reply). The same subjects as
//! `benches/async_calls.rs`.
//!
//! The task runs in `Runtime::block_on` on the measuring thread (the last
//! core); shardpool's worker and the runtime's one worker thread are on the
//! first core. Each timed unit is 256 calls (or one batch) inside one
//! `block_on`, so the runtime's entry is spread thin.

use crate::common::echo::{echo_pool, ping, ping_batch, ITEMS};
use crate::common::place;
use crate::common::tokio_subjects::{
    actor_calls, async_batch, runtime, shardpool_calls, spawn_blocking_calls, start_actor,
};
use crate::measure::{fmt_ns, fmt_x, ns_per_elem, Budget, Floor, Floors};
use crate::table::Table;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// Calls per timed unit.
const CALLS: u64 = 256;

pub struct Row {
    pub subject: &'static str,
    /// Nanoseconds per call (per element for a batch).
    pub ns: f64,
    pub floor: Floor,
}

pub struct Async {
    pub calls: Vec<Row>,
    pub batches: Vec<Row>,
}

pub const BLOCKING: &str = "shardpool, blocking call";
pub const ASYNC: &str = "shardpool, async call";
pub const SPAWN_BLOCKING: &str = "spawn_blocking around the blocking call";
pub const ACTOR: &str = "tokio actor (mpsc + oneshot), on the runtime's worker";
pub const ACTOR_LOCAL: &str = "tokio actor, on a current-thread runtime shared with the caller";
pub const BATCH_BLOCKING: &str = "shardpool, blocking batch of 1024";
pub const BATCH_ASYNC: &str = "shardpool, async batch of 1024";

pub fn run(budget: Budget, floors: &mut Floors) -> Async {
    let per = budget.time(Duration::from_millis(300));
    let mut calls = Vec::new();
    for subject in [BLOCKING, ASYNC, SPAWN_BLOCKING, ACTOR, ACTOR_LOCAL] {
        eprintln!("  async: {subject}");
        let (ns, floor) = floors.around(&format!("async, {subject}"), || {
            place::on_driver(Some(place::caller_core()), || {
                // Only the shardpool subjects have a pool (its idle worker
                // would otherwise share the actors' core).
                let pool = || Arc::new(echo_pool(1));
                match subject {
                    BLOCKING => {
                        let pool = pool();
                        ns_per_elem(per, CALLS, || {
                            for i in 0..CALLS {
                                black_box(ping(&pool, i % ITEMS));
                            }
                        })
                    }
                    ASYNC => {
                        let (rt, pool) = (runtime(), pool());
                        ns_per_elem(per, CALLS, || rt.block_on(shardpool_calls(&pool, CALLS)))
                    }
                    SPAWN_BLOCKING => {
                        let (rt, pool) = (runtime(), pool());
                        ns_per_elem(per, CALLS, || rt.block_on(spawn_blocking_calls(&pool, CALLS)))
                    }
                    _ => {
                        let rt = if subject == ACTOR_LOCAL {
                            tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime")
                        } else {
                            runtime()
                        };
                        let (tx, server) = start_actor(&rt);
                        let ns = ns_per_elem(per, CALLS, || rt.block_on(actor_calls(&tx, CALLS)));
                        drop(tx);
                        rt.block_on(server).expect("the actor ends");
                        ns
                    }
                }
            })
        });
        calls.push(Row { subject, ns, floor });
    }
    let mut batches = Vec::new();
    for subject in [BATCH_BLOCKING, BATCH_ASYNC] {
        eprintln!("  async: {subject}");
        let (ns, floor) = floors.around(&format!("async, {subject}"), || {
            place::on_driver(Some(place::caller_core()), || {
                let pool = echo_pool(1);
                if subject == BATCH_BLOCKING {
                    ns_per_elem(per, 1024, || {
                        black_box(ping_batch(&pool, 0, 1024));
                    })
                } else {
                    let rt = runtime();
                    ns_per_elem(per, 1024, || {
                        black_box(rt.block_on(async_batch(&pool, 1024)));
                    })
                }
            })
        });
        batches.push(Row { subject, ns, floor });
    }
    Async { calls, batches }
}

impl Async {
    /// Nanoseconds per call (or element) of `subject`.
    pub fn get(&self, subject: &str) -> f64 {
        self.calls.iter().chain(&self.batches).find(|r| r.subject == subject).map_or(f64::NAN, |r| r.ns)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::from("## Async callers\n\n");
        md += "One trivial request at a time, awaited in a tokio task on the measuring thread \
               (`Runtime::block_on`; the server on the first core), 256 calls per `block_on`, \
               the median of rounds of about 5 ms; and a batch of 1024. The subjects are \
               `benches/common/tokio_subjects.rs`, which `cargo bench --bench async_calls` \
               runs too.\n\n";
        let blocking = self.get(BLOCKING);
        let mut t = Table::new(&["subject", "per call", "÷ blocking call", "floor"]);
        for r in &self.calls {
            t.row(vec![r.subject.into(), fmt_ns(r.ns), fmt_x(r.ns / blocking), r.floor.show()]);
        }
        md += &t.markdown();
        md += "\n";
        let blocking = self.get(BATCH_BLOCKING);
        let mut t = Table::new(&["subject", "per request", "÷ blocking batch", "floor"]);
        for r in &self.batches {
            t.row(vec![r.subject.into(), fmt_ns(r.ns), fmt_x(r.ns / blocking), r.floor.show()]);
        }
        md += &t.markdown();
        md
    }
}
