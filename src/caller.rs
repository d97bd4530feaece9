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
//! # Pushes, announcements and user code
//!
//! A caller pushes only inside the shutdown gate (`src/gate/`), which never
//! spans user code. Every push is announced (its lane's doorbell bit rung)
//! before control goes back to user code: the batch's request iterator,
//! `into_message` and `placement` may panic or block, and the workers must
//! not wait on them for requests already in the rings. User values (a
//! refused request, a response) are dropped outside every borrow of the
//! caller's state, so their `Drop` may call the pool again.
//!
//! Model-checked by `loom-tests/tests/{registration,shutdown,batch}.rs`.

use crate::doorbell::lane_bit;
use crate::error::{take_panic_message, BatchError, Error};
use crate::gate::Presence;
use crate::item::{Message, PoolItem, Reply, Request};
use crate::pool::Shared;
use crate::slot::{Slab, SlabMemory, SlotRef};
use crate::sync::affinity;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::ring::{ring, Consumer, Producer};
use crate::sync::thread::{self, Thread};
use crate::sync::{Arc, Backoff, Mutex, Spin};
use crate::trace::event;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::iter::Fuse;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
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
    /// Whether the caller is inside the shutdown gate (`src/gate/`).
    pub(crate) presence: Presence,
    /// Set when the caller thread has gone; its lanes are dropped once empty.
    pub(crate) retired: AtomicBool,
    memory: SlabMemory<Outcome<P>>,
    lane_ids: Arc<LaneIds>,
}

impl<P: PoolItem> CallerShared<P> {
    /// Hands each reply published into this caller's slots and never taken
    /// to `f` (the last owner, a worker, drops them one by one under
    /// `catch_unwind`).
    pub(crate) fn take_leftovers(&mut self, f: impl FnMut(Outcome<P>)) {
        self.memory.take_ready(f);
    }
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
    /// Per worker: batch pushes announced lazily and not rung yet (reused
    /// between batches, so a batch allocates nothing).
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

    /// Returns an armed slot whose request never left to EMPTY, and frees it.
    fn release_unsent(&mut self, idx: u32) {
        self.slab.get(idx).disarm();
        self.free.push(idx);
    }
}

/// `CallerHandle::cpu` when the core is not known.
const UNKNOWN_CPU: usize = usize::MAX;

/// A thread's handle on one pool.
pub(crate) struct CallerHandle<P: PoolItem> {
    pool: Arc<Shared<P>>,
    shared: Arc<CallerShared<P>>,
    local: RefCell<Local<P>>,
    /// The core this thread last ran on, as far as we know: looked up at
    /// registration and again after a wait whose spin ran out (the thread
    /// may have moved), not on every wait.
    cpu: Cell<usize>,
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
        self.pool.gate.is_closed()
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
    if pool.gate.is_closed() {
        return Err(Error::Shutdown);
    }
    let workers = pool.workers.len();
    let shared = Arc::new(CallerShared {
        lane: pool.lane_ids.acquire(),
        thread: thread::current(),
        presence: Presence::new(),
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
        cpu: Cell::new(affinity::current_cpu().unwrap_or(UNKNOWN_CPU)),
    });
    event!(debug, pool = pool.id, lane = handle.shared.lane, "caller thread registered");
    let stale = HANDLES
        .try_with(|h| {
            let mut h = h.borrow_mut();
            // Handles on pools that have shut down are dead weight: retire
            // them (after the borrow: retiring rings their workers).
            let (dead, live): (Vec<_>, Vec<_>) = h.drain(..).partition(|x| x.pool_closed());
            *h = live;
            h.push(handle.clone());
            dead
        })
        .map_err(|_| Error::ThreadExiting)?;
    drop(stale);
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
    /// Announces to worker `w` that this caller's ring has work.
    #[inline]
    fn notify(&self, w: usize) {
        self.pool.workers[w].doorbell.ring(lane_bit(self.shared.lane));
    }

