//! What an idle worker does before its next request: the [`Idle`] policy,
//! and the gap predictor behind its adaptive default.
//!
//! A parked worker costs its next caller a futex wake-up (tens of
//! microseconds); a spinning one costs a core. The adaptive policy spends
//! the core only where it buys something: while requests keep arriving at
//! regular gaps, the worker parks through most of each gap and wakes itself
//! shortly before the next request is due, then spins for it. Once a
//! prediction misses, or the gaps grow past the cap, it parks until rung.

use std::time::Duration;

/// What an idle worker does once its [`worker_spin`] is over.
///
/// [`worker_spin`]: crate::ThreadPoolBuilder::worker_spin
///
/// ```
/// use shardpool::{Idle, ThreadPool};
/// use shardpool_samples::Randoms;
/// use std::time::Duration;
///
/// // Lowest latency at any gap, for a core per worker.
/// let poll = ThreadPool::<Randoms>::builder().workers(1).idle(Idle::Poll).build()?;
/// // Least CPU: park after the spin, always.
/// let park = ThreadPool::<Randoms>::builder().workers(1).idle(Idle::Park).build()?;
/// // The default, with a longer cap.
/// let adaptive = ThreadPool::<Randoms>::builder()
///     .workers(1)
///     .idle(Idle::Adaptive { cap: Duration::from_millis(50) })
///     .build()?;
/// # drop((poll, park, adaptive));
/// # Ok::<(), shardpool::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Idle {
    /// Park until a caller rings. An idle pool costs nothing; a request
    /// that finds its worker parked pays for waking it.
    Park,
    /// The default: park, but learn the gaps between requests. While they
    /// are regular and at most `cap`, wake shortly before the next request
    /// is due and spin for it, so that it finds the worker awake.
    ///
    /// The CPU this costs, per gap `g` and worker, on top of `worker_spin`:
    /// a spin of `2 * lead` around the predicted arrival, where the lead is
    /// `g / 16` or one and a half times how late the OS wakes the worker
    /// from a timed park, plus 10 µs, whichever is longer, but never more
    /// than `g / 8` (on Linux the worker asks for a 1 µs timer slack, so
    /// that the kernel's default 50 µs of slack is not added to every timed
    /// wake-up). That is an eighth
    /// of a core for gaps from about 1 ms up to the cap, and never more than
    /// a quarter. Gaps under `worker_spin + 250 µs` are spun through whole.
    /// Gaps longer than `cap`, or irregular ones, cost nothing: the worker
    /// parks until rung. After the last request it parks for good within
    /// one gap.
    Adaptive {
        /// Longest gap worth anticipating (default 10 ms).
        cap: Duration,
    },
    /// Never park: poll the rings for as long as the pool lives. The lowest
    /// latency at any gap, for a full core per worker, busy or not (the
    /// spin yields the core to other threads now and then).
    Poll,
}

impl Idle {
    /// The default cap of [`Idle::Adaptive`].
    pub const DEFAULT_CAP: Duration = Duration::from_millis(10);
}

impl Default for Idle {
    fn default() -> Self {
        Idle::Adaptive { cap: Self::DEFAULT_CAP }
    }
}

/// Asks the OS to end this thread's timed parks on time: on Linux a timer
/// slack of 1 µs instead of the default 50 µs, which the kernel may add to
/// every timed wake-up (and the lead would then have to cover). Elsewhere,
/// nothing. Best effort: a refusal only makes the leads longer.
pub(crate) fn tighten_timer_slack() {
    #[cfg(all(target_os = "linux", not(shardpool_loom)))]
    // SAFETY: PR_SET_TIMERSLACK reads one unsigned long (nanoseconds) and
    // changes only the calling thread's timer slack; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
    }
}

