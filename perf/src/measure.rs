//! Measuring: the interleaved floor, latency histograms, and rates.

use crate::common::cache_line::PingPong;
use crate::common::place;
use hdrhistogram::Histogram;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the run may take: 2 by default (about 1.5 minutes), 10 with
/// `--long`.
#[derive(Clone, Copy)]
pub struct Budget {
    pub scale: f64,
}

impl Budget {
    /// `base` scaled by the budget.
    pub fn time(self, base: Duration) -> Duration {
        base.mul_f64(self.scale)
    }

    /// `base` scaled by the budget.
    pub fn count(self, base: u64) -> u64 {
        (base as f64 * self.scale).round().max(1.0) as u64
    }
}

/// CPU time counters, to tell how much of the machine *other* processes used
/// while we measured (the floor shows where the host put our vCPUs; this
/// shows who else ran on them).
#[derive(Clone, Copy)]
pub struct CpuSample {
    busy: u64,
    total: u64,
    own: u64,
}

impl CpuSample {
    /// Clock ticks from `/proc/stat` (all CPUs) and `/proc/self/stat`.
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        let own = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
                // After the name come the state (field 3) and the rest:
                // utime and stime are fields 14 and 15.
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0);
        CpuSample { busy: total.saturating_sub(idle), total, own }
    }

    /// Percent of the whole machine that other processes (and the kernel
    /// on their behalf) kept busy since `self`.
    pub fn others_since(self) -> f64 {
        let now = CpuSample::now();
        let total = now.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        let others = now.busy.saturating_sub(self.busy).saturating_sub(now.own.saturating_sub(self.own));
        100.0 * others as f64 / total as f64
    }
}

/// The floor (a cache-line round trip between the caller's core and worker
/// 0's core), measured before and after each scenario.
///
/// This VM's host moves our two vCPUs between placements every few seconds
/// to minutes: the floor is usually about 65 ns, for stretches about
/// 320 ns, and for a few seconds now and then about 30 ns. A scenario whose
/// floor stood away from the run's usual one ([`Floors::off`]) before or
/// after it ran is measured again once the floor is back, within
/// [`RETRY_BUDGET`] per run, so that the targets can be judged.
pub struct Floors {
    pub samples: Vec<(String, f64)>,
    /// Time left for measuring scenarios again.
    retry_left: Duration,
    /// Scenarios measured again, and the time that took.
    pub retried: Vec<(String, Duration)>,
}

/// The most time a run spends measuring scenarios again, and waiting for
/// the floor to come back down before it does.
pub const RETRY_BUDGET: Duration = Duration::from_secs(120);
/// The most times one scenario is measured again.
const MAX_RETRIES: u32 = 2;
/// The longest wait for the usual floor before one scenario is measured
/// again: a placement that lasts longer is left to the scenarios after.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// The run's usual floor (`f64` bits; 0 until [`Floors::settle`]).
static USUAL: AtomicU64 = AtomicU64::new(0);
/// The label's end for floors measured while waiting for the usual one.
const WAITING: &str = "(waiting)";

/// Whether a floor of `ns` stands away from `usual`: half again as high or
/// more, or two thirds as high or less.
fn away(ns: f64, usual: f64) -> bool {
    ns >= 1.5 * usual || ns * 1.5 <= usual
}

impl Default for Floors {
    fn default() -> Self {
        Floors { samples: Vec::new(), retry_left: RETRY_BUDGET, retried: Vec::new() }
    }
}

impl Floors {
    /// Measures the floor now (median of 7 short runs, ns per round trip)
    /// and records it under `label`.
    pub fn measure(&mut self, label: &str) -> f64 {
        let ns = floor_now();
        self.samples.push((label.to_string(), ns));
        ns
    }

