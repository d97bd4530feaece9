//! The caller side: per-thread rings, registration and retirement, the
//! shutdown gate, and single calls. Batches are in `batch.rs`; the types
//! the workers see too are in `wire.rs`.
//!
//! The first time a thread calls into a pool it builds a [`CallerHandle`]:
//! a lane to each worker (a request ring and its reply cells, `reply.rs`),
//! its table of requests in flight, and a lane id that names it in the
//! workers' doorbells. The worker ends of the lanes travel to the workers
//! through their registration queues (a mutex, touched once per caller
//! thread and pool). The handle lives in a thread-local; when the thread
//! exits the handle retires: it marks itself retired and rings every
//! worker, which drop the lane once its ring is empty. A lane's memory is
//! freed by whichever side lets go last.
//!
//! # Pushes, announcements and user code
//!
//! A caller pushes only inside the shutdown gate (`src/gate/`), which never
//! spans user code. Every push is announced (rung, or lazily: `announce`)
//! before control goes back to user code: the batch's request iterator,
//! `into_message` and `placement` may panic or block, and the workers must
//! not wait on them for requests already in the rings. User values (a
//! refused request, a response) are dropped outside every borrow of the
//! caller's state, so their `Drop` may call the pool again.
//!
//! Model-checked by `loom-tests/tests/{registration,shutdown,batch}.rs`.

use crate::doorbell::lane_bit;
use crate::error::Error;
use crate::item::{Message, PoolItem, Request};
use crate::reply::{self, ReplyReader, Sleeper};
use crate::room::Room;
use crate::shared::{Shared, UNKNOWN_CPU};
use crate::slot::{Owner, Slab, SlotRef};
use crate::sync::affinity;
use crate::sync::atomic::Ordering;
use crate::sync::ring::{ring, Producer};
use crate::sync::thread;
use crate::sync::{Arc, Backoff, Spin};
use crate::trace::event;
use crate::wire::{CallerShared, Envelope, Outcome, Payload, Query, Registration, ReplyTo};
use pace::Pace;
#[cfg(not(shardpool_loom))]
use pace::Waited;
use std::any::Any;
use std::cell::{Cell, RefCell, RefMut};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

mod batch;
mod future;
mod pace;
mod stream;
pub use batch::Responses;
pub use future::AsyncResponse;
pub use stream::AsyncResponses;

/// A caller whose spin is shorter than this sleeps on its reply cells.
const CELL_SLEEP_BELOW: std::time::Duration = std::time::Duration::from_micros(20);

/// What a wait for a reply has said so far of how long replies take
/// (`pace.rs`).
#[cfg(not(shardpool_loom))]
#[derive(Clone, Copy)]
enum Seen {
    /// Nothing: the reply was there before any spin.
    Nothing,
    /// The spin caught the reply.
    Spun,
    /// The spin ran out; it began then (its first look at the clock, a few
    /// dozen spins in: a little late, which errs towards spinning).
    Past(Instant),
    /// The wait served the worker's own requests (a worker's wait): it says
    /// nothing.
    Served,
}

#[cfg(not(shardpool_loom))]
impl Seen {
    /// After a spin that caught the reply: the wait spun, unless something
    /// was already known (it ran out before, or it served).
    #[inline]
    fn caught(self) -> Seen {
        match self {
            Seen::Nothing => Seen::Spun,
            _ => self,
        }
    }

    /// What the wait, now over, teaches (`Pace::record`): nothing if it
    /// never spun or if it served.
    #[inline]
    fn waited(self) -> Option<Waited> {
        match self {
            Seen::Spun => Some(Waited::Spun),
            Seen::Past(t) => Some(Waited::Past(t.elapsed())),
            Seen::Nothing | Seen::Served => None,
        }
    }

    /// After a spin that ran out, having first read the clock at `started`
    /// (`None`: it never did, having no budget, as when a deadline is
    /// close, and teaches nothing). The first spin that ran out dates the
    /// wait; nothing is learned with no `caller_spin` (`learns`).
    #[cold]
    fn ran_out(self, started: crate::sync::Started, learns: bool) -> Seen {
        match (self, started) {
            (Seen::Nothing | Seen::Spun, Some(t)) if learns => Seen::Past(t),
            _ => self,
        }
    }
}

/// Slot index meaning "none" in the in-flight lists.
const NIL: u32 = u32::MAX;

/// Per slot: where its request went, and the next slot of the batch it
/// belongs to.
#[derive(Clone, Copy)]
struct Link {
    /// The next slot of its batch's in-flight list.
    next: u32,
    /// The worker its request was sent to.
    worker: u32,
    /// The id its request was addressed to.
    id: u64,
    /// Its caller stopped waiting (a timeout): the reply is dropped when it
    /// comes.
    abandoned: bool,
}

