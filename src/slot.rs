//! Reply slots for requests whose caller may not be on the thread that sent
//! them: async tasks, which a runtime moves between threads. The blocking
//! paths take replies from the lane's reply cells (`reply.rs`), in order, on
//! the sending thread; an async request instead names a slot, and the
//! worker writes the reply there and wakes the task's waker.
//!
//! # The slab
//!
//! Each caller thread (per pool) owns a slab of slots, grown a chunk at a
//! time and never shrunk, so a slot's address is fixed for the slab's life.
//! The owner hands slots out from its own free list. A slot is given back
//! by whichever side lets go of it last: the future (on any thread) or the
//! worker; both push it on the slab's *returned* stack, a lock-free stack
//! of slot indices that many threads push and only the owner empties, all
//! at once (`swap`), when its own list runs dry. With a single consumer that
//! only ever takes the whole stack there is no ABA: a pusher's
//! compare-and-swap succeeds only on the head it linked below its slot, and
//! a slot cannot be pushed twice without being handed out in between.
//!
//! (`crossbeam-queue` was the first candidate for that stack; its
//! `SegQueue` allocates a block every 31 pushes, in the steady state too,
//! and its `ArrayQueue` is bounded, while a slab grows with the number of
//! tasks waiting at once.)
//!
//! The slab lives as long as the owner, the futures holding its slots, and
//! the lanes whose rings may still hold requests naming them (each holds an
//! `Arc`).
//!
//! # One use of a slot
//!
//! A state word of four bits, reset to 0 by the owner before the slot is
//! named in a request (published to the worker by the push):
//!
//! ```text
//!   VALUE  the worker has written the reply
//!   WAKER  the receiver's waker is in the slot; the worker wakes it
//!   DONE   the worker has woken the waker and is done with the slot
//!   GONE   the receiver is done with the slot (took the reply, or gave up)
//! ```
//!
//! - **Worker**: writes the reply, then `fetch_or(VALUE)`. If GONE was set,
//!   nobody will read the reply: it reads it back, drops it and frees the
//!   slot. If WAKER was set, it wakes the waker *in place* (a shared read:
//!   the receiver may be reading it too, to compare), then
//!   `fetch_or(DONE)`, and frees the slot if GONE came first. Otherwise it
//!   is done at once: it never touches the slot again.
//! - **Receiver** (the future's `poll`): sees VALUE and takes the reply.
//!   Otherwise it must store its waker. The waker field is written only
//!   while WAKER is clear, and the worker reads it only if WAKER was set by
//!   its VALUE read-modify-write, so the two never overlap: to replace a
//!   waker the receiver first clears WAKER (`fetch_and`); if that shows
//!   VALUE, the worker saw WAKER and may be reading it, so the receiver
//!   leaves it alone and takes the reply. Then it writes the waker and sets
//!   WAKER (`fetch_or`); if that shows VALUE, the worker published without
//!   seeing the waker, and the receiver takes the reply now instead of
//!   waiting for a wake-up that will not come.
//! - **Who frees**: after VALUE, the worker touches the slot again only if
//!   its read-modify-write saw WAKER, and then until it sets DONE. A
//!   receiver holding the reply whose state shows WAKER and not DONE sets
//!   GONE; of the two read-modify-writes (its GONE, the worker's DONE), the
//!   later one sees the other's bit and frees. Otherwise the receiver frees.
//! - **Cancellation** (the future dropped, a timeout): the receiver takes
//!   its waker back (clearing WAKER first, as above, so the worker cannot be
//!   reading it), then sets GONE. If VALUE came first, it takes the reply
//!   (to drop) and frees, as for a normal take; otherwise the worker finds
//!   GONE, drops the reply and frees. A late reply is never read by anyone
//!   but its dropper, and a slot is never reused while a side can touch it:
//!   there is no generation to check.
//!
//! Every transition is a read-modify-write of the one word (AcqRel: each
//! side's writes to the value and the waker before its transition are
//! visible to the other after its own), so they are totally ordered, and
//! each case above is decided by which came first. Model-checked by
//! `loom-tests/tests/slot.rs`, with mutations listed in its README.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Arc, CachePadded, UnsafeCell};
use std::any::Any;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

