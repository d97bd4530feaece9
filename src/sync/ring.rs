//! The bounded single-producer single-consumer ring between one caller thread
//! and one worker.
//!
//! One implementation, over the shim's atomics and cells, for the shipped
//! build and for loom alike: the loom models check this very code.
//!
//! # Cells that say whether they are full
//!
//! There is no shared head or tail index. Each cell carries a sequence word
//! beside its value, and each side keeps its own position (values pushed or
//! taken since the ring was made) privately. A ring of `n` cells (`n >= 2`)
//! puts position `pos` in cell `pos mod n`, which says:
//!
//! ```text
//!   seq == pos        FREE for position pos  (the producer may write it)
//!   seq == pos + 1    FULL: holds position pos (the consumer may take it)
//!
//!   producer, pos:  load seq (Acquire) == pos?  write value;
//!                   store seq = pos + 1 (Release)
//!   consumer, pos:  load seq (Acquire) == pos + 1?  read value;
//!                   store seq = pos + n (Release): free for the next lap
//! ```
//!
//! - Each side hands the cell to the other with a Release store that the
//!   other's Acquire load pairs with, so a value is never touched by both:
//!   the producer writes only a cell it saw free (the consumer's read of the
//!   old value happened before), the consumer reads only a cell it saw full.
//! - The words a cell holds over one lap (`pos`, `pos + 1`, then `pos + n`)
//!   are distinct for `n >= 2`, so each look is unambiguous. Positions and
//!   words are 64-bit on every target, so they never wrap in a ring's life
//!   (a `usize` would, after 2^32 values on a 32-bit target, and the cell
//!   of a position would then no longer be `pos mod n`).
//! - A request is published by a store to the line its value is written to,
//!   and found by a load of the line the worker reads it from. With shared
//!   indices (`rtrb`, which this ring replaced) every push also stored to
//!   the tail's line, which a polling worker had just read, and every pop to
//!   the head's: two more cache lines moved per request. This is the design
//!   of FastForward (Giacomoni, Moseley and Vachharajani, PPoPP 2008), with
//!   sequence words in place of its null marks, as in the reply lanes
//!   (`reply.rs`).
//! - The consumer frees cells in order, so a cell seen free says the ones
//!   before it are free too. The producer looks half a ring ahead and
//!   remembers how far it may write; it does not wait for a line the
//!   consumer wrote on every push.
//! - A run (`push_run`) is published all or nothing: the producer checks the
//!   run's last cell is free, writes every value, and stores the sequence
//!   words last to first. A consumer that sees the first full sees the rest
//!   full (each store came before the one it acquired, in the producer's
//!   order).
//! - The consumer frees each cell as it takes it. Freeing a pass's cells
//!   once at its end was tried: a handler that blocks then holds the cells
//!   of the requests its pass took before it, and a blocking caller of a
//!   small ring, which polls for room, waits behind it (`tests/async_api.rs`,
//!   `full_ring`, hung); alternated runs of the batch bench showed no gain
//!   from it either. (An async caller waiting for room is woken only after
//!   the pass, `room.rs`.)
//!
//! Model-checked on its own by `loom-tests/tests/ring.rs` (where no reply
//! orders a cell's reuse, so the hand-offs above are all there is), and
//! through the pool by every other loom model in `loom-tests/`.

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Arc, UnsafeCell};
use std::mem::MaybeUninit;

struct Slot<T> {
    seq: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

struct Shared<T> {
    slots: Box<[Slot<T>]>,
}

// SAFETY: each value is accessed by one side at a time, as the sequence
// words say, and the Release/Acquire pairs on them hand a cell from one side
// to the other (module docs). Values move between threads, so `T: Send`.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the buffer owns `T`s, dropped on whichever side is last.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let n = self.slots.len() as u64;
        for (i, slot) in self.slots.iter().enumerate() {
            // A full cell's word is one more than a position that maps to
            // it (a free one's is such a position; positions never wrap).
            // Relaxed: both sides are gone, and the drop of the last `Arc`
            // (an Acquire) ordered their stores before this.
            if slot.seq.load(Ordering::Relaxed) % n == (i as u64 + 1) % n {
                // SAFETY: the cell is full: its value was written and never
                // taken, and we are the last owner.
                slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            }
        }
    }
}

/// Index `i` (below twice the cell count `n`) taken back into the ring.
#[inline]
fn wrap(i: usize, n: usize) -> usize {
    if i >= n {
        i - n
    } else {
        i
    }
}