const UNLINKED: Link = Link { next: NIL, worker: 0, id: 0, abandoned: false };

/// The caller's own state, touched by its thread only.
///
/// A *slot* is a number for one request in flight; its outcome comes back
/// in the reply cells of the lane to the worker it went to, in the order of
/// that worker's `pending` list. The caller takes outcomes off a lane when
/// it needs one; an outcome that belongs to another request (an earlier one
/// of another batch on this thread) is parked in `outcomes` until its
/// owner asks.
struct Local<P: PoolItem> {
    producers: Vec<Producer<Payload<P>>>,
    replies: Vec<ReplyReader<Outcome<P>>>,
    /// Per worker: the slots of the requests sent to it whose outcomes are
    /// still on their way, oldest first. Never longer than the rings'
    /// capacity (`room`), so a worker always has room for a reply.
    pending: Vec<VecDeque<u32>>,
    /// Per slot: an outcome taken off its lane before its owner asked.
    outcomes: Vec<Option<Outcome<P>>>,
    links: Vec<Link>,
    free: Vec<u32>,
    /// The capacity of every lane of this caller: requests with a reply cell
    /// in flight per worker (its request ring has at least as many cells).
    capacity: usize,
    /// Requests sent and not yet answered, over all workers (the sum of
    /// `pending`'s lengths, kept so that a call need not add them up).
    in_flight: usize,
    /// The slots async requests from this thread reply into (`slot.rs`).
    slots: Owner<Outcome<P>>,
    /// Replies to abandoned slots, to drop once our state is released.
    discard: Vec<Outcome<P>>,
}

impl<P: PoolItem> Local<P> {
    #[inline]
    fn alloc(&mut self) -> u32 {
        if let Some(i) = self.free.pop() {
            return i;
        }
        let i = self.links.len() as u32;
        self.links.push(UNLINKED);
        self.outcomes.push(None);
        i
    }

    /// Whether worker `w` may be sent one more request: its reply will have
    /// room. Takes whatever replies have arrived off its lane first.
    #[inline]
    fn room(&mut self, w: usize) -> bool {
        if self.pending[w].len() < self.capacity {
            return true;
        }
        self.collect(w);
        self.pending[w].len() < self.capacity
    }

    /// Records a request sent to `w` in slot `idx`.
    #[inline]
    fn sent(&mut self, w: usize, idx: u32) {
        debug_assert!(self.pending[w].len() < self.capacity);
        self.pending[w].push_back(idx);
        self.in_flight += 1;
    }

    /// Moves every reply that has arrived from `w` into its slot.
    fn collect(&mut self, w: usize) {
        while let Some(outcome) = self.replies[w].take() {
            self.file(w, outcome);
        }
    }

    /// Files `outcome`, the next reply from `w`, under its slot.
    fn file(&mut self, w: usize, outcome: Outcome<P>) {
        // Replies come in the order the requests went, and one never comes
        // for a request not sent: the list cannot be empty.
        let Some(idx) = self.pending[w].pop_front() else {
            debug_assert!(false, "a reply with no request");
            return;
        };
        self.in_flight -= 1;
        if self.links[idx as usize].abandoned {
            self.links[idx as usize] = UNLINKED;
            self.free.push(idx);
            self.discard.push(outcome);
        } else {
            self.outcomes[idx as usize] = Some(outcome);
        }
    }

    /// The outcome of slot `idx`, if it has arrived, and the slot freed:
    /// the first step of every turn of a wait (`CallerHandle::wait_for`),
    /// and all of it when the reply is in already.
    #[inline]
    fn take(&mut self, w: usize, idx: u32) -> Option<Outcome<P>> {
        let outcome = self.try_take(w, idx)?;
        self.free.push(idx);
        Some(outcome)
    }

    /// The outcome of slot `idx`, if it has arrived: filed already, or next
    /// on its ring. Takes the replies ahead of it off the ring on the way.
    fn try_take(&mut self, w: usize, idx: u32) -> Option<Outcome<P>> {
        if let Some(outcome) = self.outcomes[idx as usize].take() {
            return Some(outcome);
        }
        while let Some(outcome) = self.replies[w].take() {
            if self.pending[w].front() == Some(&idx) {
                self.pending[w].pop_front();
                self.in_flight -= 1;
                return Some(outcome);
            }
            self.file(w, outcome);
        }
        None
    }

    /// With nothing in flight, chooses how to sleep for the requests about
    /// to go: on the reply cells if the caller expects to park soon (its
    /// spin is short), announcing it otherwise (`reply.rs`, "Two ways to
    /// sleep"). With requests in flight the choice stands.
    fn choose_sleep(&self, spin: Spin, sleeper: &Sleeper) {
        if self.in_flight == 0 {
            let on_cell = spin.budget < CELL_SLEEP_BELOW;
            if on_cell != sleeper.on_cell() {
                sleeper.set_on_cell(on_cell);
            }
        }
    }

