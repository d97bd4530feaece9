//! What the benchmarks share: the bench items in shardpool's and in
//! messaging_thread_pool's terms, the baselines (a crossbeam-channel actor, a
//! raw `rtrb` pair in two forms, ffwd-style delegation, a bounced cache line, the tokio subjects), calibrated CPU work, and thread
//! placement.
//!
//! The criterion benches include this module with `mod common;`; the perf
//! harness (`perf/`) includes the same files with `#[path]`, so both measure
//! the very same code. Not every bench uses every item, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

pub mod actor;
pub mod cache_line;
#[cfg(target_os = "linux")]
pub mod cpu;
pub mod echo;
pub mod ffwd;
pub mod mtp;
pub mod place;
pub mod rtrb_pair;
pub mod tokio_subjects;
pub mod work;

/// Spin iterations between two `yield_now` calls in the baselines' waits:
/// rare enough never to matter when each side has its own core, frequent
/// enough that a pair squeezed onto one core still makes progress.
pub const YIELD_EVERY: u32 = 1 << 12;

/// Waits for `ready()` by spinning, yielding the core now and then.
#[inline]
pub fn spin_until(mut ready: impl FnMut() -> bool) {
    let mut n = 0u32;
    while !ready() {
        n = n.wrapping_add(1);
        if n % YIELD_EVERY == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}
