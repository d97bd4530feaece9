//! Response slots: where a worker leaves a caller's answer.
//!
//! Each caller thread owns a slab of slots ([`Slab`]). A request carries a
//! [`SlotRef`] (a pointer to its slot plus the slot's generation); the worker
//! writes the reply into the slot and publishes it; the caller spins on the
//! slot for a while and then parks, and the worker unparks it only if it did.
//!
//! # The slot protocol
//!
//! The state word packs a 30-bit generation with a 2-bit phase:
//!
//! ```text
//!            caller: arm(g)              worker: publish(g)
//!   EMPTY(g) ---------------> WAITING(g) ------------------> READY(g)
//!                                 |                            ^
//!                caller: CAS      |                            | worker: publish(g)
//!               (spin expired)    v                            | (then unpark)
//!                             PARKED(g) -----------------------+
//!
//!   READY(g) --- caller: take --> EMPTY(g+1)
//! ```
//!
//! - Only the caller moves a slot out of EMPTY or READY; only the worker moves
//!   it into READY. So between arming and READY the caller never touches the
//!   value, and after READY the worker never touches the slot at all (the
//!   caller may reuse it at once).
//! - The worker's publishing `swap` is Release: it pairs with the caller's
//!   Acquire load of READY, so the value written before it is visible.
//! - The caller's WAITING -> PARKED CAS and the worker's swap are both
//!   read-modify-writes of one word, so exactly one of two things happens:
//!   the CAS wins (the worker's swap then reads PARKED and unparks), or the
//!   swap wins (the CAS fails on READY and the caller does not park). No
//!   wake-up can be lost, and `unpark` before `park` leaves a token, so the
//!   order of `unpark` and `park` does not matter either.
//! - The generation makes a reply for an old use of the slot unreadable: the
//!   worker publishes only into a slot still armed with the generation its
//!   request carries, and drops the reply otherwise (a stale publish only
//!   reads the word).
//! - An unpark can outlive its slot: if the caller sees READY before it
//!   parks, the worker's unpark leaves a token, and the caller's next park
//!   (on any slot) returns at once. Every park is in a loop that re-checks
//!   READY, so that costs one look.
//!
//! Model-checked by `loom-tests/tests/slot.rs` (see `loom-tests/README.md`).

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::thread::{self, Thread};
use crate::sync::{Mutex, Spin, Spinner, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// The slot belongs to its caller and holds nothing.
const EMPTY: u32 = 0;
/// Armed for a request; the caller is spinning (or about to park).
const WAITING: u32 = 1;
/// Armed for a request; the caller is parked and needs an unpark.
const PARKED: u32 = 2;
/// The reply is in the slot.
const READY: u32 = 3;
const PHASE: u32 = 0b11;
const GEN_SHIFT: u32 = 2;

#[inline]
fn word(gen: u32, phase: u32) -> u32 {
    (gen << GEN_SHIFT) | phase
}

/// One response slot, on its own cache line(s): the state word and the start
/// of the value share the first line, so a small reply is one line to move,
/// and neighbouring slots (other requests in flight) never share it.
#[repr(align(64))]
pub(crate) struct Slot<T> {
    state: AtomicU32,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written by the worker only while the slot is armed
// (WAITING/PARKED) and read by the caller only once it is READY; the state
// word hands the cell from one to the other with Release/Acquire, so the
// cell is never touched by two threads at once. Values cross threads: T: Send.
unsafe impl<T: Send> Sync for Slot<T> {}
// SAFETY: a slot owns at most one `T`, which may be dropped on any thread.
unsafe impl<T: Send> Send for Slot<T> {}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Self { state: AtomicU32::new(word(0, EMPTY)), value: UnsafeCell::new(MaybeUninit::uninit()) }
    }

    fn generation(&self) -> u32 {
        self.state.load(Ordering::Relaxed) >> GEN_SHIFT
    }

    /// Caller: arms the empty slot for one request; returns the generation to
    /// send with it. The request's push into the ring (Release) publishes this
    /// store to the worker.
    pub(crate) fn arm(&self) -> u32 {
        let gen = self.generation();
        debug_assert_eq!(self.state.load(Ordering::Relaxed) & PHASE, EMPTY);
        self.state.store(word(gen, WAITING), Ordering::Relaxed);
        gen
    }

    /// Caller: returns an armed slot whose request was never sent to EMPTY.
    pub(crate) fn disarm(&self) {
        let gen = self.generation();
        self.state.store(word(gen, EMPTY), Ordering::Relaxed);
    }

    /// Caller: fills the slot directly (for a request that never left the
    /// caller, such as one refused before sending).
    pub(crate) fn fill_local(&self, value: T) {
        let gen = self.arm();
        // SAFETY: the slot is armed and no worker holds a reference to it (no
        // request was sent), so the caller is its only user.
        self.value.with_mut(|p| unsafe { (*p).write(value) });
        self.state.store(word(gen, READY), Ordering::Relaxed);
    }

    /// Worker: publishes `value` as the reply to the request armed with
    /// `gen`, then wakes the caller's `thread` if it parked. A slot not armed
    /// with `gen` (a stale request) is left alone and `value` is given back.
    ///
    /// After this returns `Ok`, the worker must not touch the slot again.
    ///
    /// # Safety
    ///
    /// No other thread may publish into this slot with the same `gen` at the
    /// same time: the reference carrying `gen` must be the only one made by
    /// that arming (as `Slab::arm` makes it). Two publishers of one
    /// generation would both pass the check and write the value at once.
    pub(crate) unsafe fn publish(&self, gen: u32, value: T, thread: &Thread) -> Result<(), T> {
        // Acquire: pairs with the caller's Release when it last emptied the
        // slot (`take`), so our write below comes after its read.
        let cur = self.state.load(Ordering::Acquire);
        let phase = cur & PHASE;
        if cur >> GEN_SHIFT != gen || !(phase == WAITING || phase == PARKED) {
            return Err(value);
        }
        // SAFETY: the slot is armed with our generation, so the caller is not
        // reading it, and by this fn's contract no other publisher holds that
        // generation: we are its only user until the swap below.
        self.value.with_mut(|p| unsafe { (*p).write(value) });
        // Release: publishes the write above to the caller's Acquire in
        // `is_ready` / `wait`.
        let prev = self.state.swap(word(gen, READY), Ordering::Release);
        if prev & PHASE == PARKED {
            thread.unpark();
        }
        Ok(())
    }

    /// Caller: whether the reply has arrived.
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        // Acquire: pairs with the worker's Release swap in `publish`.
        self.state.load(Ordering::Acquire) & PHASE == READY
    }

    /// Caller: waits for the reply (spinning as `spin` says, then parking) and
    /// takes it, leaving the slot EMPTY with the next generation. Also says
    /// whether the spin ran out.
    pub(crate) fn wait(&self, spin: Spin) -> (T, bool) {
        let parked = !self.is_ready() && self.wait_slow(spin);
        (self.take(), parked)
    }

    /// Returns whether the spin ran out before the reply came.
    #[cold]
    fn wait_slow(&self, spin: Spin) -> bool {
        let mut spinner = Spinner::new(spin);
        while spinner.spin() {
            if self.is_ready() {
                return false;
            }
        }
        let cur = self.state.load(Ordering::Relaxed);
        let gen = cur >> GEN_SHIFT;
        // Relaxed on success: the worker learns only that it must unpark us,
        // which needs no data from us. Acquire on failure: the slot is READY
        // and we are about to read the value.
        if self
            .state
            .compare_exchange(word(gen, WAITING), word(gen, PARKED), Ordering::Relaxed, Ordering::Acquire)
            .is_err()
        {
            debug_assert!(self.is_ready());
            return true;
        }
        // Spurious wake-ups and stray tokens from earlier slots just loop.
        while !self.is_ready() {
            thread::park();
        }
        true
    }

    /// Caller: takes a READY reply.
    fn take(&self) -> T {
        let cur = self.state.load(Ordering::Relaxed);
        debug_assert_eq!(cur & PHASE, READY);
        // SAFETY: the slot is READY (observed with Acquire by the caller), so
        // the worker wrote the value and will not touch the slot again.
        let value = self.value.with(|p| unsafe { (*p).assume_init_read() });
        let next = ((cur >> GEN_SHIFT) + 1) & (u32::MAX >> GEN_SHIFT);
        // Release: pairs with the worker's Acquire in `publish`, ordering our
        // read above before any later write into this slot.
        self.state.store(word(next, EMPTY), Ordering::Release);
        value
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        if self.is_ready() {
            // SAFETY: a READY slot holds an initialized value nobody took.
            self.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
        }
    }
}