/// Creates a ring with room for `capacity` values (at least two: the
/// sequence words need two cells to tell a lap's states apart).
pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let n = capacity.max(2);
    let slots =
        (0..n).map(|i| Slot { seq: AtomicU64::new(i as u64), value: UnsafeCell::new(MaybeUninit::uninit()) });
    let shared = Arc::new(Shared { slots: slots.collect() });
    (
        Producer { shared: shared.clone(), pos: 0, index: 0, free_until: n as u64 },
        Consumer { shared, pos: 0, index: 0 },
    )
}

/// The caller's end.
pub(crate) struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Values pushed since the ring was made.
    pos: u64,
    /// `pos` mod the number of cells.
    index: usize,
    /// The cells of the positions in `[pos, free_until)` are known to be
    /// free (`fits`); never below `pos`.
    free_until: u64,
}

impl<T> Producer<T> {
    /// The cell `k` places after the next one, and its position.
    #[inline]
    fn ahead(&self, k: usize) -> (&Slot<T>, u64) {
        let slots = &self.shared.slots;
        (&slots[wrap(self.index + k, slots.len())], self.pos + k as u64)
    }

    /// Whether the cell `k` places after the next one is free for its
    /// position; if so, so are those before it.
    #[inline]
    fn free(&self, k: usize) -> bool {
        let (slot, pos) = self.ahead(k);
        // Acquire: pairs with the consumer's Release store in `pop`, which
        // freed the cell (and, taking them in order, every one before it):
        // its reads of the old values happened before our writes.
        slot.seq.load(Ordering::Acquire) == pos
    }

    /// Whether the next `len` cells are free (`len` at most the cell count).
    ///
    /// A look at a cell is a load of a line the consumer wrote last, a
    /// cache miss the push would wait for; so the producer looks half a
    /// ring ahead and remembers how far the cells are free, and looks
    /// again only once it has used them up.
    #[inline]
    fn fits(&mut self, len: usize) -> bool {
        debug_assert!(len <= self.shared.slots.len());
        if self.free_until - self.pos >= len as u64 {
            return true;
        }
        let far = (self.shared.slots.len() / 2).max(len);
        let known = if self.free(far - 1) {
            far
        } else if far > len && self.free(len - 1) {
            len
        } else {
            return false;
        };
        self.free_until = self.pos + known as u64;
        true
    }

    /// Pushes `value`, or gives it back if the ring is full.
    #[inline]
    pub(crate) fn push(&mut self, value: T) -> Result<(), T> {
        self.push_run([value]).map_err(|[v]| v)
    }

    /// Pushes `values`, published together (the consumer sees all of them
    /// or none), or gives them back if there is no room for all.
    #[inline]
    pub(crate) fn push_run<const N: usize>(&mut self, values: [T; N]) -> Result<(), [T; N]> {
        if N > self.shared.slots.len() || !self.fits(N) {
            return Err(values);
        }
        for (k, v) in values.into_iter().enumerate() {
            let (slot, _) = self.ahead(k);
            // SAFETY: the cell is free for this lap (`fits`): the consumer
            // is done with it until we store its word below.
            slot.value.with_mut(|p| unsafe { (*p).write(v) });
        }
        for k in (0..N).rev() {
            let (slot, pos) = self.ahead(k);
            // Release: pairs with the consumer's Acquire load in `full`,
            // publishing this cell's value and, stored last to first, the
            // words of the cells after it (module docs).
            slot.seq.store(pos + 1, Ordering::Release);
        }
        self.pos += N as u64;
        self.index = wrap(self.index + N, self.shared.slots.len());
        Ok(())
    }
}

/// The worker's end.
pub(crate) struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Values taken since the ring was made.
    pos: u64,
    /// `pos` mod the number of cells.
    index: usize,
}

impl<T> Consumer<T> {
    /// The next cell, if it holds a value.
    #[inline]
    fn full(&self) -> Option<&Slot<T>> {
        let slot = &self.shared.slots[self.index];
        // Acquire: pairs with the producer's Release store in `push_run`;
        // its write of the value happened before.
        (slot.seq.load(Ordering::Acquire) == self.pos + 1).then_some(slot)
    }

    /// The oldest value, left in the ring.
    #[inline]
    pub(crate) fn peek(&self) -> Option<&T> {
        let slot = self.full()?;
        // SAFETY: the cell is full: its value is initialized and stays until
        // a `pop`, which needs `&mut self`, so not while this borrow lives.
        Some(slot.value.with(|p| unsafe { (*p).assume_init_ref() }))
    }

