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
//! A worker may also take its sleep back itself: after Q found work (below),
//! or at the deadline of a timed park (the adaptive idle policy,
//! `idle.rs`). Either is a `fetch_and` clearing SLEEPING, in the same total
//! order as the callers' RMWs: a caller whose `fetch_or` came before it saw
//! SLEEPING and unparks the worker (a token that only makes a later park
//! return early, which every park loop tolerates), and one after it sees
//! an awake worker, which takes the word before it sleeps again. No bit is
//! lost either way: clearing SLEEPING leaves the hint bits in place. loom
//! checks the cancel after Q; a timed park it cannot model, and the timed
//! take-back is that same `fetch_and` at another moment.
//!
//! Callers share a bit when more than 62 are registered with one worker; the
//! worker then polls every caller of that bit, which only costs a look at an
//! empty ring.
//!
//! # Lazy announcements (membarrier pools)
//!
//! A `fetch_or` per request is a locked instruction on a line the worker
//! reads, and a cache-line transfer each time the worker takes the word:
//! it cost a batch half its rate and a single call about a tenth of its
//! round trip. So where the pool's light barrier is cheap (the membarrier
//! form, and loom), a push is announced *lazily*, and only a sleeping
//! worker is rung:
//!
//! ```text
//!   caller (per push)                    worker (going to sleep)
//!   P  push into the ring (Release)      S  compare_exchange(0, SLEEPING)
//!   F  light barrier                     H  heavy barrier
//!   L  load the word; SLEEPING? ring     Q  poll every accepted ring; work?
//!                                           clear SLEEPING and serve it
//! ```
//!
//! An awake worker finds the push by looking at the rings itself: every
//! lane's ring on every pass of its loop (but the pass right after an idle
//! spin's look found work, which uses that look) and on every spin while it
//! idles
//! (`worker/mod.rs`), a load of the sequence word of each ring's next cell
//! (`sync/ring.rs`), which stays a cache hit while the ring does not
//! change. So while the worker is awake a request costs its caller no
//! locked instruction, and the caller of a single call is served as soon as
//! the worker looks.
//!
//! Why no push is stranded, fence form (F and H SeqCst fences): if F comes
//! before H in the fences' total order, Q (after H) sees P; if H comes
//! first, L (after F) sees S or a later value. Seeing SLEEPING, the caller
//! rings and wakes the worker. Seeing a later value without it, the worker
//! has cleared SLEEPING since (it was woken, or it found work): it is awake,
//! and its next attempt to sleep, S' H' Q', has H' after F (else L would
//! have read S' or later), so Q' sees P. Membarrier form (F a compiler
//! fence, H `membarrier`): the barrier cuts the caller's instructions at a
//! point B. P before B: P is visible when `membarrier` returns, so Q sees
//! it. P after B: L is after B too (the compiler fence keeps it after P,
//! and B is a full barrier), and S was visible before `membarrier` began,
//! so L sees S or later, as above. loom checks the fence form; the
//! membarrier form is argued here, as for the shutdown gate
//! (`src/gate/README.md`), and the tests exercise it on every pool built on
//! Linux (`tests/faults.rs` among them: a batch iterator that blocks until
//! its earlier requests are processed).
//!
//! If `membarrier` fails in H, the worker does not park: it cancels its
//! sleep and backs off (sleeping in steps of up to a millisecond), polling.
//! In the fence form of a shipped build (no membarrier) a SeqCst fence per
//! push would cost as much as the ring, so every push rings.
//!
//! Model-checked by `loom-tests/tests/doorbell.rs`, on its own and through
//! the worker loop, and (lazy announcements) by `loom-tests/tests/lazy.rs`.

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

/// The indices of the set bits of `bits`, lowest first.
#[inline]
pub(crate) fn set_bits(mut bits: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (bits != 0).then(|| {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            b
        })
    })
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
        // A load first: an empty word is left unwritten, so the line stays
        // shared with callers that read it (lazy announcements) instead of
        // bouncing on every pass. Relaxed: a zero carries nothing to acquire.
        // Not under loom: the shortcut is the swap's own answer without its
        // (unobserved) write of zero, and one more scheduling point per pass
        // multiplies every model's executions.
        #[cfg(not(shardpool_loom))]
        if self.word.load(Ordering::Relaxed) == 0 {
            return 0;
        }
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

    /// Worker: takes back an announced sleep (it found work in its poll).
    /// A caller may have cleared SLEEPING first and will unpark us; that
    /// token only makes a later park return early, which every park loop
    /// tolerates.
    pub(crate) fn cancel_sleep(&self) {
        // Relaxed: the bits that matter are re-read by `take`, which acquires.
        self.word.fetch_and(!SLEEPING, Ordering::Relaxed);
    }

    /// Worker: parks until a caller has cleared SLEEPING.
    pub(crate) fn park_until_rung(&self) {
        // Acquire: pairs with the waker's clearing RMW (which follows its
        // Release `fetch_or` in the word's modification order).
        while self.word.load(Ordering::Acquire) & SLEEPING != 0 {
            thread::park();
        }
    }

    /// Worker: parks until a caller has cleared SLEEPING, or until
    /// `deadline`, when it takes its sleep back itself (as after a poll
    /// that found work: a caller that cleared SLEEPING meanwhile leaves an
    /// unpark token, which only makes a later park return early). Returns
    /// whether it was rung. Not under loom, which cannot model a timed park.
    #[cfg(not(shardpool_loom))]
    pub(crate) fn park_until_rung_or(&self, deadline: std::time::Instant) -> bool {
        loop {
            // Acquire: as in `park_until_rung`.
            if self.word.load(Ordering::Acquire) & SLEEPING == 0 {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                self.cancel_sleep();
                return false;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Whether the worker is parked (or just about to park). Also the
    /// caller's load L of a lazy announcement (module docs).
    #[inline]
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