    /// Announces a batch push to worker `w` (`doorbell.rs`, "Lazy
    /// announcements"): rings at once where the pool's light barrier is not
    /// cheap, or if the worker sleeps; otherwise leaves it to the worker's
    /// own poll and returns `true`: the caller rings it with the rest of its
    /// burst ([`announce_touched`](Self::announce_touched)).
    #[inline]
    fn announce_push(&self, w: usize) -> bool {
        if self.pool.barrier.lazy_announcements() {
            // F, then L.
            self.pool.barrier.light();
            if !self.pool.workers[w].doorbell.is_sleeping() {
                return true;
            }
        }
        self.notify(w);
        false
    }

    /// Rings every worker whose pushes were announced lazily (the end of a
    /// burst: the caller is about to wait, or to give up its batch).
    fn announce_touched(&self, local: &mut Local<P>) {
        for (w, t) in local.touched.iter_mut().enumerate() {
            if std::mem::take(t) {
                self.notify(w);
            }
        }
    }

    /// How to wait for a reply from worker `waiting_for` (or from any worker
    /// of a batch); see `Shared::caller_spin`.
    #[inline]
    fn spin(&self, waiting_for: Option<usize>) -> Spin {
        let cpu = self.cpu.get();
        self.pool.caller_spin(waiting_for, (cpu != UNKNOWN_CPU).then_some(cpu))
    }

    /// After a wait: if the spin ran out (the thread parked), the thread may
    /// have moved to another core; look again.
    #[inline]
    fn after_wait(&self, parked: bool) {
        if parked {
            self.cpu.set(affinity::current_cpu().unwrap_or(UNKNOWN_CPU));
        }
    }

    /// One request, one response. A request refused at the gate is dropped
    /// after our state is released, so its `Drop` may call the pool.
    pub(crate) fn call(&self, w: usize, msg: Message<P>) -> Result<Outcome<P>, Error> {
        let mut local = self.local.borrow_mut();
        let idx = local.alloc(&self.shared);
        let mut env = Envelope { msg, slot: local.slab.arm(idx) };
        // A full ring is waited for outside the gate: a worker stuck in user
        // code must not keep us inside it, or shutdown would wait on us.
        let mut backoff = Backoff::new();
        loop {
            if let Err(e) = self.pool.gate.enter(&self.shared.presence) {
                local.release_unsent(idx);
                drop(local);
                drop(env);
                return Err(e);
            }
            let pushed = local.producers[w].push(env);
            self.pool.gate.leave(&self.shared.presence);
            match pushed {
                Ok(()) => break,
                Err(back) => {
                    env = back;
                    self.notify(w);
                    backoff.wait();
                }
            }
        }
        self.notify(w);
        let (outcome, parked) = local.slab.get(idx).wait(self.spin(Some(w)));
        local.free.push(idx);
        drop(local);
        self.after_wait(parked);
        Ok(outcome)
    }
}

/// Turns an outcome into the typed response of `R`.
pub(crate) fn decode<P: PoolItem, R: Request<P>>(id: u64, outcome: Outcome<P>) -> Result<R::Response, Error> {
    outcome.and_then(|reply| R::from_reply(reply).ok_or(Error::UnexpectedResponse { id }))
}

/// A batch's requests in flight, in request order: a list threaded through
/// the caller's per-slot links (`Local::links`), so it allocates nothing.
struct InFlight {
    head: u32,
    tail: u32,
    len: usize,
}

impl InFlight {
    /// Links slot `idx` (request for `id`) at the tail.
    fn link(&mut self, links: &mut [(u32, u64)], idx: u32, id: u64) {
        links[idx as usize] = (NIL, id);
        if self.tail == NIL {
            self.head = idx;
        } else {
            links[self.tail as usize].0 = idx;
        }
        self.tail = idx;
        self.len += 1;
    }
}