/// What a request carries back to its slot.
pub(crate) struct SlotRef<T> {
    slot: NonNull<Slot<T>>,
    gen: u32,
}

// SAFETY: a `SlotRef` is a pointer to a `Slot<T>`, which is `Sync` for
// `T: Send`; the slot's memory is kept alive by the caller's shared state,
// which the worker holds an `Arc` to for as long as it may use the pointer.
unsafe impl<T: Send> Send for SlotRef<T> {}

impl<T> SlotRef<T> {
    /// Worker: publishes the reply (see [`Slot::publish`]).
    ///
    /// # Safety
    ///
    /// The slab the slot lives in must still be alive (the worker holds the
    /// caller's shared state, which owns it), and this must be the only
    /// reference of its generation (one made by `Slab::arm`, not a
    /// `stale_ref` racing it).
    pub(crate) unsafe fn publish(self, value: T, thread: &Thread) -> Result<(), T> {
        // SAFETY: the caller of this fn guarantees the slab is alive, and
        // `Slot` is `Sync`, so a shared reference from any thread is sound.
        let slot = unsafe { self.slot.as_ref() };
        // SAFETY: the caller of this fn guarantees this is the only reference
        // of its generation, which is `Slot::publish`'s contract.
        unsafe { slot.publish(self.gen, value, thread) }
    }
}

