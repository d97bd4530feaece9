//! How replies come back: a reply lane per caller and worker, whose cells
//! carry their own sequence numbers, and a caller that sleeps without
//! costing the worker a locked instruction per reply.
//!
//! # The lane
//!
//! Each lane (one caller thread and one worker) has a request ring
//! (`sync/ring.rs`) and, coming back, an array of reply cells of the same
//! capacity. The worker answers the lane's requests in the order it takes
//! them, and puts its `n`-th answer in cell `n % capacity`; the caller reads
//! them in the same order, so it knows whose reply each one is without a tag.
//! Each cell holds a sequence word beside its value:
//!
//! ```text
//!   seq == 4n       FREE for reply n          (the worker may write it)
//!   seq == 4n + 2   WAITED: free, and the caller sleeps until reply n
//!   seq == 4n + 1   FULL: holds reply n       (the caller may take it)
//!
//!   worker, reply n:  load seq (Acquire) == 4n or 4n + 2?  write value,
//!                     store (or swap) seq = 4n + 1 (Release)
//!   caller, reply n:  load seq (Acquire) == 4n + 1?  read value,
//!                     store seq = 4(n + capacity) (Release)
//! ```
//!
//! - The caller waits on the cell itself: a reply is one cache line to
//!   move, the same line as its sequence word, and neighbouring replies
//!   share lines (a 16-byte outcome takes 24 bytes), so a stream of replies
//!   moves several per line. There is no shared tail index to bounce.
//! - Each side hands the cell to the other with a Release store that the
//!   other's Acquire load pairs with, so the value is never touched by both:
//!   the worker writes only a cell it saw free (the caller's read of the
//!   old value happened before), the caller reads only a cell it saw full.
//! - The worker never waits for room: a caller sends a request to a worker
//!   only while it has fewer than `capacity` requests there still to take
//!   a reply for (`Local::room` in `caller/mod.rs`). A cell found not free
//!   would be a broken count; the worker then waits for it like a full
//!   ring, or drops the reply if the caller has gone (`worker/host.rs`).
//! - Sequence words are the reply numbers times four plus the phase,
//!   modulo 2^32; only equality is asked, of words at most two laps apart,
//!   and a lap is at most 2^16 replies.
//!
//! Model-checked by `loom-tests/tests/reply.rs`.
//!
//! # Two ways to sleep
//!
//! A caller spins on its cell for a while (`Spin`), then sleeps, in one of
//! two ways, chosen by the caller whenever it has no request in flight
//! (`Local::choose_sleep`) and read by the worker with each request
//! (`Sleeper::on_cell`; the caller writes it before the push that the
//! worker acquires, and never while a request is in flight, so a worker
//! always publishes a reply the way its caller will wait for it):
//!
//! - **On the cell**, for a caller that expects to park soon (its spin is
//!   under 20 µs: threads outnumber cores, `caller_spin` is short, or the
//!   replies it waits for have been outlasting its spin, `caller/pace.rs`). It
//!   marks the cell it waits on WAITED with a compare-and-swap from FREE
//!   and parks; the worker publishes that caller's replies with a swap and
//!   unparks it if the swap replaced WAITED. The two read-modify-writes of
//!   one word are totally ordered: either the mark comes first (the swap
//!   sees it and unparks) or the swap does (the mark fails on FULL and the
//!   caller does not park). This costs the worker a locked instruction per
//!   reply, and the caller nothing extra when it parks.
//! - **Announced**, for a caller that expects to spin through the wait
//!   (the latency case): the worker publishes with a plain store, and the
//!   caller that does run out of spin announces its sleep as below, paying
//!   for a heavy barrier (`membarrier` interrupts every other core that
//!   runs a thread of the process, microseconds on a VM), so that the
//!   worker pays no locked instruction per reply.
//!
//! # The announced sleep
//!
//! The worker must learn that the caller sleeps without a read-modify-write
//! per reply, so the two sides follow the pattern of the doorbell's lazy
//! announcements (`doorbell.rs`) with the roles swapped:
//!
//! ```text
//!   caller (going to sleep)                  worker (each reply)
//!   S  store sleeping = true                 P  publish the reply (Release)
//!   H  heavy barrier                         F  light barrier
//!   Q  look at the cell: a reply? stop       L  load sleeping; true? swap it
//!   Z  park; on waking, back to S               to false and, if it was true,
//!                                               unpark the caller
//! ```
//!
//! Every park is preceded by its own S H Q (a wake-up that finds no reply
//! announces the sleep again), and the caller clears `sleeping` itself once
//! it stops waiting.
//!
//! The caller's writes of `sleeping` (S, and the clear) are swaps, although
//! plain stores would do under the C++20 rules: with stores, loom 0.7
//! reports a lost wake-up in `stray_wake_up_from_the_previous_reply_…` in
//! an execution where the worker's L, after its SeqCst fence, reads a value
//! older than an S whose SeqCst fence came first, which the fence rule
//! ([atomics.order] p4) excludes. Both swaps are on the path that parks
//! (a `membarrier` and a futex), where a locked instruction costs nothing
//! that shows; the worker's side, the one on every reply, is unchanged.
//!
//! **No reply is slept through.** Take the reply P that the caller waits
//! for, and the caller's last round S H Q before a park Z.
//!
//! - Fence form (F and H SeqCst fences; the pools of other systems, and
//!   loom): if F precedes H in the fences' total order, Q (after H) sees P.
//!   Otherwise H precedes F, so L (after F) reads S or a later value of
//!   `sleeping`. Reading `true`, the worker unparks the caller, after P:
//!   the caller wakes and its next Q sees P. A later value that is `false`
//!   was written after S either by the caller, which has then stopped
//!   waiting, or by the worker's swap for an earlier reply, whose unpark
//!   then comes after S and ends Z; the caller announces again (S' H' Q'),
//!   and F precedes H' in the total order (otherwise L would have read S'
//!   or later, not a value between S and S'), so Q' sees P.
//! - Membarrier form (F a compiler fence, H `membarrier`): the barrier
//!   cuts the worker's instructions at a point B. If P is before B, P is
//!   visible when `membarrier` returns, so Q sees it. If P is after B, L is
//!   after B too (the compiler fence keeps it after P), and S was visible
//!   before `membarrier` began (the call starts with a full barrier), so L
//!   reads S or later, as above. loom checks the fence form
//!   (`loom-tests/tests/reply.rs`); this form is argued here, as the
//!   doorbell's, and the tests exercise it on every pool built on Linux.
//!
//! `unpark` before `park` leaves a token, so a wake-up that comes before Z
//! is kept; a token left by a wake-up the caller did not need (it saw the
//! reply at Q) only ends a later park early, and every park is in a loop
//! that looks again. Only a worker that finds `sleeping` set pays for a
//! read-modify-write and the unpark.
//!
//! If `membarrier` fails in H, the caller does not park: it clears
//! `sleeping`, sleeps a millisecond and looks again, polling.