    /// The replies to abandoned slots that have come in, to drop once our
    /// state is released (they are user values).
    /// `None`, at the cost of one test, when there are none.
    #[inline]
    fn take_discarded(&mut self) -> Option<Discarded<P>> {
        if self.discard.is_empty() {
            None
        } else {
            Some(Discarded(std::mem::take(&mut self.discard)))
        }
    }

    /// A slot answered on the spot with `error` (its request never left).
    fn answered(&mut self, error: Error) -> u32 {
        self.answered_with(Err(Box::new(error)))
    }

    /// A slot answered on the spot with `outcome` (its request was run
    /// inline, or never left).
    fn answered_with(&mut self, outcome: Outcome<P>) -> u32 {
        let idx = self.alloc();
        self.outcomes[idx as usize] = Some(outcome);
        idx
    }
}

/// Replies nobody waits for any more, dropped one by one, a panic from one
/// swallowed so that the rest are dropped too (the caller who abandoned
/// them has its `Error::Timeout`).
struct Discarded<P: PoolItem>(Vec<Outcome<P>>);

impl<P: PoolItem> Drop for Discarded<P> {
    fn drop(&mut self) {
        self.0.drain(..).for_each(crate::error::drop_quietly);
    }
}

/// How many waits a caller makes between two looks at its core (besides
/// the look after each wait in which it parked).
const LOCATE_EVERY: u32 = 256;

/// A thread's handle on one pool.
pub(crate) struct CallerHandle<P: PoolItem> {
    pool: Arc<Shared<P>>,
    shared: Arc<CallerShared>,
    local: RefCell<Local<P>>,
    /// Per worker: async callers waiting for room in the ring (`room.rs`).
    rooms: Vec<Arc<Room>>,
    /// The core this thread last ran on, as far as we know, and on whose
    /// workers' `sharers` this handle is counted (`locate`): looked up at
    /// registration, after a wait whose spin ran out (the thread may have
    /// moved) and every `LOCATE_EVERY` waits, not on every wait.
    cpu: Cell<usize>,
    /// Waits since the last look at the core.
    waits: Cell<u32>,
    /// Per worker, how long its replies have been taking (`pace.rs`).
    pace: Pace,
    /// The level of nesting on this thread it serves (`handle`).
    level: usize,
}

/// Type-erased handles in the thread-local registry.
trait AnyHandle {
    /// The pool, and the level of nesting on this thread the handle serves
    /// (`nest::level`).
    fn key(&self) -> (u64, usize);
    fn pool_closed(&self) -> bool;
    fn into_any(self: Rc<Self>) -> Rc<dyn Any>;
}

