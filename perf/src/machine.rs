//! What machine the report was measured on.

use crate::common::place;
use std::fs;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The machine, as the report's head names it.
pub struct Machine {
    pub cpu: String,
    pub cores_online: usize,
    pub process_cores: Vec<usize>,
    pub kernel: String,
    pub rustc: &'static str,
    pub clocksource: String,
    /// Nanoseconds between two back-to-back `Instant::now()` (the fastest
    /// of many); every per-operation latency includes about one of these.
    pub timer_ns: f64,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_string();
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let clocksource =
            fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpu,
            cores_online: std::thread::available_parallelism().map_or(1, |n| n.get()),
            process_cores: place::process_cores(),
            kernel,
            rustc: env!("PERF_RUSTC_VERSION"),
            clocksource,
            timer_ns: timer_overhead_ns(),
        }
    }
}

fn timer_overhead_ns() -> f64 {
    (0..10_000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().take(3).map(str::to_string).reduce(|a, b| format!("{a} {b}")))
        .unwrap_or_else(|| "unknown".into())
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}
