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
/// When a spin first read the clock (`Spinner::started`); nothing under
/// loom, which has no clock.
#[cfg(not(shardpool_loom))]
pub(crate) type Started = Option<Instant>;
#[cfg(shardpool_loom)]
pub(crate) type Started = ();

/// How to spin: for how long, and how often to give the core away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spin {
    /// Spin at most this long.
    pub(crate) budget: Duration,
    /// Call `yield_now` every this many iterations (a power of two). 1 when
    /// the thread shares its core with the one it waits for: every look is
    /// then preceded by letting that thread run.
    pub(crate) yield_every: u32,
}

impl Spin {
    /// Spin up to `budget`, yielding now and then (every ~5 µs), for a
    /// thread that probably has its core to itself.
    pub(crate) const fn alone(budget: Duration) -> Self {
        Self { budget, yield_every: 512 }
    }

    /// Spin up to `budget` by yielding: the thread shares its core with the
    /// one that must act, so the core is handed over on every look.
    pub(crate) const fn sharing(budget: Duration) -> Self {
        Self { budget, yield_every: 1 }
    }

    /// Do not spin at all.
    pub(crate) const NONE: Self = Self { budget: Duration::ZERO, yield_every: 1 };
}

/// A spin bounded by a time budget: `while spinner.spin() { poll }`.
pub(crate) struct Spinner {
    #[cfg(not(shardpool_loom))]
    start: Option<Instant>,
    budget: Duration,
    #[cfg(not(shardpool_loom))]
    yield_mask: u32,
    n: u32,
}

impl Spinner {
    #[inline]
    pub(crate) fn new(spin: Spin) -> Self {
        debug_assert!(spin.yield_every.is_power_of_two());
        Self {
            #[cfg(not(shardpool_loom))]
            start: None,
            budget: spin.budget,
            #[cfg(not(shardpool_loom))]
            yield_mask: spin.yield_every.max(1) - 1,
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
        // NB: a spin that yields every time (`Spin::sharing`, or a worker
        // whose core a caller shares) still reads the clock every 32 spins,
        // and may run past its budget by as many yields, each of which can
        // hand the core over for a time slice. Reading it after every yield
        // (`|| self.yield_mask == 0` added to the test below) cost the
        // many_callers bench (2 workers, 2 cores) 99 -> 125 µs per 64 round
        // trips with 2 callers and 75 -> 95 µs with 8 (`perf/ab_medians.sh`
        // 'many_callers/shardpool/(1|2|8)$' 4, builds alternated): crowded
        // threads then park, and pay a wake-up, more often.
        if self.n % CLOCK_EVERY == 0 {
            let start = *self.start.get_or_insert_with(Instant::now);
            if start.elapsed() >= self.budget {
                return false;
            }
        }
        if self.n & self.yield_mask == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        true
    }

    /// When the spin first read the clock, if it has (it does so every
    /// `CLOCK_EVERY` spins, not at the start).
    #[cfg(not(shardpool_loom))]
    #[inline]
    pub(crate) fn started(&self) -> Started {
        self.start
    }

    /// Nothing under loom, which has no clock.
    #[cfg(shardpool_loom)]
    pub(crate) fn started(&self) -> Started {}

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