const VALUE: u32 = 1;
const WAKER: u32 = 2;
const DONE: u32 = 4;
const GONE: u32 = 8;

/// Slots per chunk of a slab.
const CHUNK: usize = if cfg!(shardpool_loom) { 2 } else { 32 };
/// "No slot" in the returned stack.
const NIL: u32 = u32::MAX;

/// One reply's slot.
pub(crate) struct Slot<T> {
    state: AtomicU32,
    /// The next slot down the returned stack (set before the push).
    next: AtomicU32,
    index: u32,
    value: UnsafeCell<MaybeUninit<T>>,
    waker: UnsafeCell<Option<Waker>>,
}

/// A slab of slots: the owner's free list is in [`Owner`]; this part is
/// shared with the futures and the worker.
pub(crate) struct Slab<T> {
    /// The top of the returned stack.
    returned: CachePadded<AtomicU32>,
    /// The chunks, each a leaked `Box<[Slot<T>]>` of `CHUNK` slots. Touched
    /// only by the owner (to grow and to find a slot by index) and by the
    /// slab's drop.
    chunks: UnsafeCell<Vec<NonNull<[Slot<T>]>>>,
}

// SAFETY: a slot's value and waker are accessed by one thread at a time, as
// the state word's protocol (module docs) hands them over, each hand-over
// an AcqRel read-modify-write; `chunks` is touched only by the single owner
// and by the drop (which has `&mut self`). Replies move between threads
// (`T: Send`), and wakers are `Send + Sync`.
unsafe impl<T: Send> Send for Slab<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Slab<T> {}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        // Every slot has been freed by now (the owner, each future and each
        // lane holding a request that names one hold an `Arc`), so no value
        // or waker is left in it: freeing drops the waker, and both sides
        // take the value out.
        // SAFETY: `&mut self`: nobody else can reach the field.
        let chunks = self.chunks.with_mut(|c| std::mem::take(unsafe { &mut *c }));
        for chunk in chunks {
            // SAFETY: made by `Box::into_raw` in `Owner::grow`, and freed only
            // here, once.
            drop(unsafe { Box::from_raw(chunk.as_ptr()) });
        }
    }
}

/// A slot named by a request or held by a future.
pub(crate) struct SlotRef<T>(NonNull<Slot<T>>);

impl<T> Clone for SlotRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SlotRef<T> {}

// SAFETY: a `SlotRef` is an address; what may be done through it is
// governed by the slot's state word (module docs), whichever thread holds
// it.
unsafe impl<T: Send> Send for SlotRef<T> {}
// SAFETY: as above; every access through it takes `&self` of a slot whose
// fields are atomics or cells handed over by the protocol.
unsafe impl<T: Send> Sync for SlotRef<T> {}

impl<T> SlotRef<T> {
    /// The address, to carry in a request (`wire::ReplyTo`).
    pub(crate) fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }

    /// The slot at `addr`, from [`addr`](Self::addr).
    ///
    /// # Safety
    ///
    /// `addr` came from `addr` of a slot whose slab is still alive.
    pub(crate) unsafe fn from_addr(addr: usize) -> Self {
        // SAFETY: the caller promises a slot's address, which is not null.
        Self(unsafe { NonNull::new_unchecked(addr as *mut Slot<T>) })
    }

    /// The slot itself.
    ///
    /// # Safety
    ///
    /// Its slab is alive for as long as the reference is used.
    unsafe fn slot(&self) -> &Slot<T> {
        // SAFETY: a `SlotRef` is only made for a slot of a slab (`Owner::get`,
        // or `from_addr` under its contract), alive by the caller's promise.
        unsafe { self.0.as_ref() }
    }
}

