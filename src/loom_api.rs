//! Thin public wrappers over crate internals, for the loom models in
//! `loom-tests/`. Compiled only with `--cfg shardpool_loom`; not an API.
//!
//! Each wrapper forwards to the real type, so a model checks the code that
//! ships, not a copy of it.

use crate::doorbell;
use crate::item::PoolItem;
use crate::pool::ThreadPool;
use crate::reply;
use crate::sync::barrier::Barrier;
use crate::sync::ring;
use crate::sync::thread::Thread;
use std::time::Duration;

/// Caller threads registered with `pool` whose lanes are not yet reclaimed
/// (one load; `ThreadPool::stats` reads every counter, which multiplies a
/// model's executions when polled).
pub fn live_callers<P: PoolItem>(pool: &ThreadPool<P>) -> usize {
    pool.shared().lane_ids.live()
}

/// A reply lane of `capacity` cells (`reply::lane`): the worker's end and
/// the caller's.
pub fn reply_lane<T>(capacity: usize) -> (ReplyWriter<T>, ReplyReader<T>) {
    let (w, r) = reply::lane(capacity);
    (ReplyWriter(w), ReplyReader(r))
}

/// The worker's end of a reply lane.
pub struct ReplyWriter<T>(reply::ReplyWriter<T>);

impl<T> ReplyWriter<T> {
    /// Publishes the next reply with a plain store (for a caller that
    /// announces its sleep), or gives it back if its cell is not free.
    pub fn publish(&mut self, value: T) -> Result<(), T> {
        self.0.publish(value, false).map(drop)
    }
}

/// The caller's end of a reply lane.
pub struct ReplyReader<T>(reply::ReplyReader<T>);

impl<T> ReplyReader<T> {
    /// Whether the next reply has arrived.
    pub fn is_ready(&self) -> bool {
        self.0.is_ready()
    }

    /// Takes the next reply, if it has arrived.
    pub fn take(&mut self) -> Option<T> {
        self.0.take()
    }
}

/// A caller as its workers see it when they publish (`reply::Sleeper`),
/// with the barrier pair of a pool in the fence form.
pub struct Sleeper {
    sleeper: reply::Sleeper,
    barrier: Barrier,
}

impl Sleeper {
    /// The sleeper of `caller`, the thread that will wait.
    pub fn new(caller: Thread) -> Self {
        Self { sleeper: reply::Sleeper::new(caller), barrier: Barrier::new(false) }
    }

    /// Worker, after each reply published: wakes the caller if it sleeps.
    pub fn after_publish(&self) {
        self.sleeper.after_publish(&self.barrier)
    }

    /// Caller, with nothing in flight: sleep on the reply cells (`true`) or
    /// announce the sleep (`false`, the default).
    pub fn set_on_cell(&self, on_cell: bool) {
        self.sleeper.set_on_cell(on_cell)
    }

    /// Worker: publishes `value` as the next reply on `lane` and wakes the
    /// caller, whichever way it sleeps (`Sleeper::publish_to`).
    pub fn publish_to<T>(&self, lane: &mut ReplyWriter<T>, value: T) -> Result<(), T> {
        self.sleeper.publish_to(&mut lane.0, value, &self.barrier)
    }

    /// Caller: waits for the next reply on `lane`, spinning up to `spin`
    /// (one yield under loom if non-zero), then sleeping as chosen with
    /// [`set_on_cell`](Self::set_on_cell). Returns whether the spin ran out.
    pub fn wait<T>(&self, spin: Duration, lane: &ReplyReader<T>) -> bool {
        self.sleeper.wait(&self.barrier, crate::sync::Spin::alone(spin), &lane.0, None)
    }
}

/// The hint bit of caller lane `lane`.
pub fn lane_bit(lane: u32) -> u64 {
    doorbell::lane_bit(lane)
}

/// A worker's doorbell (`doorbell::Doorbell`).
pub struct Doorbell(doorbell::Doorbell);

impl Doorbell {
    /// A doorbell with no bits set and no thread recorded.
    pub fn new() -> Self {
        Self(doorbell::Doorbell::new())
    }

