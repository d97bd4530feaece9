//! The bounded single-producer single-consumer ring between one caller thread
//! and one worker.
//!
//! Normally a thin wrapper over `rtrb`: a pair of requests is published with
//! one store (its write chunk), and the worker takes requests one at a time
//! (a load of the write position only when those it saw are used up, and a
//! store of its read position per request, to a line the caller reads only
//! when it finds the ring full). The worker does not hold a chunk across the
//! requests it processes: a handler waiting for a nested call may serve the
//! same ring meanwhile (`worker/nest.rs`). Under loom it is a small ring of
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

        /// Pushes `values`, published together (the consumer sees all of
        /// them or none), or gives them back if there is no room for all.
        #[inline]
        pub(crate) fn push_run<const N: usize>(&mut self, values: [T; N]) -> Result<(), [T; N]> {
            match self.0.write_chunk_uninit(N) {
                Ok(chunk) => {
                    // N slots, N values: all are written, and the chunk
                    // commits them with one store.
                    let written = chunk.fill_from_iter(values);
                    debug_assert_eq!(written, N);
                    Ok(())
                }
                Err(_) => Err(values),
            }
        }
    }

    /// The worker's end.
    pub(crate) struct Consumer<T>(rtrb::Consumer<T>);

    impl<T> Consumer<T> {
        /// How many values the ring holds (a load of the write position).
        #[inline]
        pub(crate) fn available(&self) -> usize {
            self.0.slots()
        }

        /// The oldest value, left in the ring.
        #[inline]
        pub(crate) fn peek(&self) -> Option<&T> {
            self.0.peek().ok()
        }

        /// Takes the oldest value, if any. Its cell is free for the
        /// producer at once (one Release store of the read position). Reads
        /// the write position only once the values counted by the last
        /// read (or `available`) are taken.
        #[inline]
        pub(crate) fn pop(&mut self) -> Option<T> {
            self.0.pop().ok()
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
        (Producer(shared.clone()), Consumer { shared, tail: 0 })
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
        pub(crate) fn push_run<const N: usize>(&mut self, values: [T; N]) -> Result<(), [T; N]> {
            let s = &*self.0;
            let tail = s.tail.load(Ordering::Relaxed);
            // Acquire: as in `push`.
            let head = s.head.load(Ordering::Acquire);
            if s.buf.len() - (tail - head) < N {
                return Err(values);
            }
            for (k, v) in values.into_iter().enumerate() {
                // SAFETY: `tail + k < head + cap`, so the cell is the producer's.
                s.buf[(tail + k) % s.buf.len()].with_mut(|p| unsafe { (*p).write(v) });
            }
            // Release: as in `push`; one store publishes them all, as `rtrb`'s
            // write chunk does.
            s.tail.store(tail + N, Ordering::Release);
            Ok(())
        }
    }

    pub(crate) struct Consumer<T> {
        shared: Arc<Shared<T>>,
        /// The producer's write position as last read (values up to it are
        /// ready to take without reading it again).
        tail: usize,
    }

    impl<T> Consumer<T> {
        pub(crate) fn available(&mut self) -> usize {
            let s = &*self.shared;
            // Acquire: pairs with the producer's Release on `tail`.
            self.tail = s.tail.load(Ordering::Acquire);
            self.tail - s.head.load(Ordering::Relaxed)
        }

        /// The read position, if a value is there to take: the producer's
        /// write position is read only when the values seen last are used
        /// up, as `rtrb` does.
        fn next(&mut self) -> Option<usize> {
            let s = &*self.shared;
            let head = s.head.load(Ordering::Relaxed);
            if self.tail == head {
                // Acquire: pairs with the producer's Release on `tail`.
                self.tail = s.tail.load(Ordering::Acquire);
                if self.tail == head {
                    return None;
                }
            }
            Some(head)
        }

        pub(crate) fn peek(&mut self) -> Option<&T> {
            let head = self.next()?;
            let s = &*self.shared;
            // SAFETY: `head` is in `[head, tail)`: initialized, and ours until
            // a pop; the reference borrows the consumer, so no pop comes first.
            Some(s.buf[head % s.buf.len()].with(|p| unsafe { (*p).assume_init_ref() }))
        }

        pub(crate) fn pop(&mut self) -> Option<T> {
            let head = self.next()?;
            let s = &*self.shared;
            // SAFETY: `head` is in `[head, tail)`: initialized and ours.
            let v = s.buf[head % s.buf.len()].with(|p| unsafe { (*p).assume_init_read() });
            // Release: pairs with the producer's Acquire on `head`; the cell
            // is free once this store is seen.
            s.head.store(head + 1, Ordering::Release);
            Some(v)
        }

        pub(crate) fn is_empty(&self) -> bool {
            let s = &*self.shared;
            // Acquire: pairs with the producer's Release on `tail`.
            s.tail.load(Ordering::Acquire) == s.head.load(Ordering::Relaxed)
        }
    }
}