    /// Takes the oldest value, if any; its cell is free for the producer
    /// at once.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        let slot = self.full()?;
        // SAFETY: the cell is full, and the value is moved out before the
        // cell is handed back below, so it is never read again.
        let v = slot.value.with(|p| unsafe { (*p).assume_init_read() });
        let n = self.shared.slots.len();
        // Release: pairs with the producer's Acquire load in `fits`; our read
        // of the value happened before its next write of the cell.
        slot.seq.store(self.pos + n as u64, Ordering::Release);
        self.pos += 1;
        self.index = wrap(self.index + 1, n);
        Some(v)
    }

    /// Whether the ring holds nothing (as seen now).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.full().is_none()
    }
}

#[cfg(all(test, not(shardpool_loom)))]
mod tests {
    use super::ring;
    use std::rc::Rc;

    #[test]
    fn a_ring_holds_its_capacity_and_a_taken_cell_is_free_at_once() {
        let (mut p, mut c) = ring::<u32>(3);
        for v in 0..3 {
            p.push(v).unwrap();
        }
        assert_eq!(p.push(3), Err(3), "full");
        assert_eq!(c.pop(), Some(0));
        p.push(3).unwrap();
        assert_eq!(p.push(4), Err(4));
        assert_eq!((c.pop(), c.pop(), c.pop(), c.pop()), (Some(1), Some(2), Some(3), None));
    }

    #[test]
    fn a_run_goes_whole_or_not_at_all_and_wraps() {
        let (mut p, mut c) = ring::<u32>(5);
        for lap in 0..10 {
            p.push_run([lap, lap + 1, lap + 2]).unwrap();
            assert_eq!(p.push_run([9, 9, 9]), Err([9, 9, 9]), "2 cells free, 3 asked");
            assert_eq!(c.peek(), Some(&lap));
            assert_eq!((c.pop(), c.pop(), c.pop()), (Some(lap), Some(lap + 1), Some(lap + 2)));
            assert!(c.is_empty());
        }
        assert_eq!(p.push_run([1, 2, 3, 4, 5, 6]), Err([1, 2, 3, 4, 5, 6]), "more than the cells");
    }

    #[test]
    fn a_ring_of_one_has_two_cells() {
        let (mut p, mut c) = ring::<u32>(1);
        p.push_run([1, 2]).unwrap();
        assert_eq!(p.push(3), Err(3));
        assert_eq!((c.pop(), c.pop(), c.pop()), (Some(1), Some(2), None));
        p.push(3).unwrap();
        assert_eq!(c.pop(), Some(3));
    }

    #[test]
    fn a_stream_across_two_threads_arrives_whole_and_in_order() {
        // Single values and runs of two and three through 3 cells: every
        // lap wraps, and a run often waits for the consumer to free its
        // last cell while the first ones are already free.
        const N: u64 = 300_000;
        let (mut p, mut c) = ring::<Box<u64>>(3);
        let producer = std::thread::spawn(move || {
            let (mut next, mut step) = (0, 0u32);
            while next < N {
                let pushed = match step % 3 {
                    0 if next + 3 <= N => {
                        p.push_run([Box::new(next), Box::new(next + 1), Box::new(next + 2)]).map(|()| 3).ok()
                    }
                    1 if next + 2 <= N => p.push_run([Box::new(next), Box::new(next + 1)]).map(|()| 2).ok(),
                    _ => p.push(Box::new(next)).map(|()| 1).ok(),
                };
                match pushed {
                    Some(k) => {
                        next += k;
                        step += 1;
                    }
                    None => std::thread::yield_now(),
                }
            }
        });
        let mut expected = 0;
        while expected < N {
            match c.peek().map(|v| **v) {
                Some(v) => {
                    assert_eq!(v, expected);
                    assert_eq!(c.pop().map(|v| *v), Some(expected));
                    expected += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert!(c.is_empty());
    }

    #[test]
    fn values_left_in_the_ring_are_dropped_once_and_taken_ones_not_at_all() {
        let live = Rc::new(());
        let (mut p, mut c) = ring::<Rc<()>>(4);
        // Wrap once so that the full cells are not the first ones.
        for _ in 0..3 {
            p.push(live.clone()).unwrap();
            drop(c.pop());
        }
        for _ in 0..4 {
            p.push(live.clone()).unwrap();
        }
        let taken = c.pop().unwrap();
        drop((p, c));
        // Three dropped with the ring, one held here.
        assert_eq!(Rc::strong_count(&live), 2);
        drop(taken);
        assert_eq!(Rc::strong_count(&live), 1);
    }
}
