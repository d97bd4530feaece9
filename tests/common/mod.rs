//! A test item, `Node`, that exercises every path of the pool: state per id,
//! per-item order, panics, failing constructors, calls back into pools.
#![allow(dead_code)]

use shardpool::{id_being_processed, Error, Message, NewItemError, PoolItem, Reply, Request, ThreadPool};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Counts `on_shutdown` calls across all `Node`s of the test binary.
pub static SHUTDOWN_HOOKS: AtomicUsize = AtomicUsize::new(0);

/// Not `Send`: its state sits behind an `Rc<RefCell<..>>`.
pub struct Node {
    id: u64,
    value: Rc<RefCell<i64>>,
    log: Vec<u64>,
    pool: Option<Weak<ThreadPool<Node>>>,
    finals: Option<FinalValues>,
    record_work: std::time::Duration,
}

/// Where nodes leave `(id, value)` in their shutdown hook.
pub type FinalValues = Arc<Mutex<Vec<(u64, i64)>>>;

#[derive(Clone, Default)]
pub struct NodeInit {
    pub value: i64,
    pub fail: bool,
    pub panic: bool,
    pub pool: Option<Weak<ThreadPool<Node>>>,
    /// Where the node leaves its final value when the pool shuts down.
    pub finals: Option<FinalValues>,
    /// How long each `Record` keeps the worker busy (work, not a sleep).
    pub record_work: std::time::Duration,
}

impl NodeInit {
    pub fn value(value: i64) -> Self {
        Self { value, ..Self::default() }
    }
}

pub enum NodeApi {
    Get(Get),
    AddTo(AddTo),
    Record(Record),
    Boom(Boom),
    Forward(Forward),
    WhoAmI(WhoAmI),
    Log(Log),
}

#[derive(Debug)]
pub enum NodeResponse {
    Value(i64),
    Recorded { seq: u64, in_order: bool, len: usize },
    Forwarded(Result<i64, Error>),
    Me(Option<u64>),
    Log(Vec<u64>),
    Unit,
}

impl PoolItem for Node {
    type Init = NodeInit;
    type Api = NodeApi;
    type Response = NodeResponse;
    type ThreadState = u64;

    fn new_pool_item(id: u64, init: NodeInit) -> Result<Self, NewItemError> {
        if init.panic {
            panic!("constructor of {id} panicked");
        }
        if init.fail {
            return Err(NewItemError::new(format!("node {id} refused")));
        }
        Ok(Node {
            id,
            value: Rc::new(RefCell::new(init.value)),
            log: Vec::new(),
            pool: init.pool,
            finals: init.finals,
            record_work: init.record_work,
        })
    }

    fn process_message(&mut self, request: NodeApi) -> NodeResponse {
        match request {
            NodeApi::Get(_) => NodeResponse::Value(*self.value.borrow()),
            NodeApi::AddTo(AddTo(_, d)) => {
                // Overflow panics in every build, not only with debug assertions.
                let sum = self.value.borrow().checked_add(d);
                let sum = sum.unwrap_or_else(|| panic!("node {} overflowed", self.id));
                *self.value.borrow_mut() = sum;
                NodeResponse::Value(sum)
            }
            NodeApi::Record(Record(_, seq)) => {
                let start = std::time::Instant::now();
                while start.elapsed() < self.record_work {
                    std::hint::spin_loop();
                }
                let in_order = self.log.last().is_none_or(|&last| last < seq);
                self.log.push(seq);
                NodeResponse::Recorded { seq, in_order, len: self.log.len() }
            }
            NodeApi::Boom(_) => {
                // Tear the state first: the pool must not hand it out again.
                *self.value.borrow_mut() = -1;
                panic!("node {} exploded", self.id)
            }
            NodeApi::Forward(Forward(_, to)) => {
                let pool = self.pool.as_ref().and_then(Weak::upgrade).expect("node has its pool");
                NodeResponse::Forwarded(pool.send_and_receive_once(Get(to)))
            }
            NodeApi::WhoAmI(_) => NodeResponse::Me(id_being_processed()),
            NodeApi::Log(_) => NodeResponse::Log(self.log.clone()),
        }
    }

    fn pre_process(&mut self, state: &mut u64) {
        *state += 1;
    }

    fn on_shutdown(&mut self, _state: &mut u64) {
        SHUTDOWN_HOOKS.fetch_add(1, Ordering::SeqCst);
        if let Some(finals) = &self.finals {
            finals.lock().unwrap().push((self.id, *self.value.borrow()));
        }
    }
}

