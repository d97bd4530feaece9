//! A worker's lanes: one per caller thread, each a request ring and the
//! reply cells back, grouped by the caller's hint bit.
//!
//! The lanes are reached through a shared reference, as user code the
//! worker runs may come back to the worker (a handler that waits for a
//! nested call serves the worker's other lanes meanwhile): every part of a
//! lane the worker changes is in a cell, touched only by a step that runs
//! no user code (a pop, a publish), and each lane is an `Rc`, so that a
//! lane adopted by a nested pass (which may grow its bucket's vector) does
//! not move one an outer pass is serving.

use crate::chain::FrameRef;
use crate::doorbell::{set_bits, LANE_BITS};
use crate::item::PoolItem;
use crate::reply::ReplyWriter;
use crate::room::Room;
use crate::slot::Slab;
use crate::sync::barrier::Barrier;
use crate::sync::ring::Consumer;
use crate::sync::{Arc, UnsafeCell};
use crate::wire::{CallerShared, Outcome, Payload, Registration, ReplyTo};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Waker;

/// One caller's rings, as its worker sees them.
pub(super) struct Lane<P: PoolItem> {
    pub(super) caller: Arc<CallerShared>,
    requests: UnsafeCell<Consumer<Payload<P>>>,
    replies: UnsafeCell<ReplyWriter<Outcome<P>>>,
    /// The caller's async slots; requests in the ring may name them.
    pub(super) slots: Arc<Slab<Outcome<P>>>,
    /// Async callers waiting for room in the ring.
    pub(super) room: Arc<Room>,
    /// The wakers taken from `room` to wake (kept, with its capacity).
    pub(super) woken: RefCell<Vec<Waker>>,
    /// Where the reply to the next message goes: set by a redirection
    /// (`wire.rs`), back to the reply cells after that message.
    pub(super) next_to: Cell<ReplyTo<Outcome<P>>>,
    /// The frame the next message is sent on behalf of (`chain.rs`), if a
    /// chain entry said; taken with that message.
    pub(super) next_chain: Cell<Option<FrameRef>>,
    /// A request of this lane that replies into its cells is under way:
    /// no later one may reply before it (`nest.rs`).
    pub(super) open: Cell<bool>,
    /// The mark of the wait during which this lane stalled (`nest.rs`);
    /// stalled while that wait is the innermost.
    pub(super) stalled: Cell<u64>,
    /// Cells were taken from the ring since async callers waiting for room
    /// were last looked for (`Host::wake_room_after_drain`).
    pub(super) unwoken: Cell<bool>,
}

impl<P: PoolItem> Lane<P> {
    fn new(r: Registration<P>) -> Self {
        let Registration { caller, requests, replies, slots, room } = r;
        Self {
            caller,
            requests: UnsafeCell::new(requests),
            replies: UnsafeCell::new(replies),
            slots,
            room,
            woken: RefCell::new(Vec::with_capacity(crate::room::WAKERS)),
            next_to: Cell::new(ReplyTo::CELL),
            next_chain: Cell::new(None),
            open: Cell::new(false),
            stalled: Cell::new(0),
            unwoken: Cell::new(false),
        }
    }

    /// Takes the next entry of the ring, if any.
    #[inline]
    pub(super) fn pop(&self) -> Option<Payload<P>> {
        // SAFETY: the lane is its worker's alone (`Lane` is not `Sync`: it
        // holds `Cell`s), and the pop runs no user code (the entry is moved
        // out, not dropped), so no other reference to the ring exists while
        // this one does.
        let taken = self.requests.with_mut(|r| unsafe { (*r).pop() });
        if taken.is_some() {
            self.unwoken.set(true);
        }
        taken
    }

    /// Applies `f` to the entry at the head of the ring, left there.
    #[inline]
    pub(super) fn peek<R>(&self, f: impl FnOnce(&Payload<P>) -> R) -> Option<R> {
        // SAFETY: as in `pop`; `f` only looks at the entry (its callers
        // read an id and a kind), running no user code.
        self.requests.with(|r| unsafe { (*r).peek() }.map(f))
    }

