//! Calibrated CPU work: `W` nanoseconds of computation that the compiler
//! cannot shorten and that runs at the same speed inline and on a worker.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

/// Runs `rounds` rounds of a dependent xorshift-multiply chain (a few ns
/// each) and returns the result, so nothing can be skipped.
#[inline(never)]
pub fn burn(rounds: u64) -> u64 {
    let mut x = black_box(0x2545_F491_4F6C_DD1D_u64);
    for _ in 0..rounds {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    x
}

/// Nanoseconds per round of [`burn`] on this machine: the fastest of a few
/// timed runs (the slower ones were interrupted). Measured once per process.
pub fn ns_per_round() -> f64 {
    static NS: OnceLock<f64> = OnceLock::new();
    *NS.get_or_init(|| {
        const ROUNDS: u64 = 200_000;
        black_box(burn(ROUNDS));
        (0..9)
            .map(|_| {
                let t = Instant::now();
                black_box(burn(black_box(ROUNDS)));
                t.elapsed().as_nanos() as f64 / ROUNDS as f64
            })
            .fold(f64::INFINITY, f64::min)
            .max(0.01)
    })
}

/// The rounds of [`burn`] that take about `ns` nanoseconds.
pub fn rounds_for(ns: u64) -> u64 {
    ((ns as f64 / ns_per_round()).round() as u64).max(1)
}