macro_rules! node_request {
    ($req:ident, $resp:ty, $pat:pat => $out:expr) => {
        impl Request<Node> for $req {
            type Response = $resp;
            fn into_message(self) -> Message<Node> {
                Message::Call { id: self.0, request: NodeApi::$req(self) }
            }
            fn from_reply(reply: Reply<Node>) -> Option<$resp> {
                match reply {
                    Reply::Response($pat) => Some($out),
                    _ => None,
                }
            }
        }
    };
}

/// Read the value.
pub struct Get(pub u64);
/// Add `.1` to the value; answers the new value. Overflow panics.
pub struct AddTo(pub u64, pub i64);
/// Append `.1` to the item's log; answers whether the log is still increasing.
pub struct Record(pub u64, pub u64);
/// Panic inside `process_message`.
pub struct Boom(pub u64);
/// From inside item `.0`, call `Get(.1)` on the item's own pool.
pub struct Forward(pub u64, pub u64);
/// Answers `id_being_processed()` as seen inside the item.
pub struct WhoAmI(pub u64);
/// Answers the item's log of `Record` sequence numbers, in arrival order.
pub struct Log(pub u64);

node_request!(Get, i64, NodeResponse::Value(v) => v);
node_request!(AddTo, i64, NodeResponse::Value(v) => v);
node_request!(Record, (u64, bool, usize), NodeResponse::Recorded { seq, in_order, len } => (seq, in_order, len));
node_request!(Boom, (), NodeResponse::Unit => ());
node_request!(Forward, Result<i64, Error>, NodeResponse::Forwarded(r) => r);
node_request!(WhoAmI, Option<u64>, NodeResponse::Me(m) => m);
node_request!(Log, Vec<u64>, NodeResponse::Log(l) => l);

/// A small deterministic generator for the stress tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Waits (bounded) until `cond` holds; returns whether it did. For eventual
/// conditions such as a worker reclaiming a retired caller's ring.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..2000 {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cond()
}

/// A latch a handler waits on until the test opens it, saying when it
/// started waiting.
#[derive(Clone, Default)]
pub struct Latch(Arc<(Mutex<(bool, usize)>, std::sync::Condvar)>);

impl Latch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A latch opened already: `wait` returns at once.
    pub fn open_already() -> Self {
        let l = Self::new();
        l.open();
        l
    }

    /// Counts itself as waiting, then waits until the latch is open.
    pub fn wait(&self) {
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap();
        g.1 += 1;
        cv.notify_all();
        while !g.0 {
            g = cv.wait(g).unwrap();
        }
    }

    /// Blocks until `n` handlers are waiting.
    pub fn until_waiting(&self, n: usize) {
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap();
        while g.1 < n {
            g = cv.wait(g).unwrap();
        }
    }

    pub fn open(&self) {
        let (m, cv) = &*self.0;
        m.lock().unwrap().0 = true;
        cv.notify_all();
    }
}

/// A waker that counts its wake-ups and unparks the thread that made it.
pub struct Counting {
    pub wakes: std::sync::atomic::AtomicUsize,
    thread: std::thread::Thread,
}

impl std::task::Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A counting waker for the calling thread, and the count.
pub fn counting() -> (Arc<Counting>, std::task::Waker) {
    let c = Arc::new(Counting { wakes: AtomicUsize::new(0), thread: std::thread::current() });
    (c.clone(), std::task::Waker::from(c))
}

/// Polls `f` once with `waker`.
pub fn poll_once<F: std::future::Future + Unpin>(
    f: &mut F,
    waker: &std::task::Waker,
) -> std::task::Poll<F::Output> {
    std::pin::Pin::new(f).poll(&mut std::task::Context::from_waker(waker))
}

/// Polls `f` with `waker` (one made by [`counting`] on this thread) until it
/// is ready, parking between polls.
pub fn poll_until_ready<F: std::future::Future + Unpin>(f: &mut F, waker: &std::task::Waker) -> F::Output {
    loop {
        if let std::task::Poll::Ready(v) = poll_once(f, waker) {
            return v;
        }
        std::thread::park();
    }
}

/// Polls `f` to completion on this thread, parking between polls.
pub fn block_on<F: std::future::Future + Unpin>(mut f: F) -> F::Output {
    let (_, waker) = counting();
    poll_until_ready(&mut f, &waker)
}

/// The ids of the cores the calling thread may run on.
pub fn core_ids() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
}

/// Pins the calling thread to `core`, which must succeed.
pub fn pin_to(core: usize) {
    assert!(core_affinity::set_for_current(core_affinity::CoreId { id: core }), "pin to core {core}");
}