/// The owner's side of a slab: its free list. One per slab; it lives in the
/// caller thread's handle.
pub(crate) struct Owner<T> {
    slab: Arc<Slab<T>>,
    free: Vec<u32>,
    len: u32,
}

impl<T> Owner<T> {
    pub(crate) fn new() -> Self {
        let slab =
            Slab { returned: CachePadded::new(AtomicU32::new(NIL)), chunks: UnsafeCell::new(Vec::new()) };
        Self { slab: Arc::new(slab), free: Vec::new(), len: 0 }
    }

    /// The shared slab, for the futures and the lanes.
    pub(crate) fn slab(&self) -> &Arc<Slab<T>> {
        &self.slab
    }

    /// A free slot, its state reset for a new request.
    pub(crate) fn alloc(&mut self) -> SlotRef<T> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => self.reclaim().unwrap_or_else(|| self.grow()),
        };
        let slot = self.get(index);
        // Relaxed: the slot is ours alone (its last users freed it with a
        // Release push that our Acquire swap in `reclaim` synchronized
        // with, or it is new); the push of the request that names it
        // publishes this to the worker, and the future is moved to other
        // threads with the runtime's own synchronization.
        // SAFETY: `self` holds the slab.
        unsafe { slot.slot() }.state.store(0, Ordering::Relaxed);
        slot
    }

    /// Takes back a slot from `alloc` that no request named after all.
    pub(crate) fn unused(&mut self, slot: SlotRef<T>) {
        // SAFETY: `self` holds the slab.
        self.free.push(unsafe { slot.slot() }.index);
    }

    /// Takes every slot returned by others into the free list; returns
    /// them (for the loom models, which count them).
    #[cfg(shardpool_loom)]
    pub(crate) fn reclaim_all(&mut self) -> Vec<SlotRef<T>> {
        let before = self.free.len();
        if let Some(i) = self.reclaim() {
            self.free.push(i);
        }
        self.free[before..].iter().map(|&i| self.get(i)).collect()
    }

    /// Takes every slot returned by others; hands out one of them.
    fn reclaim(&mut self) -> Option<u32> {
        // Acquire: pairs with the Release pushes in `Slab::free`; each was
        // made after its pusher's last touch of the slot, and the release
        // sequence of the pushes carries every earlier push's too.
        let mut top = self.slab.returned.swap(NIL, Ordering::Acquire);
        while top != NIL {
            self.free.push(top);
            // Relaxed: written before the push that the swap acquired.
            // SAFETY: `self` holds the slab.
            top = unsafe { self.get(top).slot() }.next.load(Ordering::Relaxed);
        }
        self.free.pop()
    }

    /// Adds a chunk of slots; hands out the first.
    #[cold]
    fn grow(&mut self) -> u32 {
        let base = self.len;
        let chunk: Box<[Slot<T>]> = (0..CHUNK as u32)
            .map(|i| Slot {
                state: AtomicU32::new(0),
                next: AtomicU32::new(NIL),
                index: base + i,
                value: UnsafeCell::new(MaybeUninit::uninit()),
                waker: UnsafeCell::new(None),
            })
            .collect();
        // SAFETY: `Box::into_raw` is never null.
        let chunk = unsafe { NonNull::new_unchecked(Box::into_raw(chunk)) };
        // SAFETY: the owner alone touches `chunks` (`Slab` docs), and no
        // reference into the vector outlives this line.
        self.slab.chunks.with_mut(|c| unsafe { (*c).push(chunk) });
        self.len += CHUNK as u32;
        // The free list can hold every slot: reclaiming never grows it.
        self.free.reserve(self.len as usize - self.free.len());
        self.free.extend((base + 1..base + CHUNK as u32).rev());
        base
    }

    fn get(&self, index: u32) -> SlotRef<T> {
        let (c, i) = (index as usize / CHUNK, index as usize % CHUNK);
        debug_assert!(index < self.len);
        // SAFETY: the owner alone touches `chunks` (`Slab` docs), and
        // `index < len`, so chunk `c` exists.
        let chunk = self.slab.chunks.with(|v| unsafe { (&*v)[c] });
        // SAFETY: each chunk is a live allocation of `CHUNK` slots and
        // `i < CHUNK`; the result is inside it, so not null.
        SlotRef(unsafe { NonNull::new_unchecked((chunk.as_ptr() as *mut Slot<T>).add(i)) })
    }
}