    /// Runs `f` between two floor measurements; returns its result and the
    /// floor before and after. If the floor before or after stood away
    /// from the run's usual one ([`off`](Self::off)), waits for it to come
    /// back and runs `f` again, at most [`MAX_RETRIES`] times and while the
    /// run's retry budget lasts; the last run's result is kept (flagged, if
    /// the floor did not come back).
    pub fn around<R>(&mut self, label: &str, mut f: impl FnMut() -> R) -> (R, Floor) {
        let mut retries = 0;
        loop {
            let started = Instant::now();
            let before = self.measure(&format!("{label} (before)"));
            let cpu = CpuSample::now();
            let r = f();
            let others = cpu.others_since();
            let after = self.measure(&format!("{label} (after)"));
            let floor = Floor { before, after, others };
            let off = self.off(floor.before) || self.off(floor.after);
            if !off || retries == MAX_RETRIES || self.retry_left.is_zero() {
                return (r, floor);
            }
            retries += 1;
            eprintln!(
                "  {label}: the floor stood at {} (usual {:.0} ns); measuring again once it is back",
                floor.show(),
                self.usual()
            );
            self.retry_left = self.retry_left.saturating_sub(started.elapsed());
            let back = self.wait_for_usual(label);
            self.retried.push((label.to_string(), started.elapsed()));
            if !back {
                return (r, floor);
            }
        }
    }

    /// The run's usual floor so far: the median of its measurements
    /// around scenarios (not of those taken while waiting for it to come
    /// back, which would pull it towards the placement waited out).
    pub fn usual(&self) -> f64 {
        median(&mut self.around_scenarios())
    }

    /// Fixes the run's usual floor, by which [`Floor::show`] flags the
    /// floors it shows: called once every scenario has run.
    pub fn settle(&self) {
        USUAL.store(self.usual().to_bits(), Ordering::Relaxed);
    }

    /// The floors measured before and after scenarios, in order.
    pub fn around_scenarios(&self) -> Vec<f64> {
        self.samples.iter().filter(|(label, _)| !label.ends_with(WAITING)).map(|(_, v)| *v).collect()
    }

    /// Whether `ns` is away from the run's usual floor: half again as high
    /// or more, or two thirds as high or less. Rows measured at such a
    /// floor do not compare with rows measured at the usual one.
    pub fn off(&self, ns: f64) -> bool {
        away(ns, self.usual())
    }

    /// Measures the floor every half second until it is the usual one
    /// again (`true`), for at most [`MAX_WAIT`] and what is left of the
    /// retry budget (`false`: it did not come back).
    fn wait_for_usual(&mut self, label: &str) -> bool {
        let started = Instant::now();
        let back = loop {
            let ns = self.measure(&format!("{label} {WAITING}"));
            if !self.off(ns) {
                break true;
            }
            if started.elapsed() >= self.retry_left.min(MAX_WAIT) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        self.retry_left = self.retry_left.saturating_sub(started.elapsed());
        back
    }
}

/// The floor on both sides of a measurement.
#[derive(Clone, Copy, Debug, Default)]
pub struct Floor {
    pub before: f64,
    pub after: f64,
    /// Percent of the machine other processes used meanwhile.
    pub others: f64,
}

impl Floor {
    /// The mean of the two.
    pub fn mean(self) -> f64 {
        (self.before + self.after) / 2.0
    }

    /// `before → after`, flagged when they differ by half or more (the VM's
    /// vCPUs moved during the measurement) or either stood away from the
    /// run's usual floor (once [`Floors::settle`] has fixed it), and the
    /// share of the machine other processes used, flagged from 5%.
    pub fn show(self) -> String {
        let usual = f64::from_bits(USUAL.load(Ordering::Relaxed));
        let off = |ns: f64| usual > 0.0 && away(ns, usual);
        let moved = self.before.max(self.after) >= 1.5 * self.before.min(self.after);
        let flag = if moved || off(self.before) || off(self.after) { " ⚠" } else { "" };
        let others =
            if self.others >= 5.0 { format!("; others {:.0}% ⚠", self.others) } else { String::new() };
        format!("{:.0} → {:.0} ns{flag}{others}", self.before, self.after)
    }
}

fn floor_now() -> f64 {
    place::on_driver(Some(place::caller_core()), || {
        let (_partner, client) = PingPong::start(place::worker_core(0));
        for _ in 0..2_000 {
            client.bounce();
        }
        let mut runs: Vec<f64> = (0..7)
            .map(|_| {
                const N: u32 = 3_000;
                let t = Instant::now();
                for _ in 0..N {
                    client.bounce();
                }
                t.elapsed().as_nanos() as f64 / f64::from(N)
            })
            .collect();
        median(&mut runs)
    })
}

/// The median of `xs` (sorted in place); 0 when empty.
pub fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A latency histogram in nanoseconds (1 ns .. 100 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// The summary the report prints for one latency distribution.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        Latency {
            samples: h.len(),
            p50: h.value_at_quantile(0.50) as f64,
            p90: h.value_at_quantile(0.90) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            p999: h.value_at_quantile(0.999) as f64,
            max: h.max() as f64,
        }
    }

    /// The five figures in report order.
    pub fn points(&self) -> [f64; 5] {
        [self.p50, self.p90, self.p99, self.p999, self.max]
    }
}

