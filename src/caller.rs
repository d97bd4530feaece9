//! The caller side: per-thread rings, registration and retirement, the
//! shutdown gate, and the calls themselves.
//!
//! The first time a thread calls into a pool it builds a [`CallerHandle`]:
//! one SPSC ring to each worker, a slab of response slots, and a lane id that
//! names it in the workers' doorbells. The worker ends of the rings travel to
//! the workers through their registration queues (a mutex, touched once per
//! caller thread and pool). The handle lives in a thread-local; when the
//! thread exits the handle retires: it marks itself retired and rings every
//! worker, which drop the lane once its ring is empty. The slots' memory is
//! shared with the workers and freed by whichever side lets go last.
//!
//! # The shutdown gate
//!
//! A caller pushes only inside its gate: it sets `active`, passes a light
//! barrier, then reads the pool's `closed` flag and backs out if it is set.
//! Shutdown sets `closed`, passes a heavy barrier, and rings every worker;
//! each worker, before it exits, passes a light barrier, waits until every
//! caller's `active` is clear and drains their rings. The barriers order
//! the two sides (`sync/barrier.rs`: SeqCst fences, or on Linux a compiler
//! fence against `membarrier`): either the caller's `active` is visible to
//! the worker, which then waits for the push, or the caller sees `closed`
//! and sends nothing. The gate never spans user code, so shutdown cannot
//! wait on it for long.
//!
//! - `leave` clears `active` with a Release store: a worker whose Acquire
//!   load reads `false` also sees the push made inside the gate. A later
//!   entry, whose `true` the worker did not see, comes after shutdown's
//!   barrier and so sees `closed`.
//! - A worker only checks the lanes it has accepted. A caller whose
//!   registration comes after the worker's last `accept` is not among them,
//!   but then its gate sees `closed`: the worker read `closed` before that
//!   `accept`, and the registration mutex orders the two.
//! - Fences rather than SeqCst loads and stores: loom models fences exactly,
//!   while it treats SeqCst accesses as AcqRel. Under loom both barriers
//!   are SeqCst fences, so the models check the fence form of the argument.
//!
//! Model-checked by `loom-tests/tests/{registration,shutdown,batch}.rs`.

use crate::doorbell::lane_bit;
use crate::error::Error;
use crate::item::{Message, PoolItem, Reply, Request};
use crate::pool::Shared;
use crate::slot::{Slab, SlabMemory, SlotRef};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::barrier;
use crate::sync::ring::{ring, Consumer, Producer};
use crate::sync::thread::{self, Thread};
use crate::sync::{Arc, Backoff, CachePadded, Mutex, Spin};
use crate::trace::event;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::iter::Fuse;
use std::marker::PhantomData;
use std::rc::Rc;

/// What a worker puts in a slot: the reply, or why there is none.
pub(crate) type Outcome<P> = Result<Reply<P>, Error>;

/// A request on its way to a worker.
pub(crate) struct Envelope<P: PoolItem> {
    pub(crate) msg: Message<P>,
    pub(crate) slot: SlotRef<Outcome<P>>,
}

/// The worker's end of a new caller's ring.
pub(crate) struct Registration<P: PoolItem> {
    pub(crate) caller: Arc<CallerShared<P>>,
    pub(crate) consumer: Consumer<Envelope<P>>,
}

/// Hands out lane ids, reusing those of retired callers so hint bits stay
/// dense.
pub(crate) struct LaneIds {
    free: Mutex<(Vec<u32>, u32)>,
    live: AtomicUsize,
}

impl LaneIds {
    pub(crate) fn new() -> Self {
        Self { free: Mutex::new((Vec::new(), 0)), live: AtomicUsize::new(0) }
    }

    fn acquire(&self) -> u32 {
        self.live.fetch_add(1, Ordering::Relaxed);
        let mut g = self.free.lock().unwrap_or_else(|e| e.into_inner());
        match g.0.pop() {
            Some(id) => id,
            None => {
                g.1 += 1;
                g.1 - 1
            }
        }
    }

    fn release(&self, id: u32) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).0.push(id);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Caller threads currently registered (not yet fully reclaimed).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// The part of a caller that its workers see.
pub(crate) struct CallerShared<P: PoolItem> {
    pub(crate) lane: u32,
    /// The caller's thread, unparked by a worker that publishes into a slot
    /// the caller parked on.
    pub(crate) thread: Thread,
    /// Set while the caller is inside its gate (see the module docs).
    pub(crate) active: CachePadded<AtomicBool>,
    /// Set when the caller thread has gone; its lanes are dropped once empty.
    pub(crate) retired: AtomicBool,
    memory: SlabMemory<Outcome<P>>,
    lane_ids: Arc<LaneIds>,
}