impl<P: PoolItem> AnyHandle for CallerHandle<P> {
    fn key(&self) -> (u64, usize) {
        (self.pool.id, self.level)
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
    static HANDLES: RefCell<Vec<Rc<dyn AnyHandle>>> = const { RefCell::new(Vec::new()) };
}

/// This thread's handle on `pool`, registering the thread on first use.
///
/// A worker thread has one per level of nesting (`nest::level`): a handler
/// waiting on its calls may run another handler, whose calls must not
/// queue behind them on the same lane (replies come back in the order a
/// lane's requests went, and the outer call's reply may wait on the inner
/// one's). To the workers each level is a caller of its own.
pub(crate) fn handle<P: PoolItem>(pool: &Arc<Shared<P>>) -> Result<Rc<CallerHandle<P>>, Error> {
    let key = (pool.id, crate::nest::level());
    let found = HANDLES
        .try_with(|h| h.borrow().iter().find(|x| x.key() == key).map(|x| x.clone().into_any()))
        .map_err(|_| Error::ThreadExiting)?;
    if let Some(any) = found {
        if let Ok(h) = any.downcast::<CallerHandle<P>>() {
            return Ok(h);
        }
    }
    register(pool, key.1)
}

#[cold]
fn register<P: PoolItem>(pool: &Arc<Shared<P>>, level: usize) -> Result<Rc<CallerHandle<P>>, Error> {
    if pool.gate.is_closed() {
        return Err(Error::Shutdown);
    }
    let workers = pool.workers.len();
    let capacity = pool.config.ring_capacity;
    let shared = Arc::new(CallerShared::new(pool.lane_ids.clone(), Sleeper::new(thread::current())));
    let slots = Owner::new();
    let mut producers = Vec::with_capacity(workers);
    let mut replies = Vec::with_capacity(workers);
    let mut rooms = Vec::with_capacity(workers);
    for w in &pool.workers {
        // A request that goes behind a redirection takes two cells: a ring
        // of one gets two, so that such a request fits in it when empty.
        let (p, requests) = ring(capacity.max(2));
        let (reply_producer, reply_consumer) = reply::lane(capacity);
        let room = Arc::new(Room::new());
        producers.push(p);
        replies.push(reply_consumer);
        rooms.push(room.clone());
        w.registrations.lock().unwrap_or_else(|e| e.into_inner()).push(Registration {
            caller: shared.clone(),
            requests,
            replies: reply_producer,
            slots: slots.slab().clone(),
            room,
        });
        w.doorbell.ring(crate::doorbell::CONTROL);
    }
    let handle = Rc::new(CallerHandle {
        pool: pool.clone(),
        shared,
        local: RefCell::new(Local {
            producers,
            replies,
            pending: (0..workers).map(|_| VecDeque::with_capacity(capacity)).collect(),
            outcomes: Vec::new(),
            links: Vec::new(),
            free: Vec::new(),
            capacity,
            in_flight: 0,
            slots,
            discard: Vec::new(),
        }),
        cpu: Cell::new(UNKNOWN_CPU),
        waits: Cell::new(0),
        pace: Pace::new(pool.workers.len(), pool.config.caller_spin),
        rooms,
        level,
    });
    handle.locate();
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
        // In flight on the lanes' reply cells there may still be replies to
        // calls that timed out (and, were a `Responses` drop cut short, to
        // its requests: every `Responses` holds an `Rc` on this handle).
        // Replies already taken off the lanes are user values, each dropped
        // on its own so that a panicking `Drop` costs only itself (this may
        // be a thread-local destructor, where an unwinding panic aborts);
        // those still on their way are dropped by the lane, last, the same
        // way (`reply.rs`). Async requests reply into slots of the slab,
        // which lives on while futures or lanes hold it (`slot.rs`).
        let local = self.local.get_mut();
        local.outcomes.iter_mut().filter_map(Option::take).for_each(crate::error::drop_quietly);
        // Replies to calls that timed out, taken off the lanes already.
        drop(local.take_discarded());
        // Release: pairs with the worker's Acquire load of `retired`, so a
        // worker that sees it also sees every push this caller made.
        self.shared.retired.store(true, Ordering::Release);
        self.pool.count_sharer(self.cpu.get(), crate::shared::current_worker(self.pool.id), false);
        event!(debug, pool = self.pool.id, lane = self.shared.lane, "caller thread retired");
        for w in self.pool.workers.iter() {
            w.doorbell.ring(lane_bit(self.shared.lane));
        }
    }
}

impl<P: PoolItem> CallerHandle<P> {
    /// The part of this caller its workers see; it names the thread's
    /// lanes while it lives.
    pub(crate) fn shared(&self) -> &Arc<CallerShared> {
        &self.shared
    }

    /// Whether this handle serves a level of a worker thread (`handle`):
    /// only then may a call from it be nested (a thread's level-0 handle
    /// is used off any handler, where nothing of `nest.rs` applies).
    #[inline]
    fn nested(&self) -> bool {
        self.level > 0
    }

    /// Announces to worker `w` that this caller's ring has work.
    #[inline]
    fn notify(&self, w: usize) {
        self.pool.workers[w].doorbell.ring(lane_bit(self.shared.lane));
    }

    /// Announces a push to worker `w` (`doorbell.rs`, "Lazy
    /// announcements"): where the pool's light barrier is cheap, a worker
    /// that is awake finds the push by looking at its rings, and only a
    /// sleeping one is rung; elsewhere every push rings.
    #[inline]
    fn announce(&self, w: usize) {
        if self.pool.barrier.lazy_announcements() {
            // F, then L.
            self.pool.barrier.light();
            if !self.pool.workers[w].doorbell.is_sleeping() {
                return;
            }
        }
        self.notify(w);
    }

    /// How to wait for a reply from worker `waiting_for` (or from any worker
    /// of a batch): as `Shared::caller_spin` says, cut to a probe if those
    /// replies have been outlasting the spin (`pace.rs`).
    #[inline]
    fn spin(&self, waiting_for: Option<usize>) -> Spin {
        let cpu = self.cpu.get();
        let spin = self.pool.caller_spin(waiting_for, (cpu != UNKNOWN_CPU).then_some(cpu));
        self.pace.apply(waiting_for, spin)
    }

    /// After a wait: if the spin ran out (the thread parked), the thread may
    /// have moved to another core; look again. A thread that never parks
    /// may be moved by the scheduler too: it looks every `LOCATE_EVERY`
    /// waits.
    #[inline]
    fn after_wait(&self, parked: bool) {
        let waits = self.waits.get().wrapping_add(1);
        self.waits.set(waits);
        if parked || waits % LOCATE_EVERY == 0 {
            self.locate();
        }
    }