/// Slots per chunk of the slab.
const CHUNK: usize = 64;

/// Owns the memory of a caller's slots. It lives in the caller's shared
/// state, so it outlives every request in flight: workers hold that state
/// while they may still publish into a slot.
pub(crate) struct SlabMemory<T> {
    chunks: Mutex<Vec<NonNull<[Slot<T>]>>>,
}

// SAFETY: the chunks are heap blocks of `Slot<T>`, which are `Send + Sync`
// for `T: Send`; the raw pointers are only an ownership record here.
unsafe impl<T: Send> Send for SlabMemory<T> {}
// SAFETY: as above; the record itself is behind a mutex.
unsafe impl<T: Send> Sync for SlabMemory<T> {}

impl<T> SlabMemory<T> {
    pub(crate) fn new() -> Self {
        Self { chunks: Mutex::new(Vec::new()) }
    }
}

impl<T> SlabMemory<T> {
    /// Hands every reply that was published and never taken to `f`, one at a
    /// time, leaving its slot EMPTY. Replies are user values whose `Drop` may
    /// panic: the caller of this decides how to drop each one, instead of
    /// the slots dropping them all in one go (where a second panic, during
    /// the unwinding of the first, would abort the process).
    ///
    /// `&mut self`: nobody else can reach the slots (the last owner of the
    /// caller's shared state calls this), so no publish can race it.
    pub(crate) fn take_ready(&mut self, mut f: impl FnMut(T)) {
        let chunks = self.chunks.get_mut().unwrap_or_else(|e| e.into_inner());
        for chunk in chunks.iter() {
            // SAFETY: the chunk is alive (freed only in `drop`), and `&mut
            // self` means no other thread uses its slots.
            let slots = unsafe { chunk.as_ref() };
            for slot in slots {
                if slot.is_ready() {
                    f(slot.take());
                }
            }
        }
    }
}

impl<T> Drop for SlabMemory<T> {
    fn drop(&mut self) {
        // Whoever drops the memory last (a caller's thread-local destructor,
        // or a worker that did not call `take_ready` first): each leftover
        // reply is dropped on its own, and a panic from one is swallowed.
        self.take_ready(|value| {
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)))
            {
                drop(crate::error::take_panic_message(payload));
            }
        });
        let chunks = std::mem::take(&mut *self.chunks.lock().unwrap_or_else(|e| e.into_inner()));
        for chunk in chunks {
            // SAFETY: each chunk came from `Box::into_raw` in `Slab::grow` and
            // is freed only here, once, when no thread can reach it any more.
            drop(unsafe { Box::from_raw(chunk.as_ptr()) });
        }
    }
}

/// The caller's view of its slots. Chunks never move or shrink, so the
/// pointers handed to workers stay valid for as long as the memory lives.
pub(crate) struct Slab<T> {
    chunks: Vec<NonNull<[Slot<T>]>>,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Self { chunks: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// Adds a chunk of slots, owned by `memory`; the new slot indices are
    /// `old_len..len()`.
    #[cold]
    pub(crate) fn grow(&mut self, memory: &SlabMemory<T>) {
        let chunk: Box<[Slot<T>]> = (0..CHUNK).map(|_| Slot::new()).collect();
        let ptr = NonNull::from(Box::leak(chunk));
        memory.chunks.lock().unwrap_or_else(|e| e.into_inner()).push(ptr);
        self.chunks.push(ptr);
    }

    /// Slot `index`.
    ///
    /// The caller keeps the `SlabMemory` this view grew into alive for as long
    /// as the view (both live in the caller's handle).
    #[inline]
    pub(crate) fn get(&self, index: u32) -> &Slot<T> {
        let i = index as usize;
        // SAFETY: the chunk is alive (its memory is owned by the caller's
        // shared state, which outlives this view) and never moves; slots are
        // only ever shared (`&Slot`), their interior is synchronized by the
        // slot protocol.
        unsafe { &self.chunks[i / CHUNK].as_ref()[i % CHUNK] }
    }

    /// Arms slot `index` and returns the reference a request carries.
    #[inline]
    pub(crate) fn arm(&self, index: u32) -> SlotRef<T> {
        let slot = self.get(index);
        let gen = slot.arm();
        SlotRef { slot: NonNull::from(slot), gen }
    }

    /// A reference to `index` carrying an explicit generation (for models of
    /// the stale-reply path). Publishing it is sound only while no other
    /// reference of the same generation is published at the same time (see
    /// [`SlotRef::publish`]).
    #[cfg(any(test, shardpool_loom))]
    pub(crate) fn stale_ref(&self, index: u32, gen: u32) -> SlotRef<T> {
        SlotRef { slot: NonNull::from(self.get(index)), gen }
    }
}

#[cfg(all(test, not(shardpool_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_reply_for_a_stale_generation_is_refused() {
        let memory = SlabMemory::new();
        let mut slab = Slab::<String>::new();
        slab.grow(&memory);
        let me = thread::current();

