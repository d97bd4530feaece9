//! Waiting for room in a full ring without blocking a thread: the async
//! callers' side of backpressure.
//!
//! A blocking caller that finds its ring full backs off and looks again (the
//! worker is draining that ring). An async caller must not hold its
//! executor's thread, nor spin its task through the executor: it leaves its
//! waker here, in the lane's `Room`, and returns `Pending`; the worker wakes
//! every waker left here after it has freed cells of the ring.
//!
//! The worker must not pay a locked instruction per pass to learn whether
//! anyone waits, so the two sides follow the announced sleep of the reply
//! cells (`reply.rs`), with the roles of that protocol:
//!
//! ```text
//!   future (ring full)                        worker (each lane pass)
//!   W  leave its waker (under the lock)       C  free the pass's cells
//!   S  waiting = true (swap)                  F  light barrier
//!   H  heavy barrier                          L  load waiting; true? swap
//!   Q  try the push again: sent? done            it to false, take the
//!      (its waker stays, to be woken once        wakers (under the lock)
//!      for nothing); full? Pending               and wake them
//! ```
//!
//! **No waiter is stranded.** Take the future's last S H Q before it returns
//! `Pending`, and the pass that freed cells last before Q ran. Fence form (F
//! and H SeqCst fences): if F precedes H, Q (after H) sees the freed cells,
//! the push succeeds and the future does not wait. Otherwise H precedes F, so
//! L reads S or a later value: reading `true`, the worker takes the wakers,
//! ours among them (W came before S), and wakes it; a later `false` was
//! written by another worker pass's swap after S, which took our waker (it was
//! in the list since W) and woke it. Membarrier form (F a compiler fence, H
//! `membarrier`): as for the reply cells and the doorbell, the barrier splits
//! the worker's instructions; C before the split is visible to Q, C after it
//! puts L after it too, and L reads S or later. Model-checked (fence form) by
//! `loom-tests/tests/room.rs`.
//!
//! If the heavy barrier fails, the future falls back to waking its own
//! task at once (it polls, as it did before this existed).

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::barrier::Barrier;
use crate::sync::{CachePadded, Mutex};
use std::task::Waker;

/// Wakers each side's vector has room for from the start.
pub(crate) const WAKERS: usize = 4;

/// A lane's waiters for room in its ring.
pub(crate) struct Room {
    /// Set by a future after it left its waker (S); read by the worker after
    /// each pass over the lane that took requests (L). On its own line: the
    /// worker's load stays a hit while nobody waits.
    waiting: CachePadded<AtomicBool>,
    wakers: Mutex<Vec<Waker>>,
}

impl Room {
    pub(crate) fn new() -> Self {
        // Room for a few waiting tasks up front: the worker's vector trades
        // places with this one (`after_drain`), and each starts with this
        // much, so a lane's first waits allocate nothing either.
        Self {
            waiting: CachePadded::new(AtomicBool::new(false)),
            wakers: Mutex::new(Vec::with_capacity(WAKERS)),
        }
    }

    /// Future, having found the ring full: leaves `waker` to be woken once
    /// the worker frees cells (W S H). The caller then tries its push again
    /// (Q) and returns `Pending` only if that fails too. Returns `false` if
    /// the heavy barrier failed: the caller must then wake its own task.
    pub(crate) fn wait(&self, waker: &Waker, barrier: &Barrier) -> bool {
        // The clone (and, if unused, its drop) is the runtime's code: not
        // under the lock the worker takes too.
        let mut ours = Some(waker.clone());
        {
            let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            // W. A task that waits again (a spurious wake-up, or another of
            // its futures) is listed once.
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.extend(ours.take());
            }
        }
        drop(ours);
        // S. Relaxed: the barrier orders it. A swap, as the caller's writes
        // of `sleeping` in `reply.rs` are (see there).
        self.waiting.swap(true, Ordering::Relaxed);
        // H.
        barrier.heavy().is_ok()
    }

    /// Worker, after a pass freed cells of the lane's ring (C): F L, and if
    /// anyone waits, moves their wakers into `woken` (empty on entry), for
    /// the worker to wake (runtime code: under `catch_unwind`, with nothing
    /// of ours held). Returns whether it did. The two vectors trade places,
    /// so neither side allocates once both have grown.
    #[inline]
    pub(crate) fn after_drain(&self, barrier: &Barrier, woken: &mut Vec<Waker>) -> bool {
        // F.
        barrier.light();
        // L. Relaxed: what a waiter needs (room) was published by the ring's
        // own Release store; the barriers order this load against S.
        self.waiting.load(Ordering::Relaxed) && self.take(woken)
    }

    /// Worker, when the lane goes (its caller retired, or shutdown): every
    /// waker still listed, to wake (a waiter then finds its push refused,
    /// or tries another lane) rather than drop with the lane.
    #[cold]
    pub(crate) fn take_all(&self, woken: &mut Vec<Waker>) {
        self.waiting.swap(false, Ordering::Relaxed);
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        woken.append(&mut wakers);
    }

    #[cold]
    fn take(&self, woken: &mut Vec<Waker>) -> bool {
        // Relaxed: as above. Cleared before the wakers are taken: a waiter
        // that sets it again after this either left its waker before our
        // lock (we take it) or after (the next drain finds `true`).
        if !self.waiting.swap(false, Ordering::Relaxed) {
            return false;
        }
        debug_assert!(woken.is_empty());
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *wakers, woken);
        true
    }
}

#[cfg(all(test, not(shardpool_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn waiters_are_woken_once_by_the_next_drain_and_listed_once() {
        let barrier = Barrier::new(false);
        let room = Room::new();
        let mut woken = Vec::new();
        assert!(!room.after_drain(&barrier, &mut woken), "nobody waits");
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        assert!(room.wait(&waker, &barrier));
        assert!(room.wait(&waker, &barrier));
        assert!(room.after_drain(&barrier, &mut woken));
        assert_eq!(woken.len(), 1, "one task, listed once");
        woken.drain(..).for_each(Waker::wake);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!room.after_drain(&barrier, &mut woken), "woken once");
    }
}
