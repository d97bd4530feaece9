//! The bounded single-producer single-consumer ring between one caller thread
//! and one worker.
//!
//! Normally a thin wrapper over `rtrb` (its chunk API lets a worker take a
//! whole batch with two atomic operations). Under loom it is a small ring of
//! our own over loom atomics: loom cannot see inside `rtrb`, and a spin on
//! atomics it cannot see would never let the model make progress.

/// Creates a ring with room for `capacity` values.
pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    imp::ring(capacity)
}

pub(crate) use imp::{Consumer, Producer};

#[cfg(not(shardpool_loom))]
mod imp {
    pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
        let (p, c) = rtrb::RingBuffer::new(capacity);
        (Producer(p), Consumer(c))
    }

    /// The caller's end.
    pub(crate) struct Producer<T>(rtrb::Producer<T>);

    impl<T> Producer<T> {
        /// Pushes `value`, or gives it back if the ring is full.
        #[inline]
        pub(crate) fn push(&mut self, value: T) -> Result<(), T> {
            self.0.push(value).map_err(|rtrb::PushError::Full(v)| v)
        }

        /// Pushes `first` and `second`, published together (the consumer
        /// sees both or neither), or gives both back if there is no room for
        /// the two.
        #[inline]
        pub(crate) fn push_pair(&mut self, first: T, second: T) -> Result<(), (T, T)> {
            match self.0.write_chunk_uninit(2) {
                Ok(chunk) => {
                    // Two slots, two values: both are written, and the chunk
                    // commits them with one store.
                    let written = chunk.fill_from_iter([first, second]);
                    debug_assert_eq!(written, 2);
                    Ok(())
                }
                Err(_) => Err((first, second)),
            }
        }
    }

    /// The worker's end.
    pub(crate) struct Consumer<T>(rtrb::Consumer<T>);

    impl<T> Consumer<T> {
        /// Takes up to `max` values in one chunk, handing each to `f`; returns
        /// how many were taken.
        #[inline]
        pub(crate) fn drain(&mut self, max: usize, f: impl FnMut(T)) -> usize {
            let n = self.0.slots().min(max);
            if n == 0 {
                return 0;
            }
            match self.0.read_chunk(n) {
                Ok(chunk) => {
                    chunk.into_iter().for_each(f);
                    n
                }
                // Cannot happen: `n` slots were reported readable and only
                // this consumer removes values.
                Err(_) => 0,
            }
        }

        /// Whether the ring holds nothing (as seen now).
        #[inline]
        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }
}

#[cfg(shardpool_loom)]
mod imp {
    use crate::sync::atomic::{AtomicUsize, Ordering};
    use crate::sync::{Arc, UnsafeCell};
    use std::mem::MaybeUninit;

    struct Shared<T> {
        buf: Box<[UnsafeCell<MaybeUninit<T>>]>,
        /// Next index to read; written by the consumer only.
        head: AtomicUsize,
        /// Next index to write; written by the producer only.
        tail: AtomicUsize,
    }

    // SAFETY: each buffer cell is accessed by exactly one side at a time: the
    // producer writes cells in `[tail, head + cap)`, the consumer reads cells
    // in `[head, tail)`, and the Release/Acquire pairs on `head` and `tail`
    // hand a cell from one side to the other. Values move between threads, so
    // `T: Send`.
    unsafe impl<T: Send> Sync for Shared<T> {}
    // SAFETY: as above; the buffer owns `T`s that may be dropped on either side.
    unsafe impl<T: Send> Send for Shared<T> {}

    impl<T> Drop for Shared<T> {
        fn drop(&mut self) {
            let head = self.head.load(Ordering::Relaxed);
            let tail = self.tail.load(Ordering::Relaxed);
            for i in head..tail {
                let cell = &self.buf[i % self.buf.len()];
                // SAFETY: cells in `[head, tail)` hold initialized values that
                // nobody took, and we are the last owner.
                cell.with_mut(|p| unsafe { (*p).assume_init_drop() });
            }
        }
    }

    pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
        let buf = (0..capacity).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
        let shared = Arc::new(Shared { buf, head: AtomicUsize::new(0), tail: AtomicUsize::new(0) });
        (Producer(shared.clone()), Consumer(shared))
    }

    pub(crate) struct Producer<T>(Arc<Shared<T>>);

    impl<T> Producer<T> {
        pub(crate) fn push(&mut self, value: T) -> Result<(), T> {
            let s = &*self.0;
            let tail = s.tail.load(Ordering::Relaxed);
            // Acquire: pairs with the consumer's Release on `head`, so its
            // read of the cell we are about to reuse is finished.
            let head = s.head.load(Ordering::Acquire);
            if tail - head == s.buf.len() {
                return Err(value);
            }
            // SAFETY: `tail < head + cap`, so this cell is the producer's.
            s.buf[tail % s.buf.len()].with_mut(|p| unsafe { (*p).write(value) });
            // Release: pairs with the consumer's Acquire on `tail`, publishing
            // the write above.
            s.tail.store(tail + 1, Ordering::Release);
            Ok(())
        }
    }

    impl<T> Producer<T> {
        pub(crate) fn push_pair(&mut self, first: T, second: T) -> Result<(), (T, T)> {
            let s = &*self.0;
            let tail = s.tail.load(Ordering::Relaxed);
            // Acquire: as in `push`.
            let head = s.head.load(Ordering::Acquire);
            if s.buf.len() - (tail - head) < 2 {
                return Err((first, second));
            }
            // SAFETY: `tail + 1 < head + cap`, so both cells are the producer's.
            s.buf[tail % s.buf.len()].with_mut(|p| unsafe { (*p).write(first) });
            // SAFETY: as above.
            s.buf[(tail + 1) % s.buf.len()].with_mut(|p| unsafe { (*p).write(second) });
            // Release: as in `push`; one store publishes both, as `rtrb`'s
            // write chunk does.
            s.tail.store(tail + 2, Ordering::Release);
            Ok(())
        }
    }

    pub(crate) struct Consumer<T>(Arc<Shared<T>>);

    impl<T> Consumer<T> {
        pub(crate) fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
            let s = &*self.0;
            let head = s.head.load(Ordering::Relaxed);
            // Acquire: pairs with the producer's Release on `tail`.
            let tail = s.tail.load(Ordering::Acquire);
            let n = (tail - head).min(max);
            for i in head..head + n {
                // SAFETY: `i` is in `[head, tail)`: initialized and ours.
                let v = s.buf[i % s.buf.len()].with(|p| unsafe { (*p).assume_init_read() });
                f(v);
            }
            // Release: pairs with the producer's Acquire on `head`; the
            // cells are free once this store is seen. Once for the whole
            // chunk, after every value was handled, as `rtrb`'s read chunk
            // commits when it is dropped: a caller may have taken the
            // replies of a chunk while its cells are still taken.
            if n > 0 {
                s.head.store(head + n, Ordering::Release);
            }
            n
        }

        pub(crate) fn is_empty(&self) -> bool {
            let s = &*self.0;
            // Acquire: pairs with the producer's Release on `tail`.
            s.tail.load(Ordering::Acquire) == s.head.load(Ordering::Relaxed)
        }
    }
}
