//! The caller side: per-thread rings, registration and retirement, the
//! shutdown gate, and single calls. Batches are in `batch.rs`; the types
//! the workers see too are in `wire.rs`.
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
use crate::error::Error;
use crate::gate::Presence;
use crate::item::{Message, PoolItem, Request};
use crate::shared::Shared;
use crate::slot::{Slab, SlabMemory};
use crate::sync::affinity;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::ring::{ring, Producer};
use crate::sync::thread;
use crate::sync::{Arc, Backoff, Spin};
use crate::trace::event;
use crate::wire::{CallerShared, Envelope, Outcome, Registration};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

mod batch;
pub use batch::Responses;

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