impl<T> Slab<T> {
    /// Gives `slot` back to its owner. Nothing may touch it after. Returns
    /// its waker, for the caller to drop (runtime code: on a worker, under
    /// `catch_unwind`), so that a free slot keeps no task alive.
    #[must_use]
    fn free(&self, slot: &Slot<T>) -> Option<Waker> {
        // SAFETY: both sides are done with the slot: its waker field is ours.
        let waker = slot.waker.with_mut(|w| unsafe { (*w).take() });
        let mut top = self.returned.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release compare-and-swap below.
            slot.next.store(top, Ordering::Relaxed);
            // Release: pairs with the owner's Acquire swap in `reclaim`: our
            // last touches of the slot come before its reuse.
            match self.returned.compare_exchange_weak(top, slot.index, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => top = now,
            }
        }
        waker
    }
}

/// What the worker is left with after publishing to a slot: user values to
/// drop, and a panic to report, each under its own `catch_unwind`.
pub(crate) struct Leftovers<T> {
    /// The reply, if its receiver had gone.
    pub(crate) reply: Option<T>,
    /// A panic of the waker's `wake_by_ref`.
    pub(crate) panic: Option<Box<dyn Any + Send>>,
    /// The waker of a slot the worker freed.
    pub(crate) waker: Option<Waker>,
}

/// Worker: writes `value` into `slot` and wakes its receiver.
///
/// # Safety
///
/// `slot` was named by the request this replies to, which was pushed by
/// the owner of `slab` after `alloc` handed it out, and this is the one
/// reply to that request.
pub(crate) unsafe fn publish<T>(slab: &Slab<T>, slot: SlotRef<T>, value: T) -> Leftovers<T> {
    // SAFETY: `slab`, alive while we hold it, is the slot's (the contract).
    let slot = unsafe { slot.slot() };
    let mut left = Leftovers { reply: None, panic: None, waker: None };
    // SAFETY: VALUE is not set, so the receiver does not read the value, and
    // we are the one writer (the caller's promise).
    slot.value.with_mut(|v| unsafe { (*v).write(value) });
    // AcqRel: Release publishes the value to the receiver's Acquire; Acquire
    // makes the receiver's waker write (before its Release `fetch_or(WAKER)`)
    // and its last touches (before GONE) visible here.
    let prev = slot.state.fetch_or(VALUE, Ordering::AcqRel);
    if prev & GONE != 0 {
        // Nobody will take the reply; the receiver took its waker back.
        // SAFETY: written above; the receiver set GONE without VALUE, so it
        // never reads it.
        left.reply = Some(slot.value.with(|v| unsafe { (*v).assume_init_read() }));
        left.waker = slab.free(slot);
    } else if prev & WAKER != 0 {
        // The receiver does not write the waker while WAKER is set, and it
        // clears WAKER only to find VALUE and leave the field alone.
        let woke = catch_unwind(AssertUnwindSafe(|| {
            slot.waker.with(|w| {
                // SAFETY: see above: only shared reads now, until DONE.
                if let Some(w) = unsafe { &*w } {
                    w.wake_by_ref();
                }
            })
        }));
        left.panic = woke.err();
        // AcqRel: Release orders our read of the waker before the
        // receiver's free (it acquires DONE); Acquire orders its last
        // touches before ours if it set GONE first.
        if slot.state.fetch_or(DONE, Ordering::AcqRel) & GONE != 0 {
            left.waker = slab.free(slot);
        }
    }
    left
}

