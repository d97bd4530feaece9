//! Nested calls (`src/nest.rs`, `src/worker/nest.rs`): a worker whose
//! handler waits on a call serves its other lanes meanwhile (and sleeps on
//! both its doorbell and its reply when there is nothing to serve), runs a
//! call to its own item inline, refuses a cycle, and shuts down in the
//! middle of a wait. Each model runs the real pool; a worker that stopped
//! serving, or slept through a request or a reply, leaves loom with every
//! thread parked: a deadlock, which it reports.
//!
//! A request deferred behind a waiting item is modelled with a send from
//! the handler the item waits on (two heavier models, a third thread
//! sending while the handler waits, or an async call and a send from one
//! thread, ran past six minutes at one preemption).
#![cfg(shardpool_loom)]

use loom_tests::{check, Preemptions};
use shardpool::{AddRequest, Error, Message, NewItemError, Pinning, PoolItem, Reply, Request, ThreadPool};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// What the items of a model share: their pool, and what happened, in
/// order (a std mutex, outside the model).
#[derive(Default)]
struct Env {
    pool: OnceLock<Weak<ThreadPool<Relay>>>,
    events: std::sync::Mutex<Vec<String>>,
}

type Cell = Arc<Env>;

impl Env {
    fn pool(&self) -> Arc<ThreadPool<Relay>> {
        self.pool.get().and_then(Weak::upgrade).expect("the pool")
    }

    fn event(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

/// An item that passes a call along a path, and keeps a log.
struct Relay {
    pool: Cell,
    log: Vec<u64>,
}

enum Api {
    /// Call the first item of the path with the rest; answer with what it
    /// answered (or with the error).
    Path(Vec<u64>),
    /// Send item `notify` a record (no reply), then go on as `Path(then)`.
    Notify {
        notify: u64,
        then: Vec<u64>,
    },
    /// Call item `.0` with `.1`.
    Via(u64, Box<Api>),
    Record(u64),
}

impl PoolItem for Relay {
    type Init = Cell;
    type Api = Api;
    type Response = Result<Vec<u64>, Error>;
    type ThreadState = ();

    fn new_pool_item(_id: u64, pool: Cell) -> Result<Self, NewItemError> {
        Ok(Relay { pool, log: Vec::new() })
    }

    fn process_message(&mut self, request: Api) -> Result<Vec<u64>, Error> {
        match request {
            Api::Path(path) => match path.split_first() {
                None => Ok(self.log.clone()),
                Some((&next, rest)) => {
                    let pool = self.pool.pool();
                    let r = pool.send_and_receive_once(Call(next, Api::Path(rest.to_vec())))?;
                    self.pool.event(format!("returned from {next}"));
                    r
                }
            },
            Api::Via(to, api) => {
                let r = self.pool.pool().send_and_receive_once(Call(to, *api))?;
                self.pool.event(format!("returned from {to}"));
                r
            }
            Api::Notify { notify, then } => {
                let pool = self.pool.pool();
                pool.send(Call(notify, Api::Record(7))).unwrap();
                self.process_message(Api::Path(then))
            }
            Api::Record(v) => {
                self.pool.event(format!("record {v}"));
                self.log.push(v);
                Ok(self.log.clone())
            }
        }
    }
}

struct Call(u64, Api);

impl Request<Relay> for Call {
    type Response = Result<Vec<u64>, Error>;
    fn into_message(self) -> Message<Relay> {
        Message::Call { id: self.0, request: self.1 }
    }
    fn from_reply(reply: Reply<Relay>) -> Option<Self::Response> {
        match reply {
            Reply::Response(r) => Some(r),
            _ => None,
        }
    }
}

/// A pool of `workers` (item `id` on worker `id % workers`) with items
/// `0..items`, set up as `loom_tests::builder`'s: no spinning, a ring per
/// push. Shut down by the model (dropping it would, too).
fn relays(workers: usize, items: u64) -> (Arc<ThreadPool<Relay>>, Cell) {
    let pool = Arc::new(
        ThreadPool::<Relay>::builder()
            .workers(workers)
            .ring_capacity(2)
            .caller_spin(Duration::ZERO)
            .worker_spin(Duration::ZERO)
            .pinning(Pinning::Off)
            .membarrier(false)
            .build()
            .expect("a pool builds under loom"),
    );
    let cell = Cell::default();
    cell.pool.set(Arc::downgrade(&pool)).unwrap();
    for id in 0..items {
        pool.send_and_receive_once(AddRequest::new(id, cell.clone())).unwrap();
    }
    (pool, cell)
}

/// Item 0 (worker 0) calls item 1 (worker 1), which sends item 0 a record
/// (no reply) and then calls item 2, on worker 0: worker 0 must serve the
/// call while item 0 waits, and wake for it if it sleeps; the record,
/// which finds item 0 busy (waiting, or about to run its handler), must be
/// deferred: run after item 0's handler has returned.
#[test]
fn a_worker_waiting_on_a_call_serves_the_call_that_answers_it_and_defers_a_request_for_the_waiting_item() {
    check(Preemptions::AtMost(1), || {
        let (pool, env) = relays(2, 3);
        let notify = Api::Notify { notify: 0, then: vec![2] };
        assert_eq!(pool.send_and_receive_once(Call(0, Api::Via(1, Box::new(notify)))).unwrap(), Ok(vec![]));
        pool.shutdown().unwrap();
        // Shutdown ran everything sent: the record too, after item 0's call.
        let events = env.events.lock().unwrap().clone();
        let at = |e: &str| events.iter().position(|x| x == e);
        assert!(at("returned from 2").is_some(), "{events:?}");
        assert!(at("returned from 1") < at("record 7") && at("record 7").is_some(), "{events:?}");
    });
}

/// One worker: item 0 calls item 1, on its own worker: run inline; then 0
/// calls 1, which calls 0: refused as a cycle before it leaves (0 is on its
/// chain), and nothing waits.
#[test]
fn a_call_to_the_same_worker_runs_inline_and_a_cycle_is_refused() {
    check(Preemptions::AtMost(2), || {
        let (pool, _) = relays(1, 2);
        assert_eq!(pool.send_and_receive_once(Call(0, Api::Path(vec![1]))).unwrap(), Ok(vec![]));
        match pool.send_and_receive_once(Call(0, Api::Path(vec![1, 0]))).unwrap() {
            Err(Error::Cycle { id: 0, chain }) => {
                assert_eq!(chain.iter().map(|l| l.id).collect::<Vec<_>>(), [0, 1, 0])
            }
            other => panic!("{other:?}"),
        }
        pool.shutdown().unwrap();
    });
}

/// Shutdown while item 0's handler waits on item 1: the call is answered
/// (or refused, if the gate closed first), the nested call too, and the
/// pool shuts down.
#[test]
fn shutdown_while_a_handler_waits_answers_or_refuses_and_does_not_hang() {
    check(Preemptions::AtMost(1), || {
        let (pool, _) = relays(2, 2);
        let other = pool.clone();
        let t = loom::thread::spawn(move || other.shutdown());
        match pool.send_and_receive_once(Call(0, Api::Path(vec![1]))) {
            Ok(Ok(log)) => assert_eq!(log, Vec::<u64>::new()),
            Ok(Err(Error::Shutdown)) | Err(Error::Shutdown) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(t.join().unwrap(), Ok(()));
    });
}