/// A request taken from the caller's iterator, with its slot armed, not yet
/// in its ring (the ring was full).
struct Stalled<P: PoolItem> {
    worker: usize,
    env: Envelope<P>,
    idx: u32,
    id: u64,
}

/// The responses to a batch, in request order; see
/// [`ThreadPool::send_and_receive`](crate::ThreadPool::send_and_receive).
///
/// Requests are taken from the request iterator and sent as this iterator is
/// driven, up to a window of them ahead of the response being waited for,
/// so a batch of any size streams through bounded rings and a bounded number
/// of slots.
///
/// # What is sent
///
/// Exactly the requests taken from the request iterator; [`sent`](Self::sent)
/// counts them. Nothing is sent before the first call to `next`, so a
/// `Responses` that is never driven sends nothing (hence `#[must_use]`).
///
/// Dropping it early takes no further request from the iterator. Every
/// request already taken is still delivered (one waiting for room in a full
/// ring is pushed first), the drop waits until all of them are answered, and
/// their responses are dropped. So a short-circuiting
/// `collect::<Result<Vec<_>, _>>()` on a batch with side effects stops
/// *sending* at the first error, after an unknown number of later requests
/// were already applied. To send the whole batch whatever errors come back,
/// use [`collect_all`](Self::collect_all), or collect into
/// `Vec<Result<_, _>>`.
///
/// A panic in user code while the batch is being sent (the request
/// iterator, `into_message`, `placement`) unwinds out of `next`; the drop
/// then waits for the requests already sent, which were announced to the
/// workers before that code ran.
///
/// Forgetting to drive it is a warning (an error here, under
/// `deny(unused_must_use)`):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use shardpool_samples::{Randoms, RandomsInit};
/// use shardpool::{AddRequest, ThreadPool};
///
/// fn add_all(pool: &ThreadPool<Randoms>) -> Result<(), shardpool::Error> {
///     pool.send_and_receive((0..10).map(|id| AddRequest::new(id, RandomsInit { count: 1 })))?;
///     Ok(())
/// }
/// ```
///
/// `Responses` belongs to the thread that made it:
///
/// ```compile_fail
/// use shardpool_samples::{Randoms, SumRequest};
/// use shardpool::ThreadPool;
///
/// fn assert_send<T: Send>(_: &T) {}
/// let pool = ThreadPool::<Randoms>::new(1).unwrap();
/// let responses = pool.send_and_receive((0..3).map(SumRequest)).unwrap();
/// assert_send(&responses);
/// ```
#[must_use = "requests are sent only as the responses are iterated; an iterator dropped unused sends nothing"]
pub struct Responses<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> {
    pool: &'a Shared<P>,
    handle: Rc<CallerHandle<P>>,
    requests: Fuse<I>,
    list: InFlight,
    sent: usize,
    /// Whether pushes of this batch were announced lazily and may not be
    /// rung yet (`announce_touched` is then due at the end of the fill).
    unrung: bool,
    stalled: Option<Stalled<P>>,
    _marker: PhantomData<fn() -> R>,
}