/// Receiver: waits up to `spin` for the reply to arrive, without leaving a
/// waker (a reply that comes within a spin then costs the task no wake-up,
/// and the worker no call into the runtime). Returns whether it has.
///
/// # Safety
///
/// As for [`poll`].
pub(crate) unsafe fn spin_for<T>(slot: SlotRef<T>, spin: crate::sync::Spin) -> bool {
    // SAFETY: as in `publish`.
    let s = unsafe { slot.slot() };
    // Relaxed: a look only; `poll` reads the word again with Acquire.
    let ready = || s.state.load(Ordering::Relaxed) & VALUE != 0;
    let mut spinner = crate::sync::Spinner::new(spin);
    loop {
        if ready() {
            return true;
        }
        if !spinner.spin() {
            return false;
        }
    }
}

/// Receiver: the reply, if it has arrived; otherwise stores `cx`'s waker to
/// be woken by it. After `Ready`, the slot is no longer the caller's.
///
/// # Safety
///
/// The caller holds `slot` (handed out by `alloc` for one request) and has
/// not yet had `Ready` from it or called `close` on it; `slab` is its slab.
pub(crate) unsafe fn poll<T>(slab: &Slab<T>, slot: SlotRef<T>, cx: &Context<'_>) -> Poll<T> {
    // SAFETY: as in `publish`.
    let s = unsafe { slot.slot() };
    // Acquire: pairs with the worker's Release `fetch_or(VALUE)`.
    let mut state = s.state.load(Ordering::Acquire);
    if state & VALUE != 0 {
        // SAFETY: VALUE seen with Acquire; the caller's contract.
        return Poll::Ready(unsafe { take(slab, s, state) });
    }
    if state & WAKER != 0 {
        // Ours is there; the worker may be reading it too: read only.
        // SAFETY: a shared read of a waker nobody writes while WAKER is set.
        if s.waker.with(|w| unsafe { &*w }.as_ref().is_some_and(|w| w.will_wake(cx.waker()))) {
            return Poll::Pending;
        }
        // AcqRel: Acquire for the reply if VALUE is set; Release is not
        // needed, but the word is read-modify-written AcqRel throughout.
        state = s.state.fetch_and(!WAKER, Ordering::AcqRel);
        if state & VALUE != 0 {
            // The worker saw WAKER: `take` leaves the waker to it.
            // SAFETY: as above.
            return Poll::Ready(unsafe { take(slab, s, state) });
        }
    }
    // WAKER is clear and VALUE was not set when it was: the worker will not
    // read the field until we set WAKER again.
    let new = cx.waker().clone();
    // SAFETY: as just said, the field is ours until we set WAKER.
    let old = s.waker.with_mut(|w| unsafe { (*w).replace(new) });
    // AcqRel: Release publishes the waker to the worker's Acquire
    // `fetch_or(VALUE)`; Acquire makes the reply visible if it is there.
    state = s.state.fetch_or(WAKER, Ordering::AcqRel);
    let ready = if state & VALUE != 0 {
        // Published without seeing our waker: the worker is done already.
        // SAFETY: as above; `state` has WAKER clear, as the worker saw it.
        Poll::Ready(unsafe { take(slab, s, state) })
    } else {
        Poll::Pending
    };
    // Last, the old waker (runtime code, on the task's thread): a panic in
    // its drop leaves the slot consistent.
    drop(old);
    ready
}