use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use crate::sync::barrier::Barrier;
use crate::sync::thread::{self, Thread};
use crate::sync::{Arc, CachePadded, Spin, Spinner, Started, UnsafeCell};
use std::mem::MaybeUninit;
use std::time::Instant;

/// The bytes a lane's reply cell takes for values of type `T`.
pub(crate) fn cell_size<T>() -> usize {
    std::mem::size_of::<Cell<T>>()
}

/// One reply cell: its sequence word and its value, side by side (not
/// padded: small replies share cache lines).
struct Cell<T> {
    seq: AtomicU32,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// The cells of one lane, shared by its worker and its caller.
struct Cells<T> {
    cells: Box<[Cell<T>]>,
}

// SAFETY: a cell's value is written only by the worker, while its sequence
// word says free, and read only by the caller, while it says full; each
// side hands the cell over with a Release store of the word that the
// other's Acquire load pairs with, so a value is never touched by two
// threads at once. Values move between threads: `T: Send`.
unsafe impl<T: Send> Sync for Cells<T> {}
// SAFETY: as above; the cells own `T`s that may be dropped on either side.
unsafe impl<T: Send> Send for Cells<T> {}

impl<T> Drop for Cells<T> {
    fn drop(&mut self) {
        // Replies published and never taken (each side normally empties the
        // lane first, under its own `catch_unwind`): user values, dropped
        // one by one, a panic from one swallowed so a second cannot abort.
        for cell in self.cells.iter() {
            if cell.seq.load(Ordering::Relaxed) & PHASE == FULL {
                // SAFETY: a full sequence word marks a written value nobody
                // took; `&mut self` means nobody else can reach it.
                crate::error::drop_quietly(cell.value.with(|p| unsafe { (*p).assume_init_read() }));
            }
        }
    }
}

/// A new lane of `capacity` cells (at least one): the worker's end and the
/// caller's.
pub(crate) fn lane<T>(capacity: usize) -> (ReplyWriter<T>, ReplyReader<T>) {
    let capacity = capacity.max(1);
    let cells = (0..capacity)
        .map(|i| Cell {
            seq: AtomicU32::new(seq(i as u64, FREE)),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        })
        .collect();
    let shared = Arc::new(Cells { cells });
    (
        ReplyWriter { cells: shared.clone(), next: 0, index: 0 },
        ReplyReader { cells: shared, next: 0, index: 0 },
    )
}

/// A cell free for its next reply.
const FREE: u32 = 0;
/// A cell holding its reply.
const FULL: u32 = 1;
/// A cell free for its next reply, whose caller sleeps until it comes (a
/// caller that sleeps on its cells, `Sleeper::sleep_on_cell`).
const WAITED: u32 = 2;
const PHASE: u32 = 3;

/// The sequence word of a cell in `phase` for reply `n`. Truncated to 32
/// bits: only equality is asked, of words at most two laps apart.
#[inline]
fn seq(n: u64, phase: u32) -> u32 {
    (n as u32).wrapping_mul(4) | phase
}

/// The worker's end of a lane.
pub(crate) struct ReplyWriter<T> {
    cells: Arc<Cells<T>>,
    /// The number of the next reply.
    next: u64,
    /// Its cell: `next % capacity`.
    index: usize,
}

impl<T> ReplyWriter<T> {
    /// Publishes the next reply, or gives it back if its cell has not been
    /// emptied (the caller's count of pending requests is broken). With
    /// `swap` (the caller waits by parking on its cell), the sequence word
    /// is swapped rather than stored, and the result says whether the
    /// caller sleeps on the cell and must be unparked.
    #[inline]
    pub(crate) fn publish(&mut self, value: T, swap: bool) -> Result<bool, T> {
        let cells = &self.cells.cells;
        let cell = &cells[self.index];
        let (free, waited, full) = (seq(self.next, FREE), seq(self.next, WAITED), seq(self.next, FULL));
        // Acquire: pairs with the caller's Release in `take`, so its read of
        // the cell's last value is done before our write below.
        let cur = cell.seq.load(Ordering::Acquire);
        if cur != free && cur != waited {
            return Err(value);
        }
        // SAFETY: the cell is free for this reply: the caller has taken its
        // last value and will not touch it until it sees it full. (It may
        // mark it WAITED meanwhile, which touches the word only.)
        cell.value.with_mut(|p| unsafe { (*p).write(value) });
        // Release, both: pairs with the caller's Acquire in `is_ready`,
        // publishing the write above. The swap is one read-modify-write with
        // the caller's FREE -> WAITED `compare_exchange`: either that comes
        // first (we read WAITED and unpark it) or ours does (it fails and
        // the caller does not park). A caller that waits otherwise never
        // marks the cell, so a plain store loses nothing (and `cur` guards
        // it: a word seen WAITED is swapped whatever `swap` says).
        let woken = if swap || cur == waited {
            cell.seq.swap(full, Ordering::Release) == waited
        } else {
            cell.seq.store(full, Ordering::Release);
            false
        };
        self.next += 1;
        self.index = if self.index + 1 == cells.len() { 0 } else { self.index + 1 };
        Ok(woken)
    }
}

/// The caller's end of a lane.
pub(crate) struct ReplyReader<T> {
    cells: Arc<Cells<T>>,
    /// The number of the next reply to take.
    next: u64,
    /// Its cell: `next % capacity`.
    index: usize,
}

impl<T> ReplyReader<T> {
    #[inline]
    fn cell(&self) -> &Cell<T> {
        &self.cells.cells[self.index]
    }

