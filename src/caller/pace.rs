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
//! the budget) for that worker's replies, then parks. With a spin under
//! 20 µs (a `caller_spin` under 320 µs) the caller also chooses, at its next
//! call with nothing in flight, to sleep on the reply cells (`reply.rs`,
//! "Two ways to sleep"), which costs it no heavy barrier per park.
//!
//! How the caller notices that replies got fast again:
//! - a reply within the probe, or a parked wait that ended within the full
//!   budget (a spin would have caught it), resets the count, and the next
//!   wait spins the whole budget;
//! - but a parked wait's length includes the caller's own wake-up, which
//!   on a loaded machine may alone outlast the budget, so that fast replies
//!   missed by the probe would still look slow. So one paced wait in
//!   [`SAMPLE_EVERY`] spins the full budget: a reply caught there resets
//!   the count. That costs a paced caller a sixteenth of the budget per
//!   wait on average, as much again as the probe.
//!
//! A change back to fast replies therefore costs at most `SAMPLE_EVERY`
//! waits, each a wake-up. The pacing only ever shortens the spin that
//! `Shared::caller_spin` chose; it never lengthens it.
//!
//! Only waits that waited count: a reply already there (a batch's, filed
//! while the caller waited for an earlier one) says nothing of how long
//! replies take. Nothing is learned under loom, which has no clock (the
//! spin there is a single yield anyway), or with no spin to shorten.
//! The length of a wait runs from the spin's first look at the clock, a
//! few dozen spins in: a little short, which errs towards spinning.

use crate::sync::Spin;
use std::cell::Cell;
use std::time::Duration;

/// Waits in a row that outlasted the full spin before the caller spins only
/// a probe for that worker.
pub(super) const LONG_AFTER: u8 = 4;

/// The probe's share of the configured spin: a sixteenth.
const PROBE_SHIFT: u32 = 4;

/// A paced caller spins the full budget on one wait in this many.
pub(super) const SAMPLE_EVERY: u8 = 16;

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

/// Per worker, how its replies have been taking.
#[derive(Default)]
struct Worker {
    /// The waits in a row that outlasted the full spin (saturating at
    /// `LONG_AFTER`).
    long: Cell<u8>,
    /// Waits since the caller became paced, modulo `SAMPLE_EVERY`.
    paced_waits: Cell<u8>,
}

pub(super) struct Pace {
    workers: Box<[Worker]>,
    /// How many workers' `long` is above zero: while none, nothing is
    /// shortened or reset, at the cost of one load per wait.
    counting: Cell<usize>,
    /// The configured spin (`caller_spin`); nothing is learned if zero.
    budget: Duration,
}

impl Pace {
    pub(super) fn new(workers: usize, budget: Duration) -> Self {
        Pace { workers: (0..workers).map(|_| Worker::default()).collect(), counting: Cell::new(0), budget }
    }

    /// Whether waits teach anything: there is a spin to shorten.
    #[inline]
    #[cfg_attr(shardpool_loom, allow(dead_code))]
    pub(super) fn learns(&self) -> bool {
        !self.budget.is_zero()
    }

    /// Whether the caller now spins only a probe for worker `w`'s replies
    /// (for any worker's, `None`: a batch, only if for every worker's).
    #[cfg(test)]
    pub(super) fn paced(&self, w: Option<usize>) -> bool {
        let paced = |p: &Worker| p.long.get() >= LONG_AFTER;
        match w {
            Some(w) => paced(&self.workers[w]),
            None => self.workers.iter().all(paced),
        }
    }

    /// Whether the next wait for worker `w`'s replies (for any worker's,
    /// `None`) spins only the probe: paced, and not the sample.
    #[inline]
    fn probes(&self, w: Option<usize>) -> bool {
        let probes = |p: &Worker| p.long.get() >= LONG_AFTER && p.paced_waits.get() != SAMPLE_EVERY - 1;
        match w {
            Some(w) => probes(&self.workers[w]),
            None => self.workers.iter().all(probes),
        }
    }

    /// `spin`, shortened to the probe if the replies awaited have been
    /// outlasting the configured spin, except on the sample.
    #[inline]
    pub(super) fn apply(&self, w: Option<usize>, mut spin: Spin) -> Spin {
        if self.counting.get() != 0 && self.probes(w) {
            spin.budget = spin.budget.min(self.budget / (1 << PROBE_SHIFT));
        }
        spin
    }