/// Receiver: gives the slot up (the future was dropped, or timed out).
/// Returns the reply if it had arrived, for the caller to drop. After
/// this, the slot is no longer the caller's.
///
/// # Safety
///
/// As for [`poll`].
pub(crate) unsafe fn close<T>(slab: &Slab<T>, slot: SlotRef<T>) -> Option<T> {
    // SAFETY: as in `publish`.
    let s = unsafe { slot.slot() };
    // Acquire: as in `poll`.
    let mut state = s.state.load(Ordering::Acquire);
    if state & VALUE == 0 && state & WAKER != 0 {
        // Take the waker back first, so that the worker cannot be reading it
        // when the slot is freed. AcqRel: as in `poll`.
        state = s.state.fetch_and(!WAKER, Ordering::AcqRel);
    }
    if state & VALUE != 0 {
        // SAFETY: VALUE seen with Acquire; the caller's contract.
        return Some(unsafe { take(slab, s, state) });
    }
    // SAFETY: WAKER is clear and the worker had not published when it was,
    // so it will not read the field: it is ours.
    let waker = s.waker.with_mut(|w| unsafe { (*w).take() });
    // AcqRel: Release orders our last touches before the worker's free (it
    // acquires GONE with its `fetch_or(VALUE)`); Acquire makes the reply
    // visible if it came first.
    state = s.state.fetch_or(GONE, Ordering::AcqRel);
    // Published before our GONE, and without WAKER: the worker is done, and
    // the reply is ours. Otherwise the worker will find GONE, drop the reply
    // and free the slot.
    // SAFETY: as above.
    let reply = (state & VALUE != 0).then(|| unsafe { take(slab, s, state) });
    // Last, runtime code: a panic here leaves the slot consistent.
    drop(waker);
    reply
}

/// Receiver: takes the reply out of a slot whose `state` (seen with
/// Acquire) has VALUE, and frees the slot or leaves that to the worker.
///
/// # Safety
///
/// `state` has VALUE and came from an Acquire load or read-modify-write
/// of the slot by the receiver, which has not taken the reply before.
unsafe fn take<T>(slab: &Slab<T>, s: &Slot<T>, state: u32) -> T {
    // SAFETY: the worker wrote it before VALUE and never touches it again.
    let value = s.value.with(|v| unsafe { (*v).assume_init_read() });
    // WAKER at VALUE means the worker is, or was, waking the waker, until
    // DONE; otherwise it is done already.
    // The waker of a freed slot is dropped here, on the task's thread.
    if state & WAKER == 0 || state & DONE != 0 {
        drop(slab.free(s));
    } else if s.state.fetch_or(GONE, Ordering::AcqRel) & DONE != 0 {
        // AcqRel: Acquire orders the worker's read of the waker before our
        // free; Release orders our read of the value before its free.
        drop(slab.free(s));
    }
    value
}