impl<P: PoolItem> Drop for CallerShared<P> {
    fn drop(&mut self) {
        self.lane_ids.release(self.lane);
    }
}

/// Slot index meaning "none" in the in-flight lists.
const NIL: u32 = u32::MAX;

/// The caller's own state, touched by its thread only.
struct Local<P: PoolItem> {
    producers: Vec<Producer<Envelope<P>>>,
    slab: Slab<Outcome<P>>,
    free: Vec<u32>,
    /// Per slot: the next slot of the in-flight list it is on, and the id its
    /// request was addressed to.
    links: Vec<(u32, u64)>,
    /// Per worker: a batch pushed to it since it was last told (reused
    /// between batches so a batch allocates nothing).
    touched: Vec<bool>,
}

impl<P: PoolItem> Local<P> {
    fn alloc(&mut self, shared: &CallerShared<P>) -> u32 {
        if let Some(i) = self.free.pop() {
            return i;
        }
        let old = self.slab.len() as u32;
        self.slab.grow(&shared.memory);
        let new = self.slab.len() as u32;
        self.links.resize(new as usize, (NIL, 0));
        self.free.extend((old + 1..new).rev());
        old
    }
}

/// A thread's handle on one pool.
pub(crate) struct CallerHandle<P: PoolItem> {
    pool: Arc<Shared<P>>,
    shared: Arc<CallerShared<P>>,
    local: RefCell<Local<P>>,
}

/// Type-erased handles in the thread-local registry.
trait AnyHandle {
    fn pool_id(&self) -> u64;
    fn pool_closed(&self) -> bool;
    fn into_any(self: Rc<Self>) -> Rc<dyn Any>;
}

impl<P: PoolItem> AnyHandle for CallerHandle<P> {
    fn pool_id(&self) -> u64 {
        self.pool.id
    }
    fn pool_closed(&self) -> bool {
        self.pool.closed.load(Ordering::Relaxed)
    }
    fn into_any(self: Rc<Self>) -> Rc<dyn Any> {
        self
    }
}

crate::sync::thread_local! {
    /// This thread's handles, one per pool it has called.
    static HANDLES: RefCell<Vec<Rc<dyn AnyHandle>>> = RefCell::new(Vec::new());
    /// `(pool id, worker index)` when this thread is a pool worker.
    static CURRENT_WORKER: Cell<Option<(u64, usize)>> = Cell::new(None);
}

/// Marks the calling thread as worker `index` of pool `pool_id`.
pub(crate) fn set_current_worker(pool_id: u64, index: usize) {
    CURRENT_WORKER.with(|c| c.set(Some((pool_id, index))));
}

/// The worker index of the calling thread in pool `pool_id`, if it is one.
pub(crate) fn current_worker(pool_id: u64) -> Option<usize> {
    match CURRENT_WORKER.try_with(Cell::get) {
        Ok(Some((p, w))) if p == pool_id => Some(w),
        _ => None,
    }
}

/// This thread's handle on `pool`, registering the thread on first use.
pub(crate) fn handle<P: PoolItem>(pool: &Arc<Shared<P>>) -> Result<Rc<CallerHandle<P>>, Error> {
    let found = HANDLES
        .try_with(|h| h.borrow().iter().find(|x| x.pool_id() == pool.id).map(|x| x.clone().into_any()))
        .map_err(|_| Error::ThreadExiting)?;
    if let Some(any) = found {
        if let Ok(h) = any.downcast::<CallerHandle<P>>() {
            return Ok(h);
        }
    }
    register(pool)
}

#[cold]
fn register<P: PoolItem>(pool: &Arc<Shared<P>>) -> Result<Rc<CallerHandle<P>>, Error> {
    if pool.closed.load(Ordering::Relaxed) {
        return Err(Error::Shutdown);
    }
    let workers = pool.workers.len();
    let shared = Arc::new(CallerShared {
        lane: pool.lane_ids.acquire(),
        thread: thread::current(),
        active: CachePadded::new(AtomicBool::new(false)),
        retired: AtomicBool::new(false),
        memory: SlabMemory::new(),
        lane_ids: pool.lane_ids.clone(),
    });
    let mut producers = Vec::with_capacity(workers);
    for w in &pool.workers {
        let (p, c) = ring(pool.config.ring_capacity);
        producers.push(p);
        w.registrations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Registration { caller: shared.clone(), consumer: c });
        w.doorbell.ring(crate::doorbell::CONTROL);
    }
    let handle = Rc::new(CallerHandle {
        pool: pool.clone(),
        shared,
        local: RefCell::new(Local {
            producers,
            slab: Slab::new(),
            free: Vec::new(),
            links: Vec::new(),
            touched: vec![false; workers],
        }),
    });
    event!(debug, pool = pool.id, lane = handle.shared.lane, "caller thread registered");
    HANDLES
        .try_with(|h| {
            let mut h = h.borrow_mut();
            // Handles on pools that have shut down are dead weight: retire them.
            h.retain(|x| !x.pool_closed());
            h.push(handle.clone());
        })
        .map_err(|_| Error::ThreadExiting)?;
    Ok(handle)
}