    /// Worker: records the thread callers unpark. Once, before any sleep.
    pub fn set_thread(&self, thread: Thread) {
        self.0.set_thread(thread)
    }

    /// Caller: announces `bits`, waking the worker if it sleeps.
    pub fn ring(&self, bits: u64) {
        self.0.ring(bits)
    }

    /// Worker: takes every pending bit.
    pub fn take(&self) -> u64 {
        self.0.take()
    }

    /// Worker: announces it goes to sleep unless a bit arrived since the
    /// last `take`; on `true` it must call [`park_until_rung`](Self::park_until_rung).
    pub fn try_sleep(&self) -> bool {
        self.0.try_sleep()
    }

    /// Worker: parks until a caller has cleared SLEEPING.
    pub fn park_until_rung(&self) {
        self.0.park_until_rung()
    }
}

impl Default for Doorbell {
    fn default() -> Self {
        Self::new()
    }
}

/// The SPSC ring the crate uses under loom (`sync::ring`).
pub fn spsc<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let (p, c) = ring::ring(capacity);
    (Producer(p), Consumer(c))
}

/// The caller's end of a ring.
pub struct Producer<T>(ring::Producer<T>);

impl<T> Producer<T> {
    /// Pushes `value`, or gives it back if the ring is full.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        self.0.push(value)
    }

    /// Pushes two values, published together, or gives them back.
    pub fn push_pair(&mut self, a: T, b: T) -> Result<(), (T, T)> {
        self.0.push_run([a, b]).map_err(|[a, b]| (a, b))
    }
}

/// The worker's end of a ring.
pub struct Consumer<T>(ring::Consumer<T>);

impl<T> Consumer<T> {
    /// Takes the oldest value, if any.
    pub fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
}

/// The owner of a slab of async reply slots (`slot::Owner`).
pub struct SlotOwner<T>(crate::slot::Owner<T>);

impl<T> SlotOwner<T> {
    /// An empty slab.
    pub fn new() -> Self {
        Self(crate::slot::Owner::new())
    }

    /// A slot for one request, with its slab.
    pub fn alloc(&mut self) -> SlotHandle<T> {
        SlotHandle { slab: self.0.slab().clone(), slot: self.0.alloc() }
    }

    /// Takes every slot returned by the others back into the free list;
    /// returns the addresses taken.
    pub fn reclaim(&mut self) -> Vec<usize> {
        self.0.reclaim_all().into_iter().map(|s| s.addr()).collect()
    }
}

impl<T> Default for SlotOwner<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A slot and its slab, as a request names it and a future holds it.
pub struct SlotHandle<T> {
    slab: crate::sync::Arc<crate::slot::Slab<T>>,
    slot: crate::slot::SlotRef<T>,
}

impl<T> Clone for SlotHandle<T> {
    fn clone(&self) -> Self {
        Self { slab: self.slab.clone(), slot: self.slot }
    }
}

impl<T> SlotHandle<T> {
    /// The slot's address.
    pub fn addr(&self) -> usize {
        self.slot.addr()
    }

    /// Worker: publishes the reply (`slot::publish`); returns it if the
    /// receiver had gone.
    ///
    /// # Safety
    ///
    /// Once per slot handed out, as `slot::publish` says.
    pub unsafe fn publish(&self, value: T) -> Option<T> {
        // SAFETY: the caller's promise.
        unsafe { crate::slot::publish(&self.slab, self.slot, value) }.reply
    }

    /// Receiver: the reply, or `Pending` with the waker stored.
    ///
    /// # Safety
    ///
    /// Not after a `Ready` or a `close`, as `slot::poll` says.
    pub unsafe fn poll(&self, cx: &std::task::Context<'_>) -> std::task::Poll<T> {
        // SAFETY: the caller's promise.
        unsafe { crate::slot::poll(&self.slab, self.slot, cx) }
    }

    /// Receiver: gives the slot up; the reply if it had come.
    ///
    /// # Safety
    ///
    /// As for [`poll`](Self::poll).
    pub unsafe fn close(&self) -> Option<T> {
        // SAFETY: the caller's promise.
        unsafe { crate::slot::close(&self.slab, self.slot) }
    }
}
