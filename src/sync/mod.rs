//! The synchronization shim: the only module of the crate that names atomics,
//! `UnsafeCell`, thread parking, spin hints, the SPSC ring, thread-locals and
//! core pinning.
//!
//! Built normally it re-exports `std` and `core_affinity`. Built with
//! `RUSTFLAGS="--cfg shardpool_loom"` it swaps in `loom`'s types, a no-op pin
//! and a fixed core count, so the loom models in `loom-tests/` check the very
//! code that ships, the SPSC ring ([`ring`]) included: it is written over the
//! shim. Every spin loop of the crate goes through [`Spinner`] so that loom
//! can preempt it.
//!
//! Nothing outside this module may use `std::sync::atomic`, `std::cell::UnsafeCell`,
//! `std::thread::park` or `core_affinity` directly. `clippy.toml` in this directory
//! lists them; clippy enforces it in the loom build, where the shim's items
//! are loom's and a std one stands out (`loom-tests/README.md` has the
//! command).

pub(crate) mod affinity;
pub(crate) mod barrier;
mod cell;
pub(crate) mod ring;
mod spin;

pub(crate) use cell::{SetOnce, UnsafeCell};
pub(crate) use spin::{Backoff, Spin, Spinner, Started};

pub(crate) use crossbeam_utils::CachePadded;

#[cfg(shardpool_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex};
#[cfg(not(shardpool_loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex};

/// Atomic types and orderings (std or loom).
pub(crate) mod atomic {
    #[cfg(not(shardpool_loom))]
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

    // The crate's only SeqCst operations are the barriers (`barrier.rs`),
    // fences under loom: loom models SeqCst fences faithfully, but not
    // SeqCst loads and stores (it treats them as AcqRel). The call chains'
    // sequence lock (`chain.rs`) uses Acquire and Release fences.
    #[cfg(shardpool_loom)]
    pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

    /// Adds `n` to a counter that only the calling thread writes.
    ///
    /// A load and a store instead of a locked read-modify-write: readers on
    /// other threads only ever see a slightly stale total, which is all a
    /// statistic needs.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// Threads: spawning, parking and the current thread's handle (std or loom).
pub(crate) mod thread {
    #[cfg(not(shardpool_loom))]
    pub(crate) use std::thread::{current, park, Builder, JoinHandle, Thread};

    #[cfg(shardpool_loom)]
    pub(crate) use loom::thread::{current, park, Builder, JoinHandle, Thread};

    /// Parks until unparked (or woken spuriously), or until `deadline`.
    /// Returns `false`, without parking, once the deadline has passed.
    /// (loom has no clock: there, `deadline` must be `None`.)
    pub(crate) fn park_until(deadline: Option<std::time::Instant>) -> bool {
        match deadline {
            None => park(),
            #[cfg(not(shardpool_loom))]
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => std::thread::park_timeout(left),
                _ => return false,
            },
            #[cfg(shardpool_loom)]
            Some(_) => unreachable!("no deadlines under loom"),
        }
        true
    }
}

/// Declares a thread-local that loom models per model thread. A
/// `const { .. }` initialiser is kept as such outside loom (no lazy-init
/// check on each access; loom takes the plain expression).
macro_rules! thread_local_shim {
    ($(#[$attr:meta])* static $name:ident: $t:ty = const $init:block;) => {
        #[cfg(not(shardpool_loom))]
        std::thread_local!($(#[$attr])* static $name: $t = const $init;);
        #[cfg(shardpool_loom)]
        loom::thread_local!($(#[$attr])* static $name: $t = $init;);
    };
    ($($tt:tt)*) => {
        #[cfg(not(shardpool_loom))]
        std::thread_local!($($tt)*);
        #[cfg(shardpool_loom)]
        loom::thread_local!($($tt)*);
    };
}
pub(crate) use thread_local_shim as thread_local;

/// A process-wide unique number for each pool, used to key the per-thread
/// caller handles and to detect calls from a pool's own workers.
///
/// This counter is not part of any protocol (it only has to hand out distinct
/// numbers), so it stays a `std` atomic even under loom: loom atomics cannot
/// live in a `static`.
#[allow(clippy::disallowed_types)] // deliberately std: see above
pub(crate) fn next_pool_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