impl<P: PoolItem> Drop for CallerHandle<P> {
    fn drop(&mut self) {
        // Release: pairs with the worker's Acquire load of `retired`, so a
        // worker that sees it also sees every push this caller made.
        self.shared.retired.store(true, Ordering::Release);
        event!(debug, pool = self.pool.id, lane = self.shared.lane, "caller thread retired");
        for w in self.pool.workers.iter() {
            w.doorbell.ring(lane_bit(self.shared.lane));
        }
    }
}

impl<P: PoolItem> CallerHandle<P> {
    /// Tells worker `w` that this caller's ring has work (after a push, or a
    /// burst of pushes).
    #[inline]
    fn notify(&self, w: usize) {
        self.pool.workers[w].doorbell.ring(lane_bit(self.shared.lane));
    }

    /// Enters the shutdown gate; fails if the pool is closed.
    #[inline]
    fn enter(&self) -> Result<(), Error> {
        // The caller's side of the gate (module docs). Relaxed accesses: the
        // barrier orders them against shutdown's (see `sync/barrier.rs`).
        // NB: a full fence here waits for the request's own cache misses;
        // `perf record` of 1024-request batches put 87% of the push path on
        // it, and the perf harness's batch row (1 worker, 1024) went from
        // 10.1 to 14.6 M requests/s without it (`cargo run --release -p perf`).
        self.shared.active.store(true, Ordering::Relaxed);
        barrier::light();
        if self.pool.closed.load(Ordering::Relaxed) {
            self.leave();
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    #[inline]
    fn leave(&self) {
        // Release: pairs with the worker's Acquire load of `active`; a worker
        // that reads `false` also sees our push.
        self.shared.active.store(false, Ordering::Release);
    }

    /// Pushes `env` to worker `w` inside the gate, waiting for room if the
    /// ring is full. On refusal the envelope is dropped.
    fn push(&self, local: &mut Local<P>, w: usize, mut env: Envelope<P>) -> Result<(), Error> {
        self.enter()?;
        let producer = &mut local.producers[w];
        let mut backoff = Backoff::new();
        loop {
            match producer.push(env) {
                Ok(()) => break,
                Err(back) => {
                    env = back;
                    self.notify(w);
                    backoff.wait();
                }
            }
        }
        self.leave();
        Ok(())
    }

    /// One request, one response.
    pub(crate) fn call(&self, w: usize, msg: Message<P>) -> Result<Outcome<P>, Error> {
        let mut local = self.local.borrow_mut();
        let idx = local.alloc(&self.shared);
        let env = Envelope { msg, slot: local.slab.arm(idx) };
        if let Err(e) = self.push(&mut local, w, env) {
            local.slab.get(idx).disarm();
            local.free.push(idx);
            return Err(e);
        }
        self.notify(w);
        let outcome = local.slab.get(idx).wait(self.pool.caller_spin(Some(w)));
        local.free.push(idx);
        Ok(outcome)
    }
}

/// Turns an outcome into the typed response of `R`.
pub(crate) fn decode<P: PoolItem, R: Request<P>>(id: u64, outcome: Outcome<P>) -> Result<R::Response, Error> {
    outcome.and_then(|reply| R::from_reply(reply).ok_or(Error::UnexpectedResponse { id }))
}

/// A request pulled from the caller's iterator but not yet in a ring (its
/// ring was full).
struct Stalled<P: PoolItem> {
    worker: usize,
    env: Envelope<P>,
    idx: u32,
    id: u64,
}

/// The responses to a batch, in request order; see
/// [`ThreadPool::send_and_receive`](crate::ThreadPool::send_and_receive).
///
/// Requests are sent as the iterator is driven, a window at a time, so a batch
/// of any size streams through bounded rings and a bounded number of slots.
/// Dropping the iterator early sends no further requests and waits for the
/// ones already sent (their responses are dropped).
pub struct Responses<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> {
    pool: &'a Shared<P>,
    handle: Rc<CallerHandle<P>>,
    requests: Fuse<I>,
    head: u32,
    tail: u32,
    in_flight: usize,
    stalled: Option<Stalled<P>>,
    _marker: PhantomData<fn() -> R>,
}

impl<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Responses<'a, P, R, I> {
    pub(crate) fn new(pool: &'a Arc<Shared<P>>, requests: I) -> Result<Self, Error> {
        if pool.closed.load(Ordering::Relaxed) {
            return Err(Error::Shutdown);
        }
        let handle = handle(pool)?;
        Ok(Self {
            pool,
            handle,
            requests: requests.fuse(),
            head: NIL,
            tail: NIL,
            in_flight: 0,
            stalled: None,
            _marker: PhantomData,
        })
    }

    fn enqueue(&mut self, local: &mut Local<P>, idx: u32, id: u64) {
        local.links[idx as usize] = (NIL, id);
        if self.tail == NIL {
            self.head = idx;
        } else {
            local.links[self.tail as usize].0 = idx;
        }
        self.tail = idx;
        self.in_flight += 1;
    }

    /// Sends requests until the window is full, the requests run out or a
    /// ring is full; then tells the workers.
    fn fill(&mut self) {
        // Refill only once half the window has drained, so requests leave in
        // bursts and the doorbell rings once per burst, not per request.
        if self.in_flight > self.pool.config.window / 2 {
            return;
        }
        let handle = self.handle.clone();
        while self.in_flight < self.pool.config.window {
            let stalled = match self.stalled.take() {
                Some(s) => s,
                None => {
                    // User code (the iterator, `into_message`, `placement`)
                    // runs outside any borrow of the caller's state.
                    let Some(request) = self.requests.next() else { break };
                    let msg = request.into_message();
                    let id = msg.id();
                    let route = self.pool.route::<P>(id);
                    let mut local = handle.local.borrow_mut();
                    let idx = local.alloc(&handle.shared);
                    match route {
                        Ok(worker) => {
                            let env = Envelope { msg, slot: local.slab.arm(idx) };
                            Stalled { worker, env, idx, id }
                        }
                        Err(e) => {
                            local.slab.get(idx).fill_local(Err(e));
                            self.enqueue(&mut local, idx, id);
                            continue;
                        }
                    }
                }
            };
            let mut local = handle.local.borrow_mut();
            let Stalled { worker, env, idx, id } = stalled;
            if let Err(e) = handle.enter() {
                drop(env);
                let slot = local.slab.get(idx);
                slot.disarm();
                slot.fill_local(Err(e));
                self.enqueue(&mut local, idx, id);
                continue;
            }
            let pushed = local.producers[worker].push(env);
            handle.leave();
            match pushed {
                Ok(()) => {
                    local.touched[worker] = true;
                    self.enqueue(&mut local, idx, id);
                }
                Err(env) => {
                    self.stalled = Some(Stalled { worker, env, idx, id });
                    local.touched[worker] = true;
                    break;
                }
            }
        }
        let mut local = handle.local.borrow_mut();
        for (w, t) in local.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                handle.notify(w);
            }
        }
    }
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Iterator for Responses<'_, P, R, I> {
    type Item = Result<R::Response, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fill();
        let mut backoff = Backoff::new();
        // Nothing of ours in flight but a request stuck behind a full ring:
        // the ring holds another batch's requests (same thread, nested), which
        // the worker is draining. Wait for room.
        while self.head == NIL && self.stalled.is_some() {
            backoff.wait();
            self.fill();
        }
        if self.head == NIL {
            return None;
        }
        let idx = self.head;
        let (outcome, id) = {
            let mut local = self.handle.local.borrow_mut();
            let spin = if local.slab.get(idx).is_ready() { Spin::NONE } else { self.pool.caller_spin(None) };
            let outcome = local.slab.get(idx).wait(spin);
            let (next, id) = local.links[idx as usize];
            self.head = next;
            if next == NIL {
                self.tail = NIL;
            }
            local.free.push(idx);
            (outcome, id)
        };
        self.in_flight -= 1;
        Some(decode::<P, R>(id, outcome))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.requests.size_hint();
        let extra = self.in_flight + usize::from(self.stalled.is_some());
        (lo.saturating_add(extra), hi.and_then(|h| h.checked_add(extra)))
    }
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Drop for Responses<'_, P, R, I> {
    fn drop(&mut self) {
        if let Some(s) = self.stalled.take() {
            drop(s.env);
            if let Ok(mut local) = self.handle.local.try_borrow_mut() {
                local.slab.get(s.idx).disarm();
                local.free.push(s.idx);
            }
        }
        while self.head != NIL {
            let idx = self.head;
            let Ok(mut local) = self.handle.local.try_borrow_mut() else { return };
            let outcome = local.slab.get(idx).wait(self.pool.caller_spin(None));
            self.head = local.links[idx as usize].0;
            local.free.push(idx);
            // The response may run user code when dropped: not under a borrow.
            drop(local);
            drop(outcome);
        }
    }
}