    /// Whether the next reply has arrived.
    #[inline]
    pub(crate) fn is_ready(&self) -> bool {
        // Acquire: pairs with the worker's Release in `publish`.
        self.cell().seq.load(Ordering::Acquire) == seq(self.next, FULL)
    }

    /// Marks the next reply's cell as waited for (the caller is about to
    /// park on it, `Sleeper::sleep_on_cell`); `false` if the reply is
    /// already there.
    /// The worker then publishes it with a swap and unparks the caller.
    fn mark_waited(&self) -> bool {
        let cell = self.cell();
        let (free, waited) = (seq(self.next, FREE), seq(self.next, WAITED));
        // Relaxed on success: the worker learns only that it must unpark us,
        // and our read of the cell's last value is still ordered before its
        // write: this read-modify-write continues the release sequence of
        // `take`'s Release store of FREE, so the worker's Acquire load of
        // WAITED in `publish` synchronizes with that store. (A plain store
        // of WAITED would break both that and the race with the swap.)
        // Acquire on failure: the reply is there and we are about to read
        // it. Failing on WAITED (marked by an earlier wait that was woken
        // by something else) is a success too.
        match cell.seq.compare_exchange(free, waited, Ordering::Relaxed, Ordering::Acquire) {
            Ok(_) => true,
            Err(cur) => cur == waited,
        }
    }