        // First use of slot 0: answered and taken.
        let first = slab.arm(0);
        // SAFETY: `memory` outlives every slot reference in this test.
        assert!(unsafe { first.publish("one".to_owned(), &me) }.is_ok());
        assert_eq!(slab.get(0).wait(Spin::NONE).0, "one");

        // Second use: a late reply carrying the first generation is refused
        // and the slot stays armed for the second request.
        let second = slab.arm(0);
        let late = slab.stale_ref(0, 0);
        // SAFETY: `memory` outlives every slot reference in this test.
        assert_eq!(unsafe { late.publish("late".to_owned(), &me) }, Err("late".to_owned()));
        assert!(!slab.get(0).is_ready());
        // SAFETY: `memory` outlives every slot reference in this test.
        assert!(unsafe { second.publish("two".to_owned(), &me) }.is_ok());
        assert_eq!(slab.get(0).wait(Spin::NONE).0, "two");
    }

    #[test]
    fn an_unarmed_or_answered_slot_refuses_a_reply() {
        let memory = SlabMemory::new();
        let mut slab = Slab::<u32>::new();
        slab.grow(&memory);
        let me = thread::current();
        // SAFETY: `memory` outlives every slot reference in this test.
        assert_eq!(unsafe { slab.stale_ref(3, 0).publish(1, &me) }, Err(1), "never armed");
        let r = slab.arm(3);
        let again = slab.stale_ref(3, 0);
        // SAFETY: `memory` outlives every slot reference in this test.
        assert!(unsafe { r.publish(2, &me) }.is_ok());
        // SAFETY: `memory` outlives every slot reference in this test.
        assert_eq!(unsafe { again.publish(3, &me) }, Err(3), "already answered");
        assert_eq!(slab.get(3).wait(Spin::NONE).0, 2);
    }

    /// Replies nobody took, whose `Drop` panics, left in the slab's memory
    /// when its last owner lets go: each is dropped on its own, so a second
    /// panic does not come during the unwinding of the first (which would
    /// abort the process, and this test binary with it).
    #[test]
    fn leftover_replies_whose_drop_panics_are_dropped_one_by_one() {
        use std::sync::atomic::{AtomicUsize as Counter, Ordering as O};
        static DROPPED: Counter = Counter::new(0);
        struct Boom;
        impl Drop for Boom {
            fn drop(&mut self) {
                DROPPED.fetch_add(1, O::SeqCst);
                panic!("boom");
            }
        }
        let memory = SlabMemory::new();
        let mut slab = Slab::<Boom>::new();
        slab.grow(&memory);
        let me = thread::current();
        for i in 0..3 {
            // SAFETY: `memory` outlives every slot reference in this test.
            assert!(unsafe { slab.arm(i).publish(Boom, &me) }.is_ok());
        }
        drop(slab);
        drop(memory);
        assert_eq!(DROPPED.load(O::SeqCst), 3);
    }

    #[test]
    fn a_parked_caller_is_woken_by_the_reply() {
        let memory = Arc::new(SlabMemory::new());
        let mut slab = Slab::<u64>::new();
        slab.grow(&memory);
        let r = slab.arm(1);
        let me = thread::current();
        let m2 = memory.clone();
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _keep = m2;
            // SAFETY: `memory` outlives every slot reference in this test.
            unsafe { r.publish(99, &me) }.is_ok()
        });
        // No spin: straight to parking.
        assert_eq!(slab.get(1).wait(Spin::NONE), (99, true));
        assert!(worker.join().unwrap());
    }
}