    /// Looks up the core this thread runs on, and counts the handle among
    /// the `sharers` of the workers pinned there (uncounting it from those
    /// of the core before), so that those workers, when idle, yield the
    /// core on every look for work (`Looper::spin_timed`). A worker's own
    /// handles on its pool are not counted on itself: its idle loop is not
    /// waiting on them.
    fn locate(&self) {
        let cpu = affinity::current_cpu().unwrap_or(UNKNOWN_CPU);
        let before = self.cpu.replace(cpu);
        if before != cpu {
            let me = crate::shared::current_worker(self.pool.id);
            self.pool.count_sharer(before, me, false);
            self.pool.count_sharer(cpu, me, true);
        }
    }

    /// Waits for the outcome of slot `idx`, whose request for item `id` (a
    /// question about the items: none) went to worker `w`, spinning as
    /// `spin()` says (asked only if it must wait), and frees the slot.
    /// Returns the state's borrow again, and whether the spin ran out. Past
    /// `deadline`, abandons the slot instead (its reply is dropped when it
    /// comes) and returns `None`.
    ///
    /// On a worker, in a handler, the wait serves the worker's own requests
    /// (`nest.rs`), with our state's borrow released: those may call this
    /// pool too, from this thread.
    fn wait_for<'a>(
        &'a self,
        mut local: RefMut<'a, Local<P>>,
        w: usize,
        idx: u32,
        id: Option<u64>,
        spin: impl Fn() -> Spin,
        deadline: Option<Instant>,
    ) -> (RefMut<'a, Local<P>>, Option<Outcome<P>>, bool) {
        let mut slept = false;
        // What the wait says of how long replies take (`pace.rs`).
        #[cfg(not(shardpool_loom))]
        let mut seen = Seen::Nothing;
        loop {
            if let Some(outcome) = local.take(w, idx) {
                #[cfg(not(shardpool_loom))]
                if let Some(waited) = seen.waited() {
                    self.pace.record(w, waited);
                }
                return (local, Some(outcome), slept);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                local.links[idx as usize].abandoned = true;
                return (local, None, slept);
            }
            if self.nested() && crate::nest::may_serve() {
                #[cfg(not(shardpool_loom))]
                {
                    seen = Seen::Served;
                }
                drop(local);
                let side = ReplySide { handle: self, w, idx };
                let target = id.map(|id| self.pool.wait_for(w, id));
                slept |= crate::nest::wait(&side, target, deadline).unwrap_or(false);
                local = self.local.borrow_mut();
                continue;
            }
            // Only the next reply on the lane can arrive now (filed ones were
            // looked at): wait for it.
            let mut spin = spin();
            if let Some(d) = deadline {
                // Spin no longer than the deadline allows.
                spin.budget = spin.budget.min(d.saturating_duration_since(Instant::now()));
            }
            let ran_out =
                self.shared.sleeper.wait_timed(&self.pool.barrier, spin, &local.replies[w], deadline);
            slept |= ran_out.is_some();
            #[cfg(not(shardpool_loom))]
            {
                seen = match ran_out {
                    // The common case: the spin caught the reply.
                    None => seen.caught(),
                    Some(started) => seen.ran_out(started, self.pace.learns()),
                };
            }
        }
    }

    /// Pushes `env` to worker `w` inside the shutdown gate, or gives it
    /// back with the reason: the pool is shut down, or (unless `wait` says
    /// to wait) the lane is full. A request whose reply comes back in a
    /// reply cell needs one free (`Local::room`). A full lane is waited for
    /// outside the gate (a worker stuck in user code must not keep us inside
    /// it, or shutdown would wait on us) and outside our state's borrow (on
    /// a worker the wait serves the worker's requests, which may call this
    /// pool: `nest.rs`). Not announced. On success, returns our state's
    /// borrow, held since the push: what is recorded of the request under
    /// it is in the ring's order.
    #[inline]
    fn push(
        &self,
        w: usize,
        mut env: Envelope<P>,
        wait: Wait,
    ) -> Result<RefMut<'_, Local<P>>, (Error, Envelope<P>)> {
        let mut backoff = Backoff::new();
        let mut full = |env: Envelope<P>| {
            let timed_out = match wait {
                Wait::No => true,
                Wait::Until(d) => Instant::now() >= d,
                Wait::Forever => false,
            };
            if timed_out {
                // Nothing was sent (a deadline that passes while we wait for
                // room says so too: `Timeout` is for a request sent).
                return Err((Error::Full { id: env.payload.id(), worker: w }, env));
            }
            crate::nest::pause(&mut backoff);
            Ok(env)
        };
        loop {
            let mut local = self.local.borrow_mut();
            if env.to.is_cell() && !local.room(w) {
                // Our own earlier requests (a batch this thread is driving)
                // fill the lane: its worker is answering them.
                let discard = local.take_discarded();
                drop(local);
                drop(discard);
                env = full(env)?;
                continue;
            }
            if let Err(e) = self.pool.gate.enter(&self.shared.presence) {
                return Err((e, env));
            }
            // A reply cell's request is its payload alone; any other goes
            // behind a redirection, and one sent from a handler behind its
            // frame, all published together (`wire.rs`).
            let Envelope { payload, to, chain } = env;
            let producer = &mut local.producers[w];
            let pushed = match (chain, to.is_cell()) {
                (None, true) => producer.push(payload),
                (None, false) => producer.push_run([Payload::Redirect(to), payload]).map_err(|[_, p]| p),
                (Some(f), true) => producer.push_run([Payload::Chain(f), payload]).map_err(|[_, p]| p),
                (Some(f), false) => producer
                    .push_run([Payload::Chain(f), Payload::Redirect(to), payload])
                    .map_err(|[_, _, p]| p),
            };
            self.pool.gate.leave(&self.shared.presence);
            match pushed {
                Ok(()) => return Ok(local),
                // A full ring: of requests announced to the worker, or of
                // cells it frees as it takes them, once it has processed
                // them. Either way the worker will free room.
                Err(payload) => {
                    let discard = local.take_discarded();
                    drop(local);
                    drop(discard);
                    env = full(Envelope { payload, to, chain })?;
                }
            }
        }
    }

    /// One request, one response, waiting at most until `deadline`. A
    /// request refused at the gate (or, past the deadline, still waiting
    /// for room) is dropped after our state is released, so its `Drop` may
    /// call the pool.
    pub(crate) fn call(
        &self,
        w: usize,
        msg: Message<P>,
        deadline: Option<Instant>,
    ) -> Result<Outcome<P>, Error> {
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        let env = match self.depart(w, msg, ReplyTo::CELL) {
            Ok(env) => env,
            Err((e, msg)) => {
                drop(msg);
                return Err(e);
            }
        };
        self.exchange(w, env, wait, deadline).map_err(|(e, env)| {
            drop(env);
            e
        })
    }

    /// One request, one response, but only if the lane has room now; the
    /// message is handed back if it was not sent.
    pub(crate) fn try_call(
        &self,
        w: usize,
        msg: Message<P>,
    ) -> Result<Outcome<P>, (Error, Option<Message<P>>)> {
        let env = self.depart(w, msg, ReplyTo::CELL).map_err(|(e, msg)| (e, Some(msg)))?;
        self.exchange(w, env, Wait::No, None).map_err(|(e, env)| (e, env.map(Envelope::into_message)))
    }

    /// Asks worker `w` a question about its items and waits for the answer
    /// (no deadline: a `Query::Ids` sink must outlive the worker's writes).
    pub(crate) fn query(&self, w: usize, query: Query) -> Result<Outcome<P>, Error> {
        let env = Envelope { payload: Payload::Query(query), to: ReplyTo::CELL, chain: None };
        self.exchange(w, env, Wait::Forever, None).map_err(|(e, _)| e)
    }

    /// Pushes `env` (waiting for room as `wait` says) and waits for its
    /// reply, in a reply cell, until `deadline`. An envelope not sent is
    /// handed back, to be dropped (user code) by the caller, outside our
    /// state's borrow.
    #[inline]
    fn exchange(
        &self,
        w: usize,
        env: Envelope<P>,
        wait: Wait,
        deadline: Option<Instant>,
    ) -> Result<Outcome<P>, (Error, Option<Envelope<P>>)> {
        let spin = self.spin(Some(w));
        self.local.borrow().choose_sleep(spin, &self.shared.sleeper);
        let id = env.payload.id();
        let item = matches!(env.payload, Payload::Message(_)).then_some(id);
        let pushed = self.push(w, env, wait);
        let Ok(mut local) = pushed else {
            if self.nested() {
                crate::nest::arrived();
            }
            return Err(pushed.err().map(|(e, env)| (e, Some(env))).expect("an error"));
        };
        let idx = local.alloc();
        local.sent(w, idx);
        self.announce(w);
        let (mut local, outcome, slept) = self.wait_for(local, w, idx, item, || spin, deadline);
        let discard = local.take_discarded();
        drop(local);
        drop(discard);
        if self.nested() {
            crate::nest::arrived();
        }
        self.after_wait(slept);
        outcome.ok_or_else(|| (Error::Timeout { id }, None))
    }

    /// Wraps `msg` for sending, with the frame of the handler it is sent
    /// from if it is sent from one, or refuses it (a cycle, or too deep:
    /// `nest::departing`), handing it back.
    #[inline]
    fn depart(
        &self,
        w: usize,
        msg: Message<P>,
        to: ReplyTo<Outcome<P>>,
    ) -> Result<Envelope<P>, (Error, Message<P>)> {
        // Only a request waited for here carries a chain (a sender that does
        // not wait is on nobody's cycle: a handler that sends, then goes on,
        // may be called back); `send` and the async calls build theirs.
        debug_assert!(to.is_cell());
        if !self.nested() {
            return Ok(Envelope { payload: Payload::Message(msg), to, chain: None });
        }
        let id = msg.id();
        match crate::nest::departing(|| self.pool.wait_for(w, id), true) {
            Ok(chain) => Ok(Envelope { payload: Payload::Message(msg), to, chain }),
            Err(e) => Err((e, msg)),
        }
    }

    /// Sends a request whose reply nobody waits for (`to` is `FORGET`).
    /// `wait`: whether to wait for room in a full lane. Gives the message
    /// back if it is refused.
    pub(crate) fn send(&self, w: usize, msg: Message<P>, wait: bool) -> Result<(), (Error, Message<P>)> {
        let wait = if wait { Wait::Forever } else { Wait::No };
        // Not waited for here: no chain (`depart`).
        let env = Envelope { payload: Payload::Message(msg), to: ReplyTo::FORGET, chain: None };
        match self.push(w, env, wait) {
            Ok(local) => {
                drop(local);
                self.announce(w);
                Ok(())
            }
            Err((e, env)) => Err((e, env.into_message())),
        }
    }

    /// An async caller found the ring to worker `w` full: leaves `waker` to
    /// be woken when the worker frees room (`room.rs`). The caller must
    /// then try its push once more before it returns `Pending`. `false` if
    /// that cannot be promised (the heavy barrier failed): the caller must
    /// wake its own task.
    pub(crate) fn wait_for_room(&self, w: usize, waker: &std::task::Waker) -> bool {
        self.rooms[w].wait(waker, &self.pool.barrier)
    }

    /// This thread's slab of async reply slots (`slot.rs`), for a future
    /// to hold while it holds one of its slots.
    pub(crate) fn slab(&self) -> Arc<Slab<Outcome<P>>> {
        self.local.borrow().slots.slab().clone()
    }

    /// Sends a request whose reply goes into a slot of this thread's slab
    /// ([`slab`](Self::slab)), for a future to take on any thread. Does not
    /// wait for room: gives the message back if the lane is full or the
    /// pool shut down.
    pub(crate) fn send_to_slot(
        &self,
        w: usize,
        msg: Message<P>,
    ) -> Result<SlotRef<Outcome<P>>, (Error, Message<P>)> {
        let slot = self.local.borrow_mut().slots.alloc();
        // Not waited for here (a future may be, elsewhere): no chain.
        let env = Envelope { payload: Payload::Message(msg), to: ReplyTo::slot(slot), chain: None };
        match self.push(w, env, Wait::No) {
            Ok(local) => {
                drop(local);
                self.announce(w);
                Ok(slot)
            }
            Err((e, env)) => {
                self.local.borrow_mut().slots.unused(slot);
                Err((e, env.into_message()))
            }
        }
    }
}

