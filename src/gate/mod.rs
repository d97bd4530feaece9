//! The shutdown gate: callers' enter and leave, shutdown's close, barrier
//! and seal, and the workers' quiesce. The proof sketch is in `README.md`
//! beside this file, and it covers every step here and nothing elsewhere.
//!
//! Model-checked by `loom-tests/tests/shutdown.rs`; the membarrier form,
//! which loom cannot see, is argued in the README and stressed by
//! `tests/shutdown.rs`.

use crate::error::Error;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::barrier::Barrier;
use crate::sync::CachePadded;

/// Whether one caller is inside the gate (between C1 and C5 of the README).
/// Written by its caller, read by the workers while they quiesce.
pub(crate) struct Presence {
    active: CachePadded<AtomicBool>,
}

impl Presence {
    pub(crate) fn new() -> Self {
        Self { active: CachePadded::new(AtomicBool::new(false)) }
    }
}

/// One pool's gate.
pub(crate) struct Gate {
    /// S1: no caller may enter any more.
    closed: AtomicBool,
    /// S3: set only after the heavy barrier; the workers' signal to quiesce.
    sealed: AtomicBool,
    barrier: Barrier,
    /// Loom only: set right after S2, and asserted by every worker at the end
    /// of its quiesce, so a model fails if a worker could quiesce before the
    /// heavy barrier ended (it did, before the seal existed).
    #[cfg(shardpool_loom)]
    heavy_done: AtomicBool,
}

impl Gate {
    pub(crate) fn new(barrier: Barrier) -> Self {
        Self {
            closed: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            barrier,
            #[cfg(shardpool_loom)]
            heavy_done: AtomicBool::new(false),
        }
    }

    /// Whether the pool is closed to new requests (a hint outside the gate;
    /// inside it, [`enter`](Self::enter) decides).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Caller, C1..C3: enters the gate, or fails with `Shutdown` (and is then
    /// outside it again). Between `enter` and [`leave`](Self::leave) the
    /// caller only pushes: no user code, so shutdown never waits on it long.
    #[inline]
    pub(crate) fn enter(&self, me: &Presence) -> Result<(), Error> {
        // Relaxed store and load: the barrier orders them against shutdown's
        // (README, "Why no accepted request is lost").
        // NB: a full fence here waits for the request's own cache misses;
        // `perf record` of 1024-request batches put 87% of the push path on
        // it, and the perf harness's batch row (1 worker, 1024) went from
        // 10.1 to 14.6 M requests/s without it (`cargo run --release -p perf`).
        me.active.store(true, Ordering::Relaxed);
        self.barrier.light();
        if self.closed.load(Ordering::Relaxed) {
            self.leave(me);
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    /// Caller, C5: leaves the gate.
    #[inline]
    pub(crate) fn leave(&self, me: &Presence) {
        // Release: pairs with the worker's Acquire in `quiesced`; a worker
        // that reads `false` also sees the pushes made inside the gate.
        me.active.store(false, Ordering::Release);
    }

    /// Shutdown, S1..S3. On `Ok`, the caller must then ring CONTROL on every
    /// worker (S4). Returns whether this call was the one that closed the
    /// pool. On `Err` the pool is closed to new requests but not sealed: the
    /// workers keep serving whatever was pushed and never quiesce.
    pub(crate) fn close(&self) -> Result<bool, Error> {
        let first = !self.closed.swap(true, Ordering::Relaxed);
        self.barrier.heavy().map_err(|e| Error::BarrierFailed { errno: e.0 })?;
        #[cfg(shardpool_loom)]
        self.heavy_done.store(true, Ordering::Relaxed);
        // Release: pairs with the workers' Acquire in `is_sealed`, so a worker
        // that sees the seal comes after the heavy barrier.
        self.sealed.store(true, Ordering::Release);
        Ok(first)
    }

    /// Closes and seals a gate that no caller has ever entered (a pool whose
    /// build failed, never handed out): with nobody inside or about to
    /// enter, there is nothing for the barrier to order.
    pub(crate) fn seal_unshared(&self) {
        self.closed.store(true, Ordering::Relaxed);
        #[cfg(shardpool_loom)]
        self.heavy_done.store(true, Ordering::Relaxed);
        // Release: pairs with the workers' Acquire in `is_sealed`.
        self.sealed.store(true, Ordering::Release);
    }

    /// Worker: whether shutdown has passed its heavy barrier, so the worker
    /// may quiesce. Read after a CONTROL bit.
    #[inline]
    pub(crate) fn is_sealed(&self) -> bool {
        // Acquire: pairs with the Release store in `close`.
        self.sealed.load(Ordering::Acquire)
    }

    /// Worker, W3..W4: whether no caller among `accepted` is inside the gate.
    /// Called only once [`is_sealed`](Self::is_sealed) returned `true`; on
    /// `true` the worker drains once more and exits.
    pub(crate) fn quiesced<'a>(&self, mut accepted: impl Iterator<Item = &'a Presence>) -> bool {
        self.barrier.light();
        // Acquire: pairs with the callers' Release in `leave`.
        let quiet = !accepted.any(|p| p.active.load(Ordering::Acquire));
        #[cfg(shardpool_loom)]
        if quiet {
            assert!(
                self.heavy_done.load(Ordering::Relaxed),
                "a worker quiesced without having seen the end of shutdown's heavy barrier"
            );
        }
        quiet
    }
}
