//! Bounded spinning that gives way when threads outnumber cores.
//!
//! Two threads spinning on one core cost milliseconds per hand-off (each burns
//! its whole time slice), so every spin here is bounded by a time budget and
//! yields the core every few hundred iterations. Under loom a spin is a single
//! `yield_now`, which lets the model checker schedule the other side.

use std::time::Duration;
#[cfg(not(shardpool_loom))]
use std::time::Instant;

/// Spin iterations between two looks at the clock.
#[cfg(not(shardpool_loom))]
const CLOCK_EVERY: u32 = 32;
/// Spin iterations between two `yield_now` calls (lets a descheduled peer run
/// on this core when the machine is oversubscribed).
#[cfg(not(shardpool_loom))]
const YIELD_EVERY: u32 = 512;

/// A spin bounded by a time budget: `while spinner.spin() { poll }`.
pub(crate) struct Spinner {
    #[cfg(not(shardpool_loom))]
    start: Option<Instant>,
    budget: Duration,
    n: u32,
}

impl Spinner {
    pub(crate) fn new(budget: Duration) -> Self {
        Self {
            #[cfg(not(shardpool_loom))]
            start: None,
            budget,
            n: 0,
        }
    }

    /// Waits a moment and returns `true` while the budget lasts.
    #[cfg(not(shardpool_loom))]
    #[inline]
    pub(crate) fn spin(&mut self) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        self.n = self.n.wrapping_add(1);
        if self.n % CLOCK_EVERY == 0 {
            let start = *self.start.get_or_insert_with(Instant::now);
            if start.elapsed() >= self.budget {
                return false;
            }
            if self.n % YIELD_EVERY == 0 {
                std::thread::yield_now();
                return true;
            }
        }
        std::hint::spin_loop();
        true
    }

    /// Under loom a spin is one `yield_now`, and the budget is one spin.
    #[cfg(shardpool_loom)]
    pub(crate) fn spin(&mut self) -> bool {
        if self.budget.is_zero() || self.n > 0 {
            return false;
        }
        self.n += 1;
        loom::thread::yield_now();
        true
    }
}

/// Waiting for something nobody will wake us for (room in a full ring): spin a
/// little, then yield, then sleep in growing steps up to a millisecond.
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { step: 0 }
    }

    pub(crate) fn wait(&mut self) {
        #[cfg(not(shardpool_loom))]
        {
            if self.step < 6 {
                for _ in 0..(1u32 << self.step) {
                    std::hint::spin_loop();
                }
            } else if self.step < 12 {
                std::thread::yield_now();
            } else {
                let micros = 10u64 << (self.step - 12).min(7);
                std::thread::sleep(Duration::from_micros(micros.min(1000)));
            }
        }
        #[cfg(shardpool_loom)]
        loom::thread::yield_now();
        self.step = self.step.saturating_add(1);
    }
}
