//! A worker's doorbell: which callers have work for it, and whether it sleeps.
//!
//! # The sleep protocol
//!
//! One 64-bit word per worker:
//!
//! ```text
//!   bit 63      SLEEPING   the worker is parked, or about to park
//!   bit 62      CONTROL    a caller registered, or the pool is closing
//!   bits 0..62  lane hints bit (lane % 62): that caller's ring has work
//! ```
//!
//! - A caller, after pushing into its ring, sets its hint bit with
//!   `fetch_or` (Release: publishes the push). If the word it replaced had
//!   SLEEPING set, it clears SLEEPING with `fetch_and` and, if it was the one
//!   to clear it, unparks the worker.
//! - The worker takes the hints with `swap(0)` (Acquire: pairs with the
//!   callers' Release, so their pushes are visible), and goes to sleep only
//!   with `compare_exchange(0, SLEEPING)`: that fails if any bit arrived since
//!   it last looked. It then parks until it sees SLEEPING cleared.
//!
//! Every step is a read-modify-write of the same word, so they are totally
//! ordered: a caller's `fetch_or` either comes before the worker's CAS (which
//! then fails and the worker looks again) or after it (and then it reads
//! SLEEPING and wakes the worker). No wake-up is lost, with no SeqCst fence.
//! `unpark` before `park` leaves a token, so a wake that beats the park is
//! kept. Only the caller that clears SLEEPING pays for the unpark syscall.
//!
//! Callers share a bit when more than 62 are registered with one worker; the
//! worker then polls every caller of that bit, which only costs a look at an
//! empty ring.
//!
//! Model-checked by `loom-tests/tests/doorbell.rs`, on its own and through
//! the worker loop.

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::thread::{self, Thread};
use crate::sync::{CachePadded, SetOnce};

const SLEEPING: u64 = 1 << 63;
/// A caller registered, or the pool is closing: the worker must look at its
/// registration queue and the pool's state.
pub(crate) const CONTROL: u64 = 1 << 62;
/// How many distinct lane hint bits there are.
pub(crate) const LANE_BITS: u32 = 62;
pub(crate) const LANE_MASK: u64 = (1 << LANE_BITS) - 1;

/// The hint bit of caller lane `lane`.
#[inline]
pub(crate) fn lane_bit(lane: u32) -> u64 {
    1 << (lane % LANE_BITS)
}

pub(crate) struct Doorbell {
    word: CachePadded<AtomicU64>,
    /// The worker's thread, set by the worker before the pool is handed out.
    thread: SetOnce<Thread>,
    /// Unparks done by callers (a statistic; touched on the slow path only).
    wakeups: AtomicU64,
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self { word: CachePadded::new(AtomicU64::new(0)), thread: SetOnce::new(), wakeups: AtomicU64::new(0) }
    }

    /// Worker: records the thread to unpark. Called once, at worker start.
    pub(crate) fn set_thread(&self, thread: Thread) {
        self.thread.set(thread);
    }

    /// Caller: announces `bits` (hint bits or CONTROL) and wakes the worker if
    /// it sleeps.
    #[inline]
    pub(crate) fn ring(&self, bits: u64) {
        // Release: publishes what the caller did before (its ring push, its
        // registration) to the worker's Acquire `take`.
        let prev = self.word.fetch_or(bits, Ordering::Release);
        if prev & SLEEPING != 0 {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        // Only the caller that actually clears SLEEPING unparks. Relaxed: the
        // bits that matter were published by `ring`'s Release, and the worker
        // re-reads the word with Acquire after waking.
        if self.word.fetch_and(!SLEEPING, Ordering::Relaxed) & SLEEPING != 0 {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
            self.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Worker: takes every pending bit.
    #[inline]
    pub(crate) fn take(&self) -> u64 {
        // Acquire: pairs with the callers' Release in `ring`.
        self.word.swap(0, Ordering::Acquire)
    }

    /// Worker: whether any bit is pending (a cheap look while spinning).
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    /// Worker: announces that it goes to sleep, unless a caller has rung
    /// since the last `take`. On `true` the worker must call
    /// [`park_until_rung`](Self::park_until_rung).
    pub(crate) fn try_sleep(&self) -> bool {
        // Relaxed: nothing is published by going to sleep, and `take`, which
        // acquires, follows the wake-up.
        self.word.compare_exchange(0, SLEEPING, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// Worker: parks until a caller has cleared SLEEPING.
    pub(crate) fn park_until_rung(&self) {
        // Acquire: pairs with the waker's clearing RMW (which follows its
        // Release `fetch_or` in the word's modification order).
        while self.word.load(Ordering::Acquire) & SLEEPING != 0 {
            thread::park();
        }
    }

    /// Whether the worker is parked (or just about to park).
    pub(crate) fn is_sleeping(&self) -> bool {
        self.word.load(Ordering::Relaxed) & SLEEPING != 0
    }
}

impl Doorbell {
    /// How many times a caller unparked the worker.
    pub(crate) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}