/// Times each call of `op` on its own: `n` calls, or as many as fit in
/// `limit`, after `n / 10` untimed ones.
pub fn latencies(n: u64, limit: Duration, mut op: impl FnMut(u64) -> u64) -> Latency {
    for i in 0..n / 10 {
        black_box(op(i));
    }
    let mut h = histogram();
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        black_box(op(i));
        h.saturating_record(t.elapsed().as_nanos() as u64);
        if i % 1024 == 0 && start.elapsed() > limit {
            break;
        }
    }
    Latency::of(&h)
}

/// The mean time per call of `op`, timing calls in runs (no per-call
/// timer): `n` calls in 25 runs, and the median run. A run that the OS or
/// the host interrupted for milliseconds is an outlier, not a shift.
pub fn mean_ns(n: u64, mut op: impl FnMut(u64) -> u64) -> f64 {
    const RUNS: u64 = 25;
    let per = (n / RUNS).max(1);
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|r| {
            let t = Instant::now();
            for i in 0..per {
                black_box(op(r * per + i));
            }
            t.elapsed().as_nanos() as f64 / per as f64
        })
        .collect();
    median(&mut runs)
}

/// Each call of `op` after `gap` of idleness (the caller spins through the
/// gap, so only the subject's side has gone idle): `n` calls, or as many as
/// fit in `limit`.
pub fn latencies_after_gap(
    n: u64,
    gap: Duration,
    limit: Duration,
    mut op: impl FnMut(u64) -> u64,
) -> Latency {
    let mut h = histogram();
    black_box(op(0));
    let start = Instant::now();
    for i in 0..n {
        let until = Instant::now() + gap;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        black_box(op(i));
        h.saturating_record(t.elapsed().as_nanos() as u64);
        if start.elapsed() > limit {
            break;
        }
    }
    Latency::of(&h)
}

/// Nanoseconds per element of `f` (one call handles `elems` elements): the
/// median over rounds of at least 5 ms, for about `total` after a warm-up of
/// a tenth of that.
pub fn ns_per_elem(total: Duration, elems: u64, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    let mut calls_per_round = 0u64;
    while warm.elapsed() < total / 10 || calls_per_round == 0 {
        f();
        calls_per_round += 1;
    }
    // Calls per round so that a round takes about 5 ms.
    let per_call = warm.elapsed().as_secs_f64() / calls_per_round as f64;
    let calls = ((0.005 / per_call).ceil() as u64).max(1);
    let mut rounds = Vec::new();
    let start = Instant::now();
    while start.elapsed() < total || rounds.len() < 3 {
        let t = Instant::now();
        for _ in 0..calls {
            f();
        }
        rounds.push(t.elapsed().as_nanos() as f64 / (calls * elems) as f64);
    }
    median(&mut rounds)
}

/// Like [`ns_per_elem`], but each call of `f` comes after `gap` of sleep and
/// only the call is timed: the median of the calls made in about `total`
/// (gaps included), at least 3.
pub fn ns_per_elem_after_gap(total: Duration, gap: Duration, elems: u64, mut f: impl FnMut()) -> f64 {
    f();
    let mut calls = Vec::new();
    let start = Instant::now();
    while start.elapsed() < total || calls.len() < 3 {
        std::thread::sleep(gap);
        let t = Instant::now();
        f();
        calls.push(t.elapsed().as_nanos() as f64 / elems as f64);
    }
    median(&mut calls)
}

/// `1.23 µs`-style.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Elements per second from ns per element, `12.3 M/s`-style.
pub fn fmt_rate(ns_per_elem: f64) -> String {
    let per_s = 1e9 / ns_per_elem;
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0} /s")
    }
}

/// `2.10×`-style.
pub fn fmt_x(ratio: f64) -> String {
    if ratio >= 100.0 {
        format!("{ratio:.0}×")
    } else if ratio >= 10.0 {
        format!("{ratio:.1}×")
    } else {
        format!("{ratio:.2}×")
    }
}