/// What is added to the expected lateness of a timed wake-up to make the
/// lead.
const LEAD_MARGIN: Duration = Duration::from_micros(10);
/// The lateness assumed before any was seen.
const FIRST_LATENESS: Duration = Duration::from_micros(60);
/// A lateness sample counts for at most this much (one wake-up delayed by
/// a busy core must not stretch every later lead).
const MAX_LATENESS: Duration = Duration::from_millis(1);
/// Gaps up to `worker_spin` plus this are spun through rather than parked
/// through: parking costs a sleep announcement (and, with lazy
/// announcements, a `membarrier`), not worth it for a shorter rest.
const SPIN_THROUGH: Duration = Duration::from_micros(250);

/// What to do after the initial spin, in time since the worker went idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Park until rung.
    Park,
    /// Keep spinning until this long after going idle, then park until rung.
    SpinUntil(Duration),
    /// Park until `wake` (or a ring), then spin until `end`, then park until
    /// rung.
    WakeAt { wake: Duration, end: Duration },
}

/// The gaps between a worker going idle and its next request.
#[derive(Debug)]
pub(crate) struct Gaps {
    /// Moving average (weight 1/4 for the newest), nanoseconds; 0: none yet.
    average: u64,
    /// The last gap, nanoseconds.
    last: u64,
    /// Moving average of how late timed parks returned, nanoseconds,
    /// starting from `FIRST_LATENESS`.
    lateness: u64,
}

impl Default for Gaps {
    fn default() -> Self {
        Gaps { average: 0, last: 0, lateness: nanos(FIRST_LATENESS) }
    }
}