/// The reply a waiting worker looks for (`nest::wait`): that of slot `idx`,
/// from worker `w`. Borrows the caller's state only for a look.
struct ReplySide<'a, P: PoolItem> {
    handle: &'a CallerHandle<P>,
    w: usize,
    idx: u32,
}

impl<P: PoolItem> crate::nest::ReplySleep for ReplySide<'_, P> {
    fn ready(&self) -> bool {
        // Filed already by a call made meanwhile, or the lane's next reply
        // (ours or one ahead of it: the wait takes it and looks again).
        match self.handle.local.try_borrow() {
            Ok(l) => l.outcomes[self.idx as usize].is_some() || l.replies[self.w].is_ready(),
            Err(_) => true,
        }
    }

    fn announce(&self) -> bool {
        let l = self.handle.local.borrow();
        l.outcomes[self.idx as usize].is_none() && self.handle.shared.sleeper.announce(&l.replies[self.w])
    }

    fn withdraw(&self) {
        self.handle.shared.sleeper.withdraw();
    }

    fn barrier(&self) -> crate::sync::barrier::Barrier {
        self.handle.pool.barrier
    }
}

/// How long `CallerHandle::push` waits for room in a full lane.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Instant),
    Forever,
}

/// Turns an outcome into the typed response of `R`.
pub(crate) fn decode<P: PoolItem, R: Request<P>>(id: u64, outcome: Outcome<P>) -> Result<R::Response, Error> {
    match outcome {
        Ok(answer) => R::from_reply(answer.into()).ok_or(Error::UnexpectedResponse { id }),
        Err(e) => Err(*e),
    }
}