    /// Takes the next reply, if it has arrived.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<T> {
        if !self.is_ready() {
            return None;
        }
        let len = self.cells.cells.len();
        let cell = self.cell();
        // SAFETY: the cell holds this reply (seen with Acquire above) and the
        // worker will not touch it until we free it below.
        let value = cell.value.with(|p| unsafe { (*p).assume_init_read() });
        // Release: pairs with the worker's Acquire in `publish`: our read
        // above comes before its next write into the cell.
        cell.seq.store(seq(self.next + len as u64, FREE), Ordering::Release);
        self.next += 1;
        self.index = if self.index + 1 == len { 0 } else { self.index + 1 };
        Some(value)
    }
}

/// A caller thread as its workers see it when they publish: whether it
/// sleeps, and how to wake it.
pub(crate) struct Sleeper {
    /// Set by the caller before it parks (S); on its own cache line, so the
    /// workers' load of it on every reply (L) stays a hit while it does not
    /// change.
    sleeping: CachePadded<AtomicBool>,
    /// How the caller sleeps: on its reply cells (`true`), or announcing it
    /// in `sleeping` (module docs, "Two ways to sleep"). Changed by the
    /// caller only while it has no request in flight, before it pushes
    /// one; a worker reads it after taking a request.
    on_cell: AtomicBool,
    thread: Thread,
}

impl Sleeper {
    /// The sleeper for `thread`, the caller's own.
    pub(crate) fn new(thread: Thread) -> Self {
        Self { sleeping: CachePadded::new(AtomicBool::new(false)), on_cell: AtomicBool::new(false), thread }
    }

    /// Caller, with no request in flight: chooses how it will sleep.
    pub(crate) fn set_on_cell(&self, on_cell: bool) {
        // Relaxed: published to a worker by the push of the next request
        // (Release), which the worker acquires before it reads this.
        self.on_cell.store(on_cell, Ordering::Relaxed);
    }

    /// Worker, with a request of this caller in hand: whether the caller
    /// sleeps on its reply cells (publish with a swap, `publish_to`).
    #[inline]
    pub(crate) fn on_cell(&self) -> bool {
        // Relaxed: see `set_on_cell`.
        self.on_cell.load(Ordering::Relaxed)
    }

    /// Worker: publishes `value` as the next reply on `lane` and wakes the
    /// caller if it sleeps, whichever way it does. Gives `value` back if
    /// the cell is not free (see `ReplyWriter::publish`).
    #[inline]
    pub(crate) fn publish_to<T>(
        &self,
        lane: &mut ReplyWriter<T>,
        value: T,
        barrier: &Barrier,
    ) -> Result<(), T> {
        let on_cell = self.on_cell();
        if lane.publish(value, on_cell)? {
            self.thread.unpark();
        } else if !on_cell {
            self.after_publish(barrier);
        }
        Ok(())
    }

