//! Shutdown: racing callers on the shipped barrier forms, deadlines on
//! workers stuck in user code, and a bounded `Drop`.

use shardpool::{AddRequest, Error, Message, NewItemError, Pinning, PoolItem, Reply, Request, ThreadPool};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

/// Runs `f` on its own thread and fails if it does not finish within
/// `secs` (a liveness watchdog: a hang fails the test instead of stalling
/// the suite).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("hung: watchdog expired")
}

/// An item that counts what it processed, and can block in its handler.
struct Counter(bool);

/// Requests processed by `Counter`s of the racing test.
static PROCESSED: AtomicUsize = AtomicUsize::new(0);

enum CounterApi {
    Bump,
    Block,
}

impl PoolItem for Counter {
    /// Whether the item blocks on the valve in `on_shutdown`.
    type Init = bool;
    type Api = CounterApi;
    type Response = ();
    type ThreadState = ();

    fn new_pool_item(_: u64, block_on_shutdown: bool) -> Result<Self, NewItemError> {
        Ok(Counter(block_on_shutdown))
    }

    fn on_shutdown(&mut self, _: &mut ()) {
        if self.0 {
            Valve::global().hold();
        }
    }

    fn process_message(&mut self, request: CounterApi) {
        match request {
            CounterApi::Bump => {
                PROCESSED.fetch_add(1, Ordering::SeqCst);
            }
            CounterApi::Block => Valve::global().hold(),
        }
    }
}

struct Bump(u64);
struct Block(u64);

impl Request<Counter> for Bump {
    type Response = ();
    fn into_message(self) -> Message<Counter> {
        Message::Call { id: self.0, request: CounterApi::Bump }
    }
    fn from_reply(reply: Reply<Counter>) -> Option<()> {
        matches!(reply, Reply::Response(())).then_some(())
    }
}

impl Request<Counter> for Block {
    type Response = ();
    fn into_message(self) -> Message<Counter> {
        Message::Call { id: self.0, request: CounterApi::Block }
    }
    fn from_reply(reply: Reply<Counter>) -> Option<()> {
        matches!(reply, Reply::Response(())).then_some(())
    }
}

/// A handler blocks on the valve until the test opens it.
struct Valve {
    state: Mutex<(bool, usize)>,
    cv: Condvar,
}

impl Valve {
    fn global() -> &'static Valve {
        static V: OnceLock<Valve> = OnceLock::new();
        V.get_or_init(|| Valve { state: Mutex::new((false, 0)), cv: Condvar::new() })
    }
    /// Handler side: announce, then wait for `open`.
    fn hold(&self) {
        let mut s = self.state.lock().unwrap();
        s.1 += 1;
        self.cv.notify_all();
        while !s.0 {
            s = self.cv.wait(s).unwrap();
        }
    }
    /// Test side: wait until `n` handlers hold.
    fn wait_held(&self, n: usize) {
        let mut s = self.state.lock().unwrap();
        while s.1 < n {
            s = self.cv.wait(s).unwrap();
        }
    }
    /// Shut again, with nobody holding.
    fn reset(&self) {
        *self.state.lock().unwrap() = (false, 0);
    }
    fn open(&self) {
        self.state.lock().unwrap().0 = true;
        self.cv.notify_all();
    }
}

