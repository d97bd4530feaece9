//! The types both sides of the transport use: what travels in a ring (an
//! [`Envelope`]), what comes back in a slot (an [`Outcome`]), how a caller's
//! ring reaches a worker (a [`Registration`]), the part of a caller its
//! workers see ([`CallerShared`]), and the lane ids that name callers in
//! the doorbells ([`LaneIds`]).

use crate::error::Error;
use crate::gate::Presence;
use crate::item::{Message, PoolItem, Reply};
use crate::slot::{SlabMemory, SlotRef};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::ring::Consumer;
use crate::sync::thread::Thread;
use crate::sync::{Arc, Mutex};

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

    pub(crate) fn acquire(&self) -> u32 {
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
    pub(crate) memory: SlabMemory<Outcome<P>>,
    pub(crate) lane_ids: Arc<LaneIds>,
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
