//! Thin public wrappers over crate internals, for the loom models in
//! `loom-tests/`. Compiled only with `--cfg shardpool_loom`; not an API.
//!
//! Each wrapper forwards to the real type, so a model checks the code that
//! ships, not a copy of it. The only thing added is ownership that the pool
//! normally provides: a [`ReplyTo`] keeps its slot's memory alive the way a
//! worker's `Arc` on the caller's shared state does.

use crate::doorbell;
use crate::item::PoolItem;
use crate::pool::ThreadPool;
use crate::slot::{Slab, SlabMemory, SlotRef};
use crate::sync::ring;
use crate::sync::thread::Thread;
use crate::sync::Arc;
use std::time::Duration;

/// Caller threads registered with `pool` whose lanes are not yet reclaimed
/// (one load; `ThreadPool::stats` reads every counter, which multiplies a
/// model's executions when polled).
pub fn live_callers<P: PoolItem>(pool: &ThreadPool<P>) -> usize {
    pool.shared().lane_ids.live()
}

/// A caller's response slots: the real [`Slab`] (one chunk) and the memory
/// it lives in. Lives on the caller's thread, like the slab in a caller
/// handle.
pub struct Slots<T> {
    memory: Arc<SlabMemory<T>>,
    slab: Slab<T>,
}

impl<T: Send> Slots<T> {
    /// One chunk of empty slots.
    pub fn new() -> Self {
        let memory = Arc::new(SlabMemory::new());
        let mut slab = Slab::new();
        slab.grow(&memory);
        Self { memory, slab }
    }

    /// Arms slot `index` for one request (`Slab::arm`): the returned
    /// reference is what the request carries to the worker.
    pub fn arm(&self, index: u32) -> ReplyTo<T> {
        ReplyTo { slot: self.slab.arm(index), _memory: self.memory.clone() }
    }

    /// A reference to slot `index` carrying generation `gen`, whatever the
    /// slot's current state: a reply that arrives late or twice.
    ///
    /// # Safety
    ///
    /// The returned reference must not be published while another reference
    /// of the same generation (from [`arm`](Self::arm) or another `stale`) is
    /// being published on another thread: both would pass the generation
    /// check and write the slot at once. A generation that the slot has
    /// already moved past is always safe.
    pub unsafe fn stale(&self, index: u32, gen: u32) -> ReplyTo<T> {
        ReplyTo { slot: self.slab.stale_ref(index, gen), _memory: self.memory.clone() }
    }

    /// Caller side of the handshake (`Slot::wait`): spins up to `spin`, then
    /// parks, and takes the reply.
    pub fn wait(&self, index: u32, spin: Duration) -> T {
        self.slab.get(index).wait(crate::sync::Spin::alone(spin)).0
    }
}

impl<T: Send> Default for Slots<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// What a request carries back to its slot, plus a share of the slot's
/// memory (the worker's `Arc` on the caller in the real pool).
pub struct ReplyTo<T> {
    slot: SlotRef<T>,
    _memory: Arc<SlabMemory<T>>,
}

impl<T: Send> ReplyTo<T> {
    /// Worker side (`Slot::publish`): publishes `value` if the slot is still
    /// armed with this reference's generation and unparks `caller` if it
    /// parked; gives `value` back otherwise.
    pub fn publish(self, value: T, caller: &Thread) -> Result<(), T> {
        // SAFETY: `_memory` owns the slab chunk the slot lives in and is
        // alive until `self` is dropped, after this call; a reference from
        // `arm` is the only one of its generation, and one from `stale`
        // carries that promise from its caller.
        unsafe { self.slot.publish(value, caller) }
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
}

/// The worker's end of a ring.
pub struct Consumer<T>(ring::Consumer<T>);

impl<T> Consumer<T> {
    /// Takes up to `max` values, handing each to `f`; returns how many.
    pub fn drain(&mut self, max: usize, f: impl FnMut(T)) -> usize {
        self.0.drain(max, f)
    }
}