#[cfg(all(test, not(shardpool_loom)))]
mod tests {
    use super::pace::LONG_AFTER;
    use super::*;
    use crate::testing::Sleepy;
    use crate::ThreadPool;
    use std::time::Duration;

    /// Replies that always take longer than the spin (a handler that sleeps
    /// 2 ms, against a 100 µs spin) leave the caller spinning a probe for
    /// that worker, and then sleeping on its reply cells. (How many waits
    /// it takes is `pace.rs`'s tests' business: a caller kept off its core
    /// through a whole reply may catch it in its spin and start counting
    /// again, so here the calls go on until the caller is paced.)
    #[test]
    fn a_caller_whose_replies_outlast_its_spin_spins_only_a_probe() {
        let budget = Duration::from_micros(100);
        // Unpinned, so that the caller never spins by yielding to a worker
        // on its core.
        let pool = ThreadPool::<Sleepy>::builder()
            .workers(1)
            .pinning(crate::Pinning::Off)
            .caller_spin(budget)
            .build()
            .unwrap();
        pool.send_and_receive_once(Message::<Sleepy>::Add { id: 0, init: () }).unwrap();
        let call = || pool.send_and_receive_once(Message::<Sleepy>::Call { id: 0, request: 2000 }).unwrap();
        let handle = handle(&pool.shared).unwrap();
        assert_eq!(handle.spin(Some(0)).budget, budget);
        let mut calls = 0;
        while !handle.pace.paced(Some(0)) && calls < 10 * LONG_AFTER {
            call();
            calls += 1;
        }
        assert!(handle.pace.paced(Some(0)), "not paced after {calls} calls of 2 ms");
        assert_eq!(handle.spin(Some(0)).budget, budget / 16);
        // The next call, with nothing in flight, chooses how to sleep from
        // the probe: on the reply cells.
        assert!(!handle.shared.sleeper.on_cell());
        call();
        assert!(handle.shared.sleeper.on_cell());
    }