impl<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Responses<'a, P, R, I> {
    pub(crate) fn new(pool: &'a Arc<Shared<P>>, requests: I) -> Result<Self, Error> {
        if pool.gate.is_closed() {
            return Err(Error::Shutdown);
        }
        let handle = handle(pool)?;
        Ok(Self {
            pool,
            handle,
            requests: requests.fuse(),
            list: InFlight { head: NIL, tail: NIL, len: 0 },
            sent: 0,
            unrung: false,
            stalled: None,
            _marker: PhantomData,
        })
    }

    /// How many requests have been sent to workers so far: taken from the
    /// request iterator and pushed, or bound to be (one waiting for room in
    /// a full ring is pushed before this `Responses` is dropped). Requests
    /// answered on the spot, such as one with a bad placement or one refused
    /// because the pool shut down, are not counted.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// let mut responses = pool.send_and_receive((0..10).map(|id| AddRequest::new(id, RandomsInit { count: 1 })))?;
    /// assert_eq!(responses.sent(), 0); // nothing leaves before the first `next`
    /// responses.next();
    /// assert!(responses.sent() >= 1);
    /// drop(responses); // what was sent is answered; the rest is never sent
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Sends every request and waits for every response, then returns the
    /// successful responses collected into `C`, or, if any request failed,
    /// the first failure (with its index and the number of failures).
    ///
    /// Unlike `collect::<Result<C, _>>()`, it does not stop at the first
    /// error: every request of the batch is sent, whatever comes back, which
    /// is what a batch with side effects (adds, updates) usually wants.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, Error, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// let init = || RandomsInit { count: 1 };
    /// // Id 1 twice: the second add fails, and every other add is still made.
    /// let ids = [0, 1, 1, 2, 3];
    /// let err = pool
    ///     .send_and_receive(ids.map(|id| AddRequest::new(id, init())))?
    ///     .collect_all::<Vec<_>>()
    ///     .unwrap_err();
    /// assert_eq!((err.index, err.failed), (2, 1));
    /// assert_eq!(err.error, Error::DuplicateId { id: 1 });
    /// assert_eq!(pool.stats().items(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn collect_all<C: FromIterator<R::Response>>(mut self) -> Result<C, BatchError> {
        let mut first: Option<(usize, Error)> = None;
        let mut failed = 0;
        let mut index = 0;
        let mut record = |r: Result<R::Response, Error>| {
            let i = index;
            index += 1;
            match r {
                Ok(v) => Some(v),
                Err(e) => {
                    failed += 1;
                    first.get_or_insert((i, e));
                    None
                }
            }
        };
        let collected: C = self.by_ref().filter_map(&mut record).collect();
        // `C` may stop early; the rest of the batch is sent all the same.
        self.by_ref().for_each(|r| drop(record(r)));
        match first {
            None => Ok(collected),
            Some((index, error)) => Err(BatchError { index, error, failed }),
        }
    }

    /// Pushes one request inside the gate and announces it at once, or
    /// answers it on the spot if the pool shut down. Returns `false` if its
    /// ring is full: it is kept in `stalled`. Calls no user code while our
    /// state is borrowed; a refused request is dropped after.
    fn push(&mut self, s: Stalled<P>) -> bool {
        let handle = &self.handle;
        let mut local = handle.local.borrow_mut();
        if let Err(e) = self.pool.gate.enter(&handle.shared.presence) {
            let slot = local.slab.get(s.idx);
            slot.disarm();
            slot.fill_local(Err(e));
            self.list.link(&mut local.links, s.idx, s.id);
            // Counted as sent when it was taken: it was not.
            self.sent -= 1;
            drop(local);
            drop(s.env);
            return true;
        }
        let Stalled { worker, env, idx, id } = s;
        let pushed = local.producers[worker].push(env);
        self.pool.gate.leave(&handle.shared.presence);
        match pushed {
            Ok(()) => {
                self.list.link(&mut local.links, idx, id);
                // Announced before control goes back to user code: rung, or
                // lazily, to be rung with the burst.
                if handle.announce_push(worker) {
                    local.touched[worker] = true;
                    self.unrung = true;
                }
                true
            }
            Err(env) => {
                // Everything in that ring was announced when it was pushed.
                self.stalled = Some(Stalled { worker, env, idx, id });
                false
            }
        }
    }

    /// Sends requests until the window is full, the requests run out or a
    /// ring is full, then rings the workers of the burst.
    fn fill(&mut self) {
        self.send();
        if std::mem::take(&mut self.unrung) {
            self.handle.announce_touched(&mut self.handle.local.borrow_mut());
        }
    }

    fn send(&mut self) {
        // Refill only once half the window has drained, so requests leave in
        // bursts rather than one per response.
        if self.list.len > self.pool.config.window / 2 {
            return;
        }
        if let Some(s) = self.stalled.take() {
            if !self.push(s) {
                return;
            }
        }
        while self.list.len < self.pool.config.window {
            // User code (the iterator, `into_message`, `placement`): every
            // request pushed so far has been announced, and no state of ours
            // is borrowed.
            let Some(request) = self.requests.next() else { break };
            let msg = request.into_message();
            let id = msg.id();
            let route = self.pool.route::<P>(id);
            let mut local = self.handle.local.borrow_mut();
            let idx = local.alloc(&self.handle.shared);
            match route {
                Ok(worker) => {
                    let env = Envelope { msg, slot: local.slab.arm(idx) };
                    drop(local);
                    // Sent from here on: pushed now, or, if its ring is full,
                    // later (even if this `Responses` is dropped first).
                    self.sent += 1;
                    if !self.push(Stalled { worker, env, idx, id }) {
                        break;
                    }
                }
                Err(e) => {
                    local.slab.get(idx).fill_local(Err(e));
                    self.list.link(&mut local.links, idx, id);
                    drop(local);
                    drop(msg);
                }
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
        while self.list.head == NIL && self.stalled.is_some() {
            backoff.wait();
            self.fill();
        }
        if self.list.head == NIL {
            return None;
        }
        let idx = self.list.head;
        let (outcome, id, parked) = {
            let mut local = self.handle.local.borrow_mut();
            let spin = if local.slab.get(idx).is_ready() { Spin::NONE } else { self.handle.spin(None) };
            let (outcome, parked) = local.slab.get(idx).wait(spin);
            let (next, id) = local.links[idx as usize];
            self.list.head = next;
            if next == NIL {
                self.list.tail = NIL;
            }
            local.free.push(idx);
            (outcome, id, parked)
        };
        self.handle.after_wait(parked);
        self.list.len -= 1;
        Some(decode::<P, R>(id, outcome))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.requests.size_hint();
        let extra = self.list.len + usize::from(self.stalled.is_some());
        (lo.saturating_add(extra), hi.and_then(|h| h.checked_add(extra)))
    }
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Drop for Responses<'_, P, R, I> {
    fn drop(&mut self) {
        // Our state is never borrowed while user code runs, so this only
        // guards against a bug: leak the slots rather than panic in a drop.
        let Ok(mut local) = self.handle.local.try_borrow_mut() else { return };
        // Announce what was pushed before waiting for it.
        self.handle.announce_touched(&mut local);
        drop(local);
        // Every request taken from the iterator is delivered: a stalled one
        // is pushed once its ring has room (the worker is draining it).
        let mut backoff = Backoff::new();
        while let Some(s) = self.stalled.take() {
            if !self.push(s) {
                backoff.wait();
            }
        }
        self.handle.announce_touched(&mut self.handle.local.borrow_mut());
        // Responses are user values: a `Drop` that panics must not stop us
        // from taking the rest (they would be left to a worker or to this
        // thread's exit). The first panic is raised again once all are in.
        let mut first_panic = None;
        while self.list.head != NIL {
            let idx = self.list.head;
            let Ok(mut local) = self.handle.local.try_borrow_mut() else { return };
            let (outcome, _) = local.slab.get(idx).wait(self.handle.spin(None));
            self.list.head = local.links[idx as usize].0;
            local.free.push(idx);
            // The response may run user code when dropped: not under a borrow.
            drop(local);
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(outcome))) {
                match first_panic {
                    None => first_panic = Some(payload),
                    Some(_) => drop(take_panic_message(payload)),
                }
            }
        }
        if let Some(payload) = first_panic {
            if std::thread::panicking() {
                // Raising it now would abort the process.
                drop(take_panic_message(payload));
            } else {
                resume_unwind(payload);
            }
        }
    }
}
