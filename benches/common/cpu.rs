//! CPU time by thread, from the OS: how much of a run's CPU the calling
//! thread and a pool's workers each took (Linux: `CLOCK_THREAD_CPUTIME_ID`
//! and `/proc/self/task/*/schedstat`).

use std::fs;
use std::time::{Duration, Instant};

/// CPU time (ns) of each thread of this process whose name starts with
/// `prefix`, from `/proc/self/task/*/schedstat` (ns on CPU), or from
/// `stat`'s utime + stime (clock ticks) where schedstat is missing.
pub fn thread_cpu_ns(prefix: &str) -> Vec<(String, u64)> {
    let Ok(dir) = fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_string();
        if !comm.starts_with(prefix) {
            continue;
        }
        let schedstat = fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()));
        let ns = schedstat.or_else(|| {
            let stat = fs::read_to_string(path.join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state is field 3, utime 14 and stime 15.
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            Some(ticks * 1_000_000_000 / hz)
        });
        if let Some(ns) = ns {
            out.push((comm, ns));
        }
    }
    out.sort();
    out
}

/// Where the CPU of repeated calls went: per call, the wall time, the
/// calling thread's CPU and each named thread's (a pool's workers).
pub struct CpuSplit {
    pub wall: f64,
    pub caller: f64,
    pub workers: Vec<f64>,
}

impl CpuSplit {
    /// Everything, per `n` (a call's messages, say) rather than per call.
    pub fn per(&self, n: f64) -> CpuSplit {
        CpuSplit {
            wall: self.wall / n,
            caller: self.caller / n,
            workers: self.workers.iter().map(|w| w / n).collect(),
        }
    }

    /// The workers' CPU, in all.
    pub fn workers_total(&self) -> f64 {
        self.workers.iter().sum()
    }
}

/// Calls `f` for about `total` (after a tenth of it to warm up), reading
/// the CPU clocks of this thread and of every thread whose name starts with
/// `prefix` before and after: ns per call. A worker's CPU includes its spin
/// while it waits for requests.
pub fn cpu_split(prefix: &str, total: Duration, mut f: impl FnMut()) -> CpuSplit {
    let warm = Instant::now();
    while warm.elapsed() < total / 10 {
        f();
    }
    let (w0, c0, t0) = (thread_cpu_ns(prefix), thread_cpu(), Instant::now());
    let mut calls = 0u64;
    while t0.elapsed() < total || calls < 3 {
        f();
        calls += 1;
    }
    let (wall, caller, w1) = (t0.elapsed(), thread_cpu() - c0, thread_cpu_ns(prefix));
    let per = calls as f64;
    CpuSplit {
        wall: wall.as_nanos() as f64 / per,
        caller: caller.as_nanos() as f64 / per,
        workers: w1
            .iter()
            .map(|(name, after)| {
                let before = w0.iter().find(|(n, _)| n == name).map_or(0, |(_, ns)| *ns);
                after.saturating_sub(before) as f64 / per
            })
            .collect(),
    }
}

/// The calling thread's CPU time so far.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