    /// What a wait teaches the pace: nothing unless it spun (a reply there
    /// at the first look, or a wait that served, says nothing of how long
    /// replies take), and a spin that ran out dates the wait from its
    /// first look at the clock, unless nothing is learned at all.
    #[test]
    fn a_wait_teaches_only_what_its_spins_saw() {
        let t = Instant::now();
        assert_eq!(Seen::Nothing.waited(), None, "the reply was there");
        assert_eq!(Seen::Nothing.caught().waited(), Some(Waited::Spun));
        assert_eq!(Seen::Served.caught().waited(), None, "a wait that served");
        assert!(matches!(Seen::Nothing.ran_out(Some(t), true), Seen::Past(p) if p == t));
        assert!(matches!(Seen::Spun.ran_out(Some(t), true), Seen::Past(p) if p == t));
        // The first spin that ran out dates the wait; later ones and a
        // caught spin after it do not move it.
        let later = t + Duration::from_millis(1);
        let past = Seen::Nothing.ran_out(Some(t), true).ran_out(Some(later), true).caught();
        assert!(matches!(past, Seen::Past(p) if p == t));
        assert!(matches!(past.waited(), Some(Waited::Past(_))));
        // A spin with no budget never read the clock; with no caller_spin
        // nothing is learned.
        assert!(matches!(Seen::Nothing.ran_out(None, true), Seen::Nothing));
        assert!(matches!(Seen::Nothing.ran_out(Some(t), false), Seen::Nothing));
        assert!(matches!(Seen::Served.ran_out(Some(t), true), Seen::Served));
    }

    /// A reply that was already there when the caller came to wait for it
    /// (a batch's, answered while the caller waited for an earlier one,
    /// taken by `Responses::next` without a wait) says nothing of how long
    /// replies take: it leaves the count alone.
    #[test]
    fn a_reply_found_waiting_leaves_the_pace_alone() {
        let pool = ThreadPool::<Sleepy>::builder()
            .workers(2)
            .pinning(crate::Pinning::Off)
            .caller_spin(Duration::from_micros(100))
            .build()
            .unwrap();
        // Items 0 and 1 live on workers 0 and 1 (`id % workers`).
        for id in [0, 1] {
            pool.send_and_receive_once(Message::<Sleepy>::Add { id, init: () }).unwrap();
        }
        let slow = |id, micros| Message::<Sleepy>::Call { id, request: micros };
        let handle = handle(&pool.shared).unwrap();
        let mut calls = 0;
        while !handle.pace.paced(Some(1)) && calls < 10 * LONG_AFTER {
            pool.send_and_receive_once(slow(1, 2000)).unwrap();
            calls += 1;
        }
        assert!(handle.pace.paced(Some(1)), "not paced after {calls} calls of 2 ms");
        // Worker 1 answers at once; its reply waits there while the caller
        // waits 20 ms for worker 0's.
        let replies: Vec<_> = pool.send_and_receive([slow(0, 20_000), slow(1, 0)]).unwrap().collect();
        assert!(replies.iter().all(Result::is_ok));
        assert!(handle.pace.paced(Some(1)), "a reply found there reset the count");
    }
}