/// Three callers (single calls and batches) race `shutdown` on a fresh pool,
/// again and again: every request is answered or refused with `Shutdown`,
/// a thread refused once is refused ever after, and the items processed
/// exactly the requests that were answered. Run on both barrier forms (the
/// membarrier form is the one loom cannot check: `src/gate/README.md`).
fn race_shutdown(membarrier: bool) {
    // One race at a time: `PROCESSED` is shared.
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    for round in 0..150 {
        let pool = Arc::new(
            ThreadPool::<Counter>::builder()
                .workers(2)
                .pinning(Pinning::Off)
                .ring_capacity(8)
                .membarrier(membarrier)
                .build()
                .unwrap(),
        );
        pool.send_and_receive((0..4).map(|id| AddRequest::new(id, false)))
            .unwrap()
            .collect_all::<Vec<_>>()
            .unwrap();
        PROCESSED.store(0, Ordering::SeqCst);
        let start = Arc::new(Barrier::new(4));
        let callers: Vec<_> = (0..3)
            .map(|t| {
                let (pool, start) = (pool.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    let (mut answered, mut refused) = (0usize, false);
                    for i in 0u64.. {
                        let results: Vec<Result<(), Error>> = if (i + t) % 3 == 0 {
                            match pool.send_and_receive((0..5).map(|k| Bump((i + k) % 4))) {
                                Ok(r) => r.collect(),
                                Err(e) => vec![Err(e)],
                            }
                        } else {
                            vec![pool.send_and_receive_once(Bump(i % 4))]
                        };
                        for r in results {
                            match r {
                                Ok(()) => {
                                    assert!(!refused, "answered after a refusal");
                                    answered += 1;
                                }
                                Err(Error::Shutdown) => refused = true,
                                Err(e) => panic!("unexpected error {e}"),
                            }
                        }
                        if refused {
                            return answered;
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        start.wait();
        for _ in 0..(round % 7) * 50 {
            std::hint::spin_loop();
        }
        pool.shutdown().unwrap();
        let answered: usize = callers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(PROCESSED.load(Ordering::SeqCst), answered, "round {round}: processed vs answered");
    }
}

#[test]
fn callers_racing_shutdown_are_answered_or_refused_with_membarrier() {
    within(300, || race_shutdown(true));
}

#[test]
fn callers_racing_shutdown_are_answered_or_refused_with_fences() {
    within(300, || race_shutdown(false));
}

/// Serializes the tests that use the global valve, and shuts it.
fn valve_lock() -> std::sync::MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    let g = L.lock().unwrap_or_else(|e| e.into_inner());
    Valve::global().reset();
    g
}

fn blocking_pool(exits: Arc<AtomicUsize>, timeout: Duration) -> ThreadPool<Counter> {
    let pool = ThreadPool::<Counter>::builder()
        .workers(2)
        .pinning(Pinning::Off)
        .shutdown_timeout(timeout)
        .exit_handler(move |_| {
            exits.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    pool.send_and_receive([0, 1].map(|id| AddRequest::new(id, false)))
        .unwrap()
        .collect_all::<Vec<_>>()
        .unwrap();
    pool
}

#[test]
fn shutdown_with_a_deadline_names_the_stuck_worker_and_a_later_shutdown_joins_it() {
    let _g = valve_lock();
    let exits = Arc::new(AtomicUsize::new(0));
    let pool = Arc::new(blocking_pool(exits.clone(), Duration::MAX));
    let p = pool.clone();
    let blocked = thread::spawn(move || p.send_and_receive_once(Block(0)));
    Valve::global().wait_held(1);
    let p = pool.clone();
    let first = within(60, move || p.shutdown_timeout(Duration::from_millis(100)));
    assert_eq!(first, Err(Error::ShutdownTimedOut { stuck: vec![0] }));
    assert_eq!(exits.load(Ordering::SeqCst), 1, "worker 1 finished and was joined");
    Valve::global().open();
    let p = pool.clone();
    assert_eq!(within(60, move || p.shutdown()), Ok(()));
    assert_eq!(exits.load(Ordering::SeqCst), 2);
    assert_eq!(blocked.join().unwrap(), Ok(()), "the blocked request is answered");
}

#[test]
fn drop_waits_at_most_the_shutdown_timeout_and_detaches_a_stuck_worker() {
    let _g = valve_lock();
    let exits = Arc::new(AtomicUsize::new(0));
    let pool = blocking_pool(exits.clone(), Duration::from_millis(100));
    // Item 3 (worker 1) blocks in its `on_shutdown` hook until the valve opens.
    pool.send_and_receive_once(AddRequest::new(3, true)).unwrap();
    within(60, move || drop(pool));
    assert_eq!(exits.load(Ordering::SeqCst), 1, "worker 0 finished; worker 1 is detached, still in its hook");
    Valve::global().open();
    // The detached worker finishes its shutdown on its own.
    within(60, move || {
        while exits.load(Ordering::SeqCst) < 2 {
            thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Items on two workers that call each other at the same time, each
/// waiting for the other's item, which waits on it: this deadlocked both
/// workers before they served while waiting. Now a worker that finds such
/// a call stalled behind its own waiting item refuses it as a cycle, both
/// calls return, and the pool shuts down cleanly within its deadline.
#[test]
fn items_on_two_workers_calling_each_other_are_refused_as_a_cycle_and_shutdown_is_clean() {
    static POOL: OnceLock<ThreadPool<Crosser>> = OnceLock::new();
    static BOTH_INSIDE: Barrier = Barrier::new(2);

    struct Crosser;
    /// `Cross(id, Some(to))`: wait until both crossing handlers run, then
    /// call item `to` (a leaf call, `Cross(to, None)`).
    struct Cross(u64, Option<u64>);
    impl PoolItem for Crosser {
        type Init = ();
        type Api = Cross;
        type Response = Result<(), Error>;
        type ThreadState = ();
        fn new_pool_item(_: u64, _: ()) -> Result<Self, NewItemError> {
            Ok(Crosser)
        }
        fn process_message(&mut self, Cross(_, to): Cross) -> Result<(), Error> {
            let Some(to) = to else { return Ok(()) };
            BOTH_INSIDE.wait();
            // As a batch of one, as a handler streaming requests would.
            let mut responses = POOL.get().unwrap().send_and_receive([Cross(to, None)])?;
            responses.next().unwrap().and_then(|r| r)
        }
    }
    impl Request<Crosser> for Cross {
        type Response = Result<(), Error>;
        fn into_message(self) -> Message<Crosser> {
            Message::Call { id: self.0, request: self }
        }
        fn from_reply(reply: Reply<Crosser>) -> Option<Result<(), Error>> {
            match reply {
                Reply::Response(r) => Some(r),
                _ => None,
            }
        }
    }

    let pool = POOL.get_or_init(|| ThreadPool::builder().workers(2).pinning(Pinning::Off).build().unwrap());
    pool.send_and_receive([0, 1].map(|id| AddRequest::new(id, ()))).unwrap().collect_all::<Vec<_>>().unwrap();
    let a = thread::spawn(|| POOL.get().unwrap().send_and_receive_once(Cross(0, Some(1))));
    let b = thread::spawn(|| POOL.get().unwrap().send_and_receive_once(Cross(1, Some(0))));
    let (a, b) = within(60, move || (a.join().unwrap().unwrap(), b.join().unwrap().unwrap()));
    let refused = |r: &Result<(), Error>| matches!(r, Err(Error::Cycle { .. }));
    assert!(refused(&a) || refused(&b), "one of the calls waits on the other: {a:?} {b:?}");
    assert!(a.is_ok() || refused(&a), "{a:?}");
    assert!(b.is_ok() || refused(&b), "{b:?}");
    // The chain names the caller, the item it called, and what that item
    // waits for: the caller again.
    for (r, (from, to)) in [(&a, (0, 1)), (&b, (1, 0))] {
        if let Err(Error::Cycle { id, chain }) = r {
            assert_eq!(*id, to);
            assert_eq!(chain.iter().map(|l| l.id).collect::<Vec<_>>(), [from, to, from]);
        }
    }
    let result = within(60, || POOL.get().unwrap().shutdown_timeout(Duration::from_secs(10)));
    assert_eq!(result, Ok(()));
    assert_eq!(pool.send_and_receive_once(Cross(0, None)), Err(Error::Shutdown));
}