    /// Whether the ring holds nothing (as seen now).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        // SAFETY: as in `pop`; a load of the next cell's sequence word.
        self.requests.with(|r| unsafe { (*r).is_empty() })
    }

    /// Publishes the next reply and wakes the caller if it sleeps
    /// (`Sleeper::publish_to`), or gives it back if its cell is not free.
    #[inline]
    pub(super) fn publish(&self, outcome: Outcome<P>, barrier: &Barrier) -> Result<(), Outcome<P>> {
        // SAFETY: as in `pop`: the publish writes the value into its cell
        // and may unpark the caller's thread, which runs no user code.
        self.replies.with_mut(|w| self.caller.sleeper.publish_to(unsafe { &mut *w }, outcome, barrier))
    }
}

/// The lanes, by hint bit: a lane with id `l` is in `buckets[l % LANE_BITS]`.
pub(super) struct Lanes<P: PoolItem> {
    buckets: RefCell<Vec<Vec<Rc<Lane<P>>>>>,
    count: Cell<usize>,
    /// Hint bits of the buckets that hold a lane.
    occupied: Cell<u64>,
}

impl<P: PoolItem> Lanes<P> {
    pub(super) fn new() -> Self {
        Self {
            buckets: RefCell::new((0..LANE_BITS).map(|_| Vec::new()).collect()),
            count: Cell::new(0),
            occupied: Cell::new(0),
        }
    }

    #[inline]
    pub(super) fn count(&self) -> usize {
        self.count.get()
    }

    #[inline]
    pub(super) fn occupied(&self) -> u64 {
        self.occupied.get()
    }

    /// Adopts a new caller's lane; returns its hint bit.
    pub(super) fn adopt(&self, r: Registration<P>) -> u64 {
        let b = (r.caller.lane % LANE_BITS) as usize;
        self.buckets.borrow_mut()[b].push(Rc::new(Lane::new(r)));
        self.occupied.set(self.occupied.get() | 1 << b);
        self.count.set(self.count.get() + 1);
        1 << b
    }

    /// The `i`-th lane of bucket `b`, if there is one.
    #[inline]
    pub(super) fn get(&self, b: usize, i: usize) -> Option<Rc<Lane<P>>> {
        self.buckets.borrow()[b].get(i).cloned()
    }

    /// Removes the `i`-th lane of bucket `b` (the last one takes its place),
    /// handing it back to be dropped by the caller of this, outside the
    /// borrow.
    pub(super) fn remove(&self, b: usize, i: usize) -> Rc<Lane<P>> {
        let mut buckets = self.buckets.borrow_mut();
        let gone = buckets[b].swap_remove(i);
        if buckets[b].is_empty() {
            self.occupied.set(self.occupied.get() & !(1 << b));
        }
        self.count.set(self.count.get() - 1);
        gone
    }

    /// Hint bits of the lanes whose rings hold requests (Acquire loads of
    /// each ring's next cell: the pushes are visible).
    #[inline]
    pub(super) fn with_work(&self) -> u64 {
        let buckets = self.buckets.borrow();
        set_bits(self.occupied.get())
            .filter(|&b| buckets[b].iter().any(|l| !l.is_empty()))
            .fold(0, |found, b| found | 1 << b)
    }

    /// Whether `f` holds for some lane.
    pub(super) fn any(&self, mut f: impl FnMut(&Lane<P>) -> bool) -> bool {
        self.buckets.borrow().iter().flatten().any(|l| f(l))
    }

    /// Every lane, for shutdown: taken out, to be dropped by the caller.
    pub(super) fn take_all(&self) -> Vec<Rc<Lane<P>>> {
        let mut buckets = self.buckets.borrow_mut();
        self.count.set(0);
        self.occupied.set(0);
        buckets.iter_mut().flat_map(std::mem::take).collect()
    }

    /// Whether no accepted caller is inside the shutdown gate (W3 of
    /// `src/gate/README.md`).
    pub(super) fn quiesced(&self, gate: &crate::gate::Gate) -> bool {
        gate.quiesced(self.buckets.borrow().iter().flatten().map(|l| &l.caller.presence))
    }
}
