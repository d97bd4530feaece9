//! How long replies have taken: a caller that keeps waiting past its spin
//! for a worker's replies stops spinning for them.
//!
//! A caller spins `caller_spin` (default 50 µs) for a reply before it
//! parks. When a worker's replies take longer than that (its handlers do
//! real work, or it is busy with other callers), the whole spin is spent
//! for nothing on every call: a caller waiting 200 µs per reply burns a
//! quarter of a core, and then pays the wake-up all the same. So each
//! caller handle counts, per worker, the waits in a row that outlasted the
//! spin. After [`LONG_AFTER`] of them it spins only a probe (a sixteenth of
//! the budget) for that worker's replies, then parks; with a spin that
//! short it also sleeps on the reply cell (`reply.rs`, "Two ways to
//! sleep"), which costs it no heavy barrier per park.
//!
//! The probe is how the caller notices that replies got fast again: a
//! reply within the probe, or a parked wait that ended within the full
//! budget (a spin would have caught it), resets the count, and the next
//! wait spins the whole budget. A change back to fast replies therefore
//! costs one wake-up. The pacing only ever shortens the spin that
//! `Shared::caller_spin` chose; it never lengthens it.
//!
//! Nothing is learned under loom, which has no clock (the spin there is a
//! single yield anyway).

use crate::sync::Spin;
use std::cell::Cell;
use std::time::Duration;

/// Waits in a row that outlasted the full spin before the caller spins only
/// a probe for that worker.
pub(super) const LONG_AFTER: u8 = 4;

/// The probe's share of the configured spin: a sixteenth.
const PROBE_SHIFT: u32 = 4;

/// How one wait for a reply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(shardpool_loom, allow(dead_code))]
pub(super) enum Waited {
    /// The reply came while the caller spun.
    Spun,
    /// The spin ran out; the reply was taken this long after the spin
    /// began.
    Past(Duration),
}

/// Per worker, the waits in a row that outlasted the full spin (saturating
/// at `LONG_AFTER`).
pub(super) struct Pace {
    long: Box<[Cell<u8>]>,
}

impl Pace {
    pub(super) fn new(workers: usize) -> Self {
        Pace { long: (0..workers).map(|_| Cell::new(0)).collect() }
    }

    /// Whether the caller now spins only a probe for worker `w`'s replies
    /// (for any worker's, `None`: a batch, only if for every worker's).
    pub(super) fn paced(&self, w: Option<usize>) -> bool {
        match w {
            Some(w) => self.long[w].get() >= LONG_AFTER,
            None => self.long.iter().all(|l| l.get() >= LONG_AFTER),
        }
    }

    /// `spin`, shortened to the probe if the replies awaited have been
    /// outlasting `budget` (the configured spin).
    #[inline]
    pub(super) fn apply(&self, w: Option<usize>, mut spin: Spin, budget: Duration) -> Spin {
        if self.paced(w) {
            spin.budget = spin.budget.min(budget / (1 << PROBE_SHIFT));
        }
        spin
    }

    /// Learns how a wait for worker `w`'s reply ended, against `budget`
    /// (the configured spin).
    #[inline]
    #[cfg_attr(shardpool_loom, allow(dead_code))]
    pub(super) fn record(&self, w: usize, waited: Waited, budget: Duration) {
        let long = &self.long[w];
        match waited {
            // The common case, one load: nothing to reset.
            Waited::Spun if long.get() == 0 => {}
            Waited::Past(d) if d >= budget => long.set(long.get().saturating_add(1).min(LONG_AFTER)),
            // A reply within the spin, or one a full spin would have caught.
            _ => long.set(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_micros(50);
    const FULL: Spin = Spin::alone(BUDGET);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn waits_past_the_spin_shorten_it_to_a_probe_after_enough_in_a_row() {
        let pace = Pace::new(2);
        for _ in 0..LONG_AFTER - 1 {
            pace.record(0, Waited::Past(us(200)), BUDGET);
            assert_eq!(pace.apply(Some(0), FULL, BUDGET), FULL, "not yet");
        }
        pace.record(0, Waited::Past(us(200)), BUDGET);
        let probe = pace.apply(Some(0), FULL, BUDGET);
        assert_eq!(probe.budget, BUDGET / 16);
        assert_eq!(probe.yield_every, FULL.yield_every, "only the budget changes");
        // Per worker: worker 1's replies were never waited for.
        assert_eq!(pace.apply(Some(1), FULL, BUDGET), FULL);
        // A batch (any worker) spins fully until every worker is paced.
        assert_eq!(pace.apply(None, FULL, BUDGET), FULL);
        for _ in 0..LONG_AFTER {
            pace.record(1, Waited::Past(us(200)), BUDGET);
        }
        assert_eq!(pace.apply(None, FULL, BUDGET).budget, BUDGET / 16);
    }

    #[test]
    fn a_reply_a_full_spin_would_catch_restores_the_spin() {
        for fast in [Waited::Spun, Waited::Past(us(30))] {
            let pace = Pace::new(1);
            for _ in 0..LONG_AFTER {
                pace.record(0, Waited::Past(us(200)), BUDGET);
            }
            assert!(pace.paced(Some(0)));
            pace.record(0, fast, BUDGET);
            assert_eq!(pace.apply(Some(0), FULL, BUDGET), FULL, "{fast:?}");
        }
    }

    #[test]
    fn one_fast_reply_in_a_run_of_slow_ones_starts_the_count_again() {
        let pace = Pace::new(1);
        for _ in 0..LONG_AFTER - 1 {
            pace.record(0, Waited::Past(us(200)), BUDGET);
        }
        pace.record(0, Waited::Spun, BUDGET);
        for _ in 0..LONG_AFTER - 1 {
            pace.record(0, Waited::Past(us(200)), BUDGET);
        }
        assert!(!pace.paced(Some(0)));
        pace.record(0, Waited::Past(us(200)), BUDGET);
        assert!(pace.paced(Some(0)));
    }

    #[test]
    fn the_probe_never_lengthens_a_shorter_spin() {
        let pace = Pace::new(1);
        for _ in 0..LONG_AFTER {
            pace.record(0, Waited::Past(us(200)), BUDGET);
        }
        // Crowded callers already spin 5 µs by yielding; the probe (3.125
        // µs) shortens that, and keeps its yields.
        let crowded = Spin::sharing(us(5));
        assert_eq!(pace.apply(Some(0), crowded, BUDGET), Spin::sharing(BUDGET / 16));
        assert_eq!(pace.apply(Some(0), Spin::NONE, BUDGET), Spin::NONE);
    }
}