#[cfg(all(test, not(shardpool_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as Counter;
    use std::sync::Arc as StdArc;
    use std::task::Wake;

    struct CountingWaker(Counter);
    impl Wake for CountingWaker {
        fn wake(self: StdArc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn waker() -> (StdArc<CountingWaker>, Waker) {
        let c = StdArc::new(CountingWaker(Counter::new(0)));
        (c.clone(), Waker::from(c))
    }

    /// Whether `slot` is handed out again within a chunk's worth of
    /// allocations, without the slab growing.
    fn comes_back<T>(owner: &mut Owner<T>, slot: SlotRef<T>) -> bool {
        let len = owner.len;
        (0..CHUNK).any(|_| owner.alloc().addr() == slot.addr()) && owner.len == len
    }

    fn wakes(c: &CountingWaker) -> usize {
        c.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn a_reply_published_after_the_poll_wakes_the_waker_and_is_taken() {
        let mut owner = Owner::<String>::new();
        let slot = owner.alloc();
        let (count, w) = waker();
        let cx = Context::from_waker(&w);
        let slab = owner.slab().clone();
        // SAFETY: one request per slot, as each test below.
        unsafe {
            assert!(poll(&slab, slot, &cx).is_pending());
            let left = publish(&slab, slot, "hi".to_owned());
            assert!(left.reply.is_none() && left.panic.is_none() && left.waker.is_none());
            assert_eq!(wakes(&count), 1);
            assert_eq!(poll(&slab, slot, &cx), Poll::Ready("hi".to_owned()));
        }
        // Both sides let go: the slot is handed out again.
        assert!(comes_back(&mut owner, slot));
    }

    #[test]
    fn a_reply_published_before_the_poll_is_taken_without_a_wake_up() {
        let mut owner = Owner::<u32>::new();
        let slot = owner.alloc();
        let (count, w) = waker();
        let slab = owner.slab().clone();
        // SAFETY: as above.
        unsafe {
            assert!(publish(&slab, slot, 5).reply.is_none());
            assert_eq!(poll(&slab, slot, &Context::from_waker(&w)), Poll::Ready(5));
        }
        assert_eq!(wakes(&count), 0);
        assert!(comes_back(&mut owner, slot));
    }

    #[test]
    fn a_new_waker_replaces_the_old_one_and_only_it_is_woken() {
        let mut owner = Owner::<u32>::new();
        let slot = owner.alloc();
        let (old, w1) = waker();
        let (new, w2) = waker();
        let slab = owner.slab().clone();
        // SAFETY: as above.
        unsafe {
            assert!(poll(&slab, slot, &Context::from_waker(&w1)).is_pending());
            assert!(poll(&slab, slot, &Context::from_waker(&w2)).is_pending());
            drop(publish(&slab, slot, 1));
            assert_eq!((wakes(&old), wakes(&new)), (0, 1));
            assert_eq!(poll(&slab, slot, &Context::from_waker(&w2)), Poll::Ready(1));
        }
        // The slot dropped its waker when it was freed.
        assert_eq!(StdArc::strong_count(&new), 2);
    }

    #[test]
    fn a_reply_to_a_closed_slot_goes_back_to_the_worker_to_drop() {
        let mut owner = Owner::<String>::new();
        let slot = owner.alloc();
        let (count, w) = waker();
        let slab = owner.slab().clone();
        // SAFETY: as above.
        unsafe {
            assert!(poll(&slab, slot, &Context::from_waker(&w)).is_pending());
            assert_eq!(close(&slab, slot), None);
            let left = publish(&slab, slot, "late".to_owned());
            assert_eq!(left.reply.as_deref(), Some("late"));
            assert!(left.waker.is_none(), "the receiver took its waker back");
        }
        assert_eq!(wakes(&count), 0, "a closed slot's waker is not woken");
        assert_eq!(StdArc::strong_count(&count), 2, "and was dropped at the close");
        assert!(comes_back(&mut owner, slot), "the worker freed it");
    }

    #[test]
    fn closing_after_the_reply_came_gives_the_reply_back() {
        let mut owner = Owner::<String>::new();
        let slot = owner.alloc();
        let (_count, w) = waker();
        let slab = owner.slab().clone();
        // SAFETY: as above.
        unsafe {
            assert!(poll(&slab, slot, &Context::from_waker(&w)).is_pending());
            assert!(publish(&slab, slot, "x".to_owned()).reply.is_none());
            assert_eq!(close(&slab, slot).as_deref(), Some("x"));
        }
        assert!(comes_back(&mut owner, slot));
    }

    #[test]
    fn slots_freed_on_other_threads_are_reused_and_the_slab_grows_by_chunks() {
        let mut owner = Owner::<u64>::new();
        let slots: Vec<_> = (0..CHUNK + 1).map(|_| owner.alloc()).collect();
        assert_eq!(owner.len as usize, 2 * CHUNK);
        let slab = owner.slab().clone();
        let addrs: std::collections::HashSet<_> = slots.iter().map(|s| s.addr()).collect();
        assert_eq!(addrs.len(), CHUNK + 1, "distinct slots");
        std::thread::scope(|sc| {
            for chunk in slots.chunks(8) {
                let slab = &slab;
                sc.spawn(move || {
                    for &s in chunk {
                        // SAFETY: as above; a worker's reply, then a take on
                        // another thread.
                        unsafe {
                            drop(publish(slab, s, 9));
                            assert_eq!(close(slab, s), Some(9));
                        }
                    }
                });
            }
        });
        let again: std::collections::HashSet<_> = (0..2 * CHUNK).map(|_| owner.alloc().addr()).collect();
        assert!(addrs.is_subset(&again), "every freed slot came back");
        assert_eq!(owner.len as usize, 2 * CHUNK, "without growing");
    }
}