    /// Worker, after each reply published to a caller that does not sleep
    /// on its cells (F and L): wakes it if it sleeps.
    #[inline]
    pub(crate) fn after_publish(&self, barrier: &Barrier) {
        barrier.light();
        // Relaxed: what the caller needs (the reply) was published by the
        // publish's Release store; the barriers order this load against S.
        if self.sleeping.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        // Relaxed: as above. The swap makes only one waker unpark for one S.
        if self.sleeping.swap(false, Ordering::Relaxed) {
            self.thread.unpark();
        }
    }

    /// Caller: waits until the next reply on `lane` has arrived, spinning
    /// as `spin` says, then sleeping the way it chose (`set_on_cell`), or
    /// until `deadline`. Returns whether the spin ran out.
    #[cfg(any(test, shardpool_loom))]
    pub(crate) fn wait<T>(
        &self,
        barrier: &Barrier,
        spin: Spin,
        lane: &ReplyReader<T>,
        deadline: Option<Instant>,
    ) -> bool {
        self.wait_timed(barrier, spin, lane, deadline).is_some()
    }

    /// [`wait`](Self::wait), returning, if the spin ran out, when it first
    /// read the clock (`Spinner::started`; `None` inside if it never did).
    // Under loom `Started` is `()`: no clock.
    #[cfg_attr(shardpool_loom, allow(clippy::unit_arg))]
    #[inline]
    pub(crate) fn wait_timed<T>(
        &self,
        barrier: &Barrier,
        spin: Spin,
        lane: &ReplyReader<T>,
        deadline: Option<Instant>,
    ) -> Option<Started> {
        if lane.is_ready() {
            return None;
        }
        let mut spinner = Spinner::new(spin);
        while spinner.spin() {
            if lane.is_ready() {
                return None;
            }
        }
        if self.on_cell() {
            self.sleep_on_cell(lane, deadline);
        } else {
            self.sleep_announced(barrier, lane, deadline);
        }
        Some(spinner.started())
    }

    /// Caller, about to park for the next reply on `lane` while it also
    /// waits for something else (a worker serving while it waits,
    /// `nest.rs`): announces the sleep the way this caller sleeps (S of the
    /// announced sleep, to be followed by the heavy barrier and a look at
    /// the cell; or the mark on the cell). `false` if the reply is there.
    pub(crate) fn announce<T>(&self, lane: &ReplyReader<T>) -> bool {
        if self.on_cell() {
            lane.mark_waited()
        } else {
            // Relaxed: the heavy barrier that follows orders it (a swap: see
            // the module docs).
            self.sleeping.swap(true, Ordering::Relaxed);
            true
        }
    }

    /// Caller: takes back an [`announce`](Self::announce). A mark on a cell
    /// stays: the worker's wake-up, when the reply comes, leaves a token
    /// that a later park absorbs.
    pub(crate) fn withdraw(&self) {
        if !self.on_cell() {
            // Relaxed: as in `sleep_announced`'s clear.
            self.sleeping.swap(false, Ordering::Relaxed);
        }
    }

    /// Marks the reply's cell waited for and parks until it is full (or
    /// the deadline passes: the mark stays, and the worker's wake-up, when
    /// the reply comes, leaves a token that a later park absorbs).
    #[cold]
    fn sleep_on_cell<T>(&self, lane: &ReplyReader<T>, deadline: Option<Instant>) {
        if lane.mark_waited() {
            // Spurious wake-ups and tokens left by earlier wake-ups loop.
            while !lane.is_ready() {
                if !thread::park_until(deadline) {
                    return;
                }
            }
        }
    }

