//! Asymmetric fences for the shutdown gate (`caller.rs`).
//!
//! The gate is a store/load (Dekker) pattern: callers store `active` and
//! load `closed` on every request, shutdown stores `closed` once. Textbook
//! SeqCst fences on both sides cost every request a full fence, which on x86
//! waits for the caller's store buffer to drain, including the cache misses
//! of the request it has just written. So the sides are asymmetric:
//!
//! - [`light`], on every request (and in the workers' shutdown loop), is only
//!   a compiler fence once the process is registered for `membarrier`;
//! - [`heavy`], once per shutdown, is `membarrier(PRIVATE_EXPEDITED)`, which
//!   makes every running thread of the process execute a full memory barrier
//!   (a thread that is not running passes through one when it is switched
//!   in) before the call returns.
//!
//! Either a caller's `active` store was made visible by that barrier (and
//! the workers, which shutdown rings after `heavy`, see it), or the caller's
//! instructions after its compiler fence run after the barrier, and its load
//! of `closed` sees the store that preceded `heavy`. Where `membarrier` is
//! unavailable (another OS, an old kernel, a seccomp filter) both sides are
//! SeqCst fences, and under loom both are loom's SeqCst fence, which is what
//! the models check.

#[cfg(not(shardpool_loom))]
use std::sync::atomic::{compiler_fence, fence, AtomicU8, Ordering};

#[cfg(not(shardpool_loom))]
const UNKNOWN: u8 = 0;
#[cfg(not(shardpool_loom))]
const MEMBARRIER: u8 = 1;
#[cfg(not(shardpool_loom))]
const FENCES: u8 = 2;

/// Which kind of barrier this process uses. Set once (UNKNOWN -> MEMBARRIER
/// or FENCES) by `init`, before any pool is handed out; a pool's callers and
/// its shutdown all happen after its `build`, so they agree on the mode.
#[cfg(not(shardpool_loom))]
#[allow(clippy::disallowed_types)] // a process-wide mode flag, not a protocol loom checks
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Registers the process for expedited `membarrier`, once. Called by
/// `ThreadPoolBuilder::build` before any worker starts.
pub(crate) fn init() {
    #[cfg(not(shardpool_loom))]
    if MODE.load(Ordering::Relaxed) == UNKNOWN {
        MODE.store(if imp::register() { MEMBARRIER } else { FENCES }, Ordering::Relaxed);
    }
}

/// The cheap side of the gate.
#[inline(always)]
pub(crate) fn light() {
    #[cfg(not(shardpool_loom))]
    if MODE.load(Ordering::Relaxed) == MEMBARRIER {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
    #[cfg(shardpool_loom)]
    loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
}

/// The expensive side of the gate (once per shutdown).
pub(crate) fn heavy() {
    #[cfg(not(shardpool_loom))]
    if MODE.load(Ordering::Relaxed) != MEMBARRIER || !imp::membarrier() {
        fence(Ordering::SeqCst);
    }
    #[cfg(shardpool_loom)]
    loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
}

#[cfg(all(not(shardpool_loom), target_os = "linux"))]
mod imp {
    /// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (linux/membarrier.h).
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    /// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` (linux/membarrier.h).
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    pub(super) fn register() -> bool {
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0 as libc::c_long) == 0 }
    }

    /// Returns `false` if the call failed (the caller then fences instead).
    pub(super) fn membarrier() -> bool {
        // SAFETY: as in `register`.
        unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0 as libc::c_long) == 0 }
    }
}

#[cfg(all(not(shardpool_loom), not(target_os = "linux")))]
mod imp {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn membarrier() -> bool {
        false
    }
}