/// `average + (sample - average) / 4`, in nanoseconds; the first sample
/// when there is no average yet.
fn blend(average: u64, sample: u64) -> u64 {
    match average {
        0 => sample,
        a if sample >= a => a + (sample - a) / 4,
        a => a - (a - sample) / 4,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Gaps {
    /// Learns one gap. (Never under loom, which has no clock: nothing is
    /// learned there, and the plan is always to park.)
    #[cfg_attr(shardpool_loom, allow(dead_code))]
    pub(crate) fn record(&mut self, gap: Duration) {
        let gap = nanos(gap);
        self.average = blend(self.average, gap);
        self.last = gap;
    }

    /// Learns how late a timed park returned after its deadline.
    #[cfg_attr(shardpool_loom, allow(dead_code))]
    pub(crate) fn record_lateness(&mut self, late: Duration) {
        // At least a nanosecond (`blend` reads 0 as "none yet").
        self.lateness = blend(self.lateness, nanos(late.min(MAX_LATENESS)).max(1));
    }

    /// How far ahead of a predicted request to wake.
    fn lead(&self, average: Duration) -> Duration {
        let lateness = Duration::from_nanos(self.lateness);
        (average / 16).max(lateness * 3 / 2 + LEAD_MARGIN).min(average / 8)
    }

    /// What to do after `spin` of spinning, under `idle`.
    pub(crate) fn plan(&self, idle: Idle, spin: Duration) -> Plan {
        let Idle::Adaptive { cap } = idle else {
            return Plan::Park;
        };
        let (average, last) = (Duration::from_nanos(self.average), Duration::from_nanos(self.last));
        // Regular: the last gap within half again of the average, either way.
        let regular = self.average > 0 && last * 2 <= average * 3 && average * 2 <= last * 3;
        if !regular || average > cap || average <= spin {
            // Irregular, too long, or already covered by the spin.
            return Plan::Park;
        }
        let lead = self.lead(average);
        // Decided by the gap alone: a lateness gone wrong (a core taken
        // from the worker for a while) must not turn every later gap into a
        // spin through the whole of it.
        if average <= spin + SPIN_THROUGH {
            Plan::SpinUntil(average + lead)
        } else {
            Plan::WakeAt { wake: average - lead, end: average + lead }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPIN: Duration = Duration::from_micros(50);
    const ADAPT: Idle = Idle::Adaptive { cap: Idle::DEFAULT_CAP };

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn learned(gaps: &[u64]) -> Gaps {
        let mut g = Gaps::default();
        for &n in gaps {
            g.record(us(n));
        }
        g
    }

    #[test]
    fn nothing_learned_parks() {
        assert_eq!(Gaps::default().plan(ADAPT, SPIN), Plan::Park);
    }

    #[test]
    fn regular_millisecond_gaps_wake_ahead_of_the_next() {
        // Before any timed wake-up: a lead of 1.5 * 60 + 10 = 100 µs.
        let mut g = learned(&[1000; 4]);
        assert_eq!(g.plan(ADAPT, SPIN), Plan::WakeAt { wake: us(900), end: us(1100) });
        // Timed parks that return 20 µs late: a lead of 40 µs.
        for _ in 0..40 {
            g.record_lateness(us(20));
        }
        // At 1 ms a sixteenth of the gap is longer still: 62.5 µs.
        let ns = Duration::from_nanos;
        assert_eq!(g.plan(ADAPT, SPIN), Plan::WakeAt { wake: ns(937_500), end: ns(1_062_500) });
        // At 500 µs the lateness sets it: 1.5 * 20 + 10 = 40 µs.
        let mut half = learned(&[500; 4]);
        for _ in 0..40 {
            half.record_lateness(us(20));
        }
        // (The average lateness converges to within a few ns of 20 µs.)
        let Plan::WakeAt { wake, end } = half.plan(ADAPT, SPIN) else { panic!("not a timed wake") };
        assert!(wake.abs_diff(us(460)) < us(1) && end.abs_diff(us(540)) < us(1), "{wake:?} {end:?}");
        // Long gaps: a sixteenth of the gap.
        assert_eq!(learned(&[8000; 4]).plan(ADAPT, SPIN), Plan::WakeAt { wake: us(7500), end: us(8500) });
    }

    #[test]
    fn short_gaps_are_spun_through() {
        // 300 µs, at most spin + 250 µs: spun through, to the gap plus a lead
        // of an eighth of it.
        let ns = Duration::from_nanos;
        assert_eq!(learned(&[300; 4]).plan(ADAPT, SPIN), Plan::SpinUntil(ns(337_500)));
        // Covered by the initial spin already.
        assert_eq!(learned(&[30; 4]).plan(ADAPT, SPIN), Plan::Park);
    }

    #[test]
    fn a_spell_of_late_wake_ups_neither_spins_whole_gaps_nor_stretches_the_lead() {
        let mut g = learned(&[5000; 4]);
        for _ in 0..40 {
            g.record_lateness(Duration::from_millis(50));
        }
        // The lead is capped at an eighth of the gap, and the plan is still
        // to park through most of it.
        assert_eq!(g.plan(ADAPT, SPIN), Plan::WakeAt { wake: us(4375), end: us(5625) });
        // And late samples are clamped: a few good ones bring it back.
        for _ in 0..40 {
            g.record_lateness(us(20));
        }
        let ns = Duration::from_nanos;
        assert_eq!(g.plan(ADAPT, SPIN), Plan::WakeAt { wake: ns(4_687_500), end: ns(5_312_500) });
    }

    #[test]
    fn long_or_irregular_gaps_park() {
        assert_eq!(learned(&[20_000; 4]).plan(ADAPT, SPIN), Plan::Park, "past the cap");
        assert_eq!(learned(&[1000, 1000, 1000, 5000]).plan(ADAPT, SPIN), Plan::Park, "a gap out of line");
        let wide = Idle::Adaptive { cap: Duration::from_millis(50) };
        assert!(matches!(learned(&[20_000; 4]).plan(wide, SPIN), Plan::WakeAt { .. }), "a wider cap");
    }

    #[test]
    fn park_and_poll_ignore_the_gaps() {
        let g = learned(&[1000; 4]);
        assert_eq!(g.plan(Idle::Park, SPIN), Plan::Park);
        assert_eq!(g.plan(Idle::Poll, SPIN), Plan::Park, "Poll never gets this far");
    }

    #[test]
    fn the_average_follows_a_change_of_pace() {
        let mut g = learned(&[1000; 4]);
        for _ in 0..12 {
            g.record(us(2000));
        }
        assert!(matches!(g.plan(ADAPT, SPIN), Plan::WakeAt { wake, .. } if wake > us(1800)));
    }
}