    /// Announces the sleep (S H Q) and parks, until the reply is there (or
    /// the deadline passes).
    #[cold]
    fn sleep_announced<T>(&self, barrier: &Barrier, lane: &ReplyReader<T>, deadline: Option<Instant>) {
        let ready = || lane.is_ready();
        loop {
            // S. Relaxed: the barrier that follows orders it. A swap rather
            // than a store: see the module docs.
            self.sleeping.swap(true, Ordering::Relaxed);
            // H.
            if barrier.heavy().is_err() {
                // Without the barrier a reply could be slept through: poll.
                self.sleeping.swap(false, Ordering::Relaxed);
                #[cfg(not(shardpool_loom))]
                std::thread::sleep(std::time::Duration::from_millis(1));
                if ready() || deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                continue;
            }
            // Q.
            if ready() {
                break;
            }
            // Z. A wake-up, stray or not, leads back to S.
            let past = |d: Instant| Instant::now() >= d;
            if !thread::park_until(deadline) || ready() || deadline.is_some_and(past) {
                break;
            }
        }
        // Relaxed: a worker that still reads `true` only unparks us once
        // more, which leaves a token a later park absorbs. A swap rather
        // than a store: see the module docs.
        self.sleeping.swap(false, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(shardpool_loom)))]
mod tests {
    use super::*;
    use crate::sync::thread;
    use std::time::Duration;

    #[test]
    fn replies_are_taken_in_the_order_they_were_published_across_laps() {
        let (mut w, mut r) = lane::<u32>(3);
        for lap in 0..4 {
            for i in 0..3 {
                assert!(w.publish(lap * 3 + i, false).is_ok());
            }
            assert_eq!(w.publish(99, false), Err(99), "every cell is full");
            for i in 0..3 {
                assert_eq!(r.take(), Some(lap * 3 + i));
            }
            assert_eq!(r.take(), None);
        }
    }

    #[test]
    fn a_cell_not_yet_taken_refuses_the_next_lap() {
        let (mut w, mut r) = lane::<&str>(2);
        assert!(w.publish("a", false).is_ok() && w.publish("b", false).is_ok());
        assert_eq!(w.publish("c", false), Err("c"));
        assert_eq!(r.take(), Some("a"));
        assert!(w.publish("c", false).is_ok(), "the first cell is free again");
        assert_eq!(w.publish("d", false), Err("d"), "the second is not");
        assert_eq!((r.take(), r.take(), r.take()), (Some("b"), Some("c"), None));
    }

    /// Replies nobody took, whose `Drop` panics, left in a lane when both
    /// ends go: each is dropped on its own, so a second panic does not come
    /// during the unwinding of the first (which would abort the process).
    #[test]
    fn replies_left_in_a_lane_whose_drop_panics_are_dropped_one_by_one() {
        use std::sync::atomic::AtomicUsize as Counter;
        static DROPPED: Counter = Counter::new(0);
        struct Boom;
        impl Drop for Boom {
            fn drop(&mut self) {
                DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                panic!("boom");
            }
        }
        let (mut w, mut r) = lane::<Boom>(4);
        for _ in 0..4 {
            assert!(w.publish(Boom, false).is_ok());
        }
        std::mem::forget(r.take());
        drop((w, r));
        assert_eq!(DROPPED.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn a_sleeping_caller_is_woken_by_the_reply() {
        let barrier = Barrier::new(true);
        let (mut w, r) = lane::<u64>(1);
        let sleeper = std::sync::Arc::new(Sleeper::new(thread::current()));
        let waker = sleeper.clone();
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            assert!(w.publish(5, false).is_ok());
            waker.after_publish(&barrier);
        });
        // No spin: straight to sleep.
        assert!(sleeper.wait(&barrier, Spin::NONE, &r, None));
        let mut r = r;
        assert_eq!(r.take(), Some(5));
        worker.join().unwrap();
    }

    #[test]
    fn a_caller_sleeping_on_its_cell_is_woken_by_the_reply() {
        let barrier = Barrier::new(true);
        let (mut w, mut r) = lane::<u64>(1);
        let sleeper = std::sync::Arc::new(Sleeper::new(thread::current()));
        sleeper.set_on_cell(true);
        let waker = sleeper.clone();
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            assert!(waker.publish_to(&mut w, 6, &barrier).is_ok());
        });
        // No spin: straight to the mark and the park.
        assert!(sleeper.wait(&barrier, Spin::NONE, &r, None));
        assert_eq!(r.take(), Some(6));
        worker.join().unwrap();
    }
}