    /// Learns how a wait for worker `w`'s reply ended.
    #[inline]
    #[cfg_attr(shardpool_loom, allow(dead_code))]
    pub(super) fn record(&self, w: usize, waited: Waited) {
        // The common case, one load: a reply within the spin, and nothing
        // counted to reset.
        if waited == Waited::Spun && self.counting.get() == 0 {
            return;
        }
        let Worker { long, paced_waits } = &self.workers[w];
        match waited {
            Waited::Past(d) if d >= self.budget => match long.get() {
                n if n >= LONG_AFTER => paced_waits.set((paced_waits.get() + 1) % SAMPLE_EVERY),
                n => {
                    if n == 0 {
                        self.counting.set(self.counting.get() + 1);
                    }
                    long.set(n + 1);
                }
            },
            // A reply within the spin, or one a full spin would have caught.
            _ => {
                if long.get() != 0 {
                    self.counting.set(self.counting.get() - 1);
                }
                long.set(0);
                paced_waits.set(0);
            }
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
        let pace = Pace::new(2, BUDGET);
        for _ in 0..LONG_AFTER - 1 {
            pace.record(0, Waited::Past(us(200)));
            assert_eq!(pace.apply(Some(0), FULL), FULL, "not yet");
        }
        pace.record(0, Waited::Past(us(200)));
        let probe = pace.apply(Some(0), FULL);
        assert_eq!(probe.budget, BUDGET / 16);
        assert_eq!(probe.yield_every, FULL.yield_every, "only the budget changes");
        // Per worker: worker 1's replies were never waited for.
        assert_eq!(pace.apply(Some(1), FULL), FULL);
        // A batch (any worker) spins fully until every worker is paced.
        assert_eq!(pace.apply(None, FULL), FULL);
        for _ in 0..LONG_AFTER {
            pace.record(1, Waited::Past(us(200)));
        }
        assert_eq!(pace.apply(None, FULL).budget, BUDGET / 16);
    }

    #[test]
    fn a_reply_a_full_spin_would_catch_restores_the_spin() {
        for fast in [Waited::Spun, Waited::Past(us(30))] {
            let pace = Pace::new(1, BUDGET);
            for _ in 0..LONG_AFTER {
                pace.record(0, Waited::Past(us(200)));
            }
            assert!(pace.paced(Some(0)));
            pace.record(0, fast);
            assert_eq!(pace.apply(Some(0), FULL), FULL, "{fast:?}");
        }
    }

    #[test]
    fn a_paced_caller_spins_fully_once_in_sample_every_waits() {
        let pace = Pace::new(1, BUDGET);
        for _ in 0..LONG_AFTER {
            pace.record(0, Waited::Past(us(200)));
        }
        // Waits that parked, and whose length (with the wake-up) looked
        // long: probes, then one full spin.
        for _ in 0..SAMPLE_EVERY - 1 {
            assert_eq!(pace.apply(Some(0), FULL).budget, BUDGET / 16);
            pace.record(0, Waited::Past(us(200)));
        }
        assert_eq!(pace.apply(Some(0), FULL), FULL, "the sample");
        assert!(pace.paced(Some(0)));
        // A reply caught by the sample's spin ends the pacing.
        pace.record(0, Waited::Spun);
        assert!(!pace.paced(Some(0)));
        assert_eq!(pace.apply(Some(0), FULL), FULL);
        // Or, still slow: probes again after the sample.
        for _ in 0..LONG_AFTER + SAMPLE_EVERY {
            pace.record(0, Waited::Past(us(200)));
        }
        assert_eq!(pace.apply(Some(0), FULL).budget, BUDGET / 16, "after a slow sample");
    }

    #[test]
    fn one_fast_reply_in_a_run_of_slow_ones_starts_the_count_again() {
        let pace = Pace::new(1, BUDGET);
        for _ in 0..LONG_AFTER - 1 {
            pace.record(0, Waited::Past(us(200)));
        }
        pace.record(0, Waited::Spun);
        for _ in 0..LONG_AFTER - 1 {
            pace.record(0, Waited::Past(us(200)));
        }
        assert!(!pace.paced(Some(0)));
        pace.record(0, Waited::Past(us(200)));
        assert!(pace.paced(Some(0)));
    }

    #[test]
    fn the_probe_never_lengthens_a_shorter_spin() {
        let pace = Pace::new(1, BUDGET);
        for _ in 0..LONG_AFTER {
            pace.record(0, Waited::Past(us(200)));
        }
        // Crowded callers already spin 5 µs by yielding; the probe (3.125
        // µs) shortens that, and keeps its yields.
        let crowded = Spin::sharing(us(5));
        assert_eq!(pace.apply(Some(0), crowded), Spin::sharing(BUDGET / 16));
        assert_eq!(pace.apply(Some(0), Spin::NONE), Spin::NONE);
    }
}
