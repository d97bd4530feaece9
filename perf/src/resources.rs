//! What the pool costs besides time: CPU while idle, allocations per
//! request, memory per registered caller.

use crate::alloc;
use crate::common::actor::ActorPool;
use crate::common::cpu::{thread_cpu, thread_cpu_ns, CpuSplit};
use crate::common::echo::{burn_once, echo_pool, ping, ping_batch, ITEMS};
use crate::common::mtp::{mtp_echo_pool, mtp_ping, mtp_ping_batch};
use crate::common::place;
use crate::common::work::{burn, rounds_for};
use crate::measure::{fmt_ns, Budget};
use crate::table::Table;
use std::fs;
use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

pub struct IdleRow {
    pub subject: &'static str,
    pub threads: usize,
    /// CPU time all its threads used during the window.
    pub cpu_ns: u64,
    pub window: Duration,
}

impl IdleRow {
    /// Percent of one core.
    pub fn percent(&self) -> f64 {
        100.0 * self.cpu_ns as f64 / self.window.as_nanos() as f64
    }
}

pub struct AllocRow {
    pub path: &'static str,
    pub shardpool: f64,
    pub mtp: f64,
    pub actor: f64,
}

pub struct MemoryRow {
    pub subject: &'static str,
    /// Bytes live per caller thread while registered, less a plain thread's.
    pub live_per_caller: f64,
    /// High-water mark per caller thread, less a plain thread's.
    pub peak_per_caller: f64,
    /// Bytes still live after the callers exited, vs before they started:
    /// after a first round of callers, and after a second (retained
    /// capacity shows in the first only; a leak grows in both).
    pub left_after_exit: i64,
    pub left_after_second: i64,
    /// Registered callers the pool reported while they ran, and after.
    pub callers_during: Option<usize>,
    pub callers_after: Option<usize>,
    /// How long the pool took to reclaim the exited callers.
    pub reclaim: Option<Duration>,
}

/// A caller's CPU while it waits for replies that take `work` each.
pub struct SlowRow {
    pub subject: &'static str,
    pub work: Duration,
    pub calls: u64,
    /// The calling thread's CPU time over the calls.
    pub cpu: Duration,
    pub wall: Duration,
}

impl SlowRow {
    /// The caller's CPU time as a percent of the wall time.
    pub fn percent(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }
}

/// `calls` calls of `call`, timed on the wall and on the caller's CPU.
fn slow_row(subject: &'static str, work: Duration, calls: u64, mut call: impl FnMut()) -> SlowRow {
    // Warm-up: enough calls for the caller to learn how long replies take.
    for _ in 0..8 {
        call();
    }
    let (t, c) = (Instant::now(), thread_cpu());
    for _ in 0..calls {
        call();
    }
    SlowRow { subject, work, calls, cpu: thread_cpu() - c, wall: t.elapsed() }
}

/// A server thread behind bounded crossbeam channels, burning `rounds` per
/// request; the caller blocks in `recv`. Returns the caller's row.
fn channel_slow_row(work: Duration, calls: u64, rounds: u64, core: usize) -> SlowRow {
    let (to_server, requests) = crossbeam_channel::bounded::<u64>(1);
    let (to_caller, replies) = crossbeam_channel::bounded::<u64>(1);
    let server = thread::spawn(move || {
        place::pin_current(core);
        for r in requests {
            if to_caller.send(burn(r)).is_err() {
                break;
            }
        }
    });
    let row = slow_row("crossbeam channels (caller blocks in `recv`)", work, calls, || {
        to_server.send(rounds).expect("the server runs");
        black_box(replies.recv().expect("the server answers"));
    });
    drop(to_server);
    server.join().expect("the server exits");
    row
}

/// The workers' CPU of `split` for a table cell: in all, then each
/// worker's.
pub fn workers_cell(split: &CpuSplit) -> String {
    let each: Vec<String> = split.workers.iter().map(|&w| fmt_ns(w)).collect();
    format!("{} ({})", fmt_ns(split.workers_total()), each.join(" + "))
}

pub struct Resources {
    pub slow: Vec<SlowRow>,
    pub idle: Vec<IdleRow>,
    pub allocs: Vec<AllocRow>,
    pub memory: Vec<MemoryRow>,
    pub schedstat: bool,
}

fn allocs_per(requests: u64, mut f: impl FnMut()) -> f64 {
    let before = alloc::allocations();
    f();
    (alloc::allocations() - before) as f64 / requests as f64
}

/// Bytes live (and peak) per thread while `k` threads that each ran
/// `register` wait together; then bytes left after they exit.
fn per_thread_bytes(
    k: usize,
    register: impl Fn(u64) + Sync,
    while_waiting: impl FnOnce(),
) -> (f64, f64, i64) {
    let before = alloc::live_bytes();
    alloc::reset_peak();
    let ready = Barrier::new(k + 1);
    let go = Barrier::new(k + 1);
    let (live, peak) = thread::scope(|s| {
        for c in 0..k {
            let (ready, go, register) = (&ready, &go, &register);
            s.spawn(move || {
                register(c as u64);
                ready.wait();
                go.wait();
            });
        }
        ready.wait();
        let live = alloc::live_bytes() as f64 - before as f64;
        let peak = alloc::peak_bytes() as f64 - before as f64;
        while_waiting();
        go.wait();
        (live, peak)
    });
    let left = alloc::live_bytes() as i64 - before as i64;
    (live / k as f64, peak / k as f64, left)
}

/// Two rounds of `k` threads that each run `register` and then wait together;
/// `callers` reads the pool's registered-caller count, if it has one. The
/// exited callers are reclaimed by the pool's workers: we wait for it (up to
/// 2 s) before reading the bytes left.
fn memory_rounds(k: usize, register: impl Fn(u64) + Sync, callers: Option<&dyn Fn() -> usize>) -> MemoryRow {
    let base = callers.map(|f| f());
    let before = alloc::live_bytes();
    let mut during = None;
    let mut reclaim = None;
    let mut first = (0.0, 0.0, 0);
    for round in 0..2 {
        let (live, peak, _) = per_thread_bytes(k, &register, || during = callers.map(|f| f()));
        let t = Instant::now();
        if let (Some(f), Some(base)) = (callers, base) {
            while f() > base && t.elapsed() < Duration::from_secs(2) {
                thread::sleep(Duration::from_micros(200));
            }
            reclaim = Some(t.elapsed());
        }
        let left = alloc::live_bytes() as i64 - before as i64;
        if round == 0 {
            first = (live, peak, left);
        }
    }
    MemoryRow {
        subject: "",
        live_per_caller: first.0,
        peak_per_caller: first.1,
        left_after_exit: first.2,
        left_after_second: alloc::live_bytes() as i64 - before as i64,
        callers_during: during,
        callers_after: callers.map(|f| f()),
        reclaim,
    }
}

pub fn run(budget: Budget) -> Resources {
    let schedstat = fs::metadata("/proc/self/schedstat").is_ok();

    // Idle CPU: both pools warmed up, then a window of no traffic.
    eprintln!("  idle CPU");
    let window = budget.time(Duration::from_millis(500));
    let idle = place::on_driver(None, || {
        let sp = echo_pool(2);
        let mt = mtp_echo_pool(2);
        for i in 0..10_000 {
            black_box(ping(&sp, i % ITEMS));
            black_box(mtp_ping(&mt, i % ITEMS));
        }
        black_box(ping_batch(&sp, 0, 10_000));
        black_box(mtp_ping_batch(&mt, 0, 10_000));
        let sum = |v: &[(String, u64)]| v.iter().map(|(_, ns)| ns).sum::<u64>();
        let (sp0, mt0) = (thread_cpu_ns("echo-"), thread_cpu_ns("MtpEcho-"));
        let t = Instant::now();
        thread::sleep(window);
        let (sp1, mt1) = (thread_cpu_ns("echo-"), thread_cpu_ns("MtpEcho-"));
        let window = t.elapsed();
        vec![
            IdleRow { subject: "shardpool", threads: sp1.len(), cpu_ns: sum(&sp1) - sum(&sp0), window },
            IdleRow {
                subject: "messaging_thread_pool 5",
                threads: mt1.len(),
                cpu_ns: sum(&mt1) - sum(&mt0),
                window,
            },
        ]
    });

    // Allocations per request, after a warm-up, counted over every thread.
    eprintln!("  allocations per request");
    let allocs = place::on_driver(Some(place::caller_core()), || {
        let sp = echo_pool(1);
        let mt = mtp_echo_pool(1);
        let (_actors, clients) = ActorPool::start(1, 1, true);
        let actor = &clients[0];
        let n = 10_000u64;
        for i in 0..2_000 {
            black_box(ping(&sp, i % ITEMS));
            black_box(ping_batch(&sp, i, 1024));
            black_box(mtp_ping(&mt, i % ITEMS));
            black_box(actor.batch(i, 1024));
        }
        let mut rows = Vec::new();
        rows.push(AllocRow {
            path: "one request (`send_and_receive_once`)",
            shardpool: allocs_per(n, || {
                (0..n).for_each(|i| {
                    black_box(ping(&sp, i % ITEMS));
                })
            }),
            mtp: allocs_per(n, || {
                (0..n).for_each(|i| {
                    black_box(mtp_ping(&mt, i % ITEMS));
                })
            }),
            actor: allocs_per(n, || {
                (0..n).for_each(|i| {
                    black_box(actor.call(i % ITEMS));
                })
            }),
        });
        rows.push(AllocRow {
            path: "batch of 1 (`send_and_receive`)",
            shardpool: allocs_per(n, || {
                (0..n).for_each(|i| {
                    black_box(ping_batch(&sp, i, 1));
                })
            }),
            mtp: allocs_per(n, || {
                (0..n).for_each(|i| {
                    black_box(mtp_ping_batch(&mt, i, 1));
                })
            }),
            actor: allocs_per(n, || {
                (0..n).for_each(|i| {
                    black_box(actor.batch(i, 1));
                })
            }),
        });
        let batches = 50u64;
        rows.push(AllocRow {
            path: "batch of 1024",
            shardpool: allocs_per(batches * 1024, || {
                (0..batches).for_each(|i| {
                    black_box(ping_batch(&sp, i, 1024));
                })
            }),
            mtp: allocs_per(batches * 1024, || {
                (0..batches).for_each(|i| {
                    black_box(mtp_ping_batch(&mt, i, 1024));
                })
            }),
            actor: allocs_per(batches * 1024, || {
                (0..batches).for_each(|i| {
                    black_box(actor.batch(i, 1024));
                })
            }),
        });
        rows
    });

    // Memory per registered caller: two rounds of `k` callers per subject.
    eprintln!("  memory per registered caller");
    let k = 64;
    let memory = place::on_driver(None, || {
        let mut rows = Vec::new();
        let plain = memory_rounds(k, |_| {}, None);
        rows.push(MemoryRow { subject: "a plain thread (subtracted below)", ..plain });
        let sp = echo_pool(2);
        ping(&sp, 0);
        let callers = || sp.stats().callers;
        let r = memory_rounds(
            k,
            |c| {
                black_box(ping(&sp, c % ITEMS));
            },
            Some(&callers),
        );
        rows.push(MemoryRow {
            subject: "shardpool (2 workers)",
            live_per_caller: r.live_per_caller - plain.live_per_caller,
            peak_per_caller: r.peak_per_caller - plain.peak_per_caller,
            ..r
        });
        let mt = mtp_echo_pool(2);
        mtp_ping(&mt, 0);
        let r = memory_rounds(
            k,
            |c| {
                black_box(mtp_ping(&mt, c % ITEMS));
            },
            None,
        );
        rows.push(MemoryRow {
            subject: "messaging_thread_pool 5 (2 workers)",
            live_per_caller: r.live_per_caller - plain.live_per_caller,
            peak_per_caller: r.peak_per_caller - plain.peak_per_caller,
            ..r
        });
        rows
    });
    // A caller's CPU while its replies take long (`caller/pace.rs`).
    eprintln!("  caller CPU, slow replies");
    let slow = place::on_driver(Some(place::caller_core()), || {
        let mut rows = Vec::new();
        for micros in [200u64, 1000] {
            let work = Duration::from_micros(micros);
            let rounds = rounds_for(micros * 1000);
            let calls = (budget.time(Duration::from_millis(100)).as_micros() as u64 / micros).max(20);
            let sp = echo_pool(1);
            rows.push(slow_row("shardpool", work, calls, || {
                black_box(burn_once(&sp, 0, rounds));
            }));
            drop(sp);
            rows.push(channel_slow_row(work, calls, rounds, place::worker_core(0)));
        }
        rows
    });
    Resources { slow, idle, allocs, memory, schedstat }
}

impl Resources {
    pub fn idle_percent(&self, subject: &str) -> f64 {
        self.idle.iter().find(|r| r.subject == subject).map_or(f64::NAN, IdleRow::percent)
    }

    pub fn markdown(&self, caller_threads: usize) -> String {
        let mut s = String::from("## A caller's CPU while replies take long\n\n");
        s += "One caller (pinned) makes calls whose handler burns the given time, one worker (pinned to \
              another core); the caller's CPU time (`CLOCK_THREAD_CPUTIME_ID`) over the calls, after 8 \
              calls of warm-up. A shardpool caller spins `caller_spin` (50 µs) for a reply before it parks, \
              unless the replies it waits for have been outlasting that spin: then it spins only a probe \
              of a sixteenth of it (`src/caller/pace.rs`). The channel caller blocks in `recv` (crossbeam \
              spins a few µs first).\n\n";
        let mut t = Table::new(&[
            "subject",
            "handler",
            "calls",
            "wall per call",
            "caller CPU per call",
            "caller CPU % of wall",
        ]);
        for r in &self.slow {
            t.row(vec![
                r.subject.into(),
                format!("{} µs", r.work.as_micros()),
                r.calls.to_string(),
                format!("{:.1} µs", r.wall.as_secs_f64() * 1e6 / r.calls as f64),
                format!("{:.2} µs", r.cpu.as_secs_f64() * 1e6 / r.calls as f64),
                format!("{:.1}%", r.percent()),
            ]);
        }
        s += &t.markdown();

        s += "\n## Idle CPU\n\n";
        s += &format!(
            "CPU time used by the pool's threads during {} of no traffic, right after a burst of traffic \
             (so it includes each worker's spin before it parks), read from the OS ({}).\n\n",
            self.idle.first().map_or("—".into(), |r| format!("{:.2} s", r.window.as_secs_f64())),
            if self.schedstat {
                "`/proc/self/task/*/schedstat`, ns"
            } else {
                "`/proc/self/task/*/stat`, clock ticks"
            }
        );
        let mut t = Table::new(&["pool", "threads", "CPU time", "% of one core"]);
        for r in &self.idle {
            t.row(vec![
                r.subject.into(),
                r.threads.to_string(),
                format!("{:.3} ms", r.cpu_ns as f64 / 1e6),
                format!("{:.3}%", r.percent()),
            ]);
        }
        s += &t.markdown();

        s += "\n## Allocations per request\n\n";
        s += "Counted by the perf binary's global allocator over every thread, after a warm-up (so \
              caller registration and slab growth are not counted).\n\n";
        let mut t = Table::new(&["path", "shardpool", "messaging_thread_pool 5", "crossbeam actor"]);
        for r in &self.allocs {
            t.row(vec![
                r.path.into(),
                format!("{:.3}", r.shardpool),
                format!("{:.3}", r.mtp),
                format!("{:.3}", r.actor),
            ]);
        }
        s += &t.markdown();

        s += &format!(
            "\n## Memory per registered caller\n\n{caller_threads} threads each make one call and wait \
             together; bytes from the counting allocator (thread stacks are not counted), less what a \
             plain thread costs. *left after exit* compares live bytes once the threads exited (and, for \
             shardpool, once the workers reclaimed their rings) with before they started, after one round \
             of callers and after a second: capacity kept for reuse shows after the first round only, a \
             leak would grow with each.\n\n"
        );
        let mut t = Table::new(&[
            "subject",
            "live bytes per caller",
            "peak bytes per caller",
            "left after exit (1st round, 2nd round)",
            "callers registered (during → after)",
            "reclaimed in",
        ]);
        for r in &self.memory {
            t.row(vec![
                r.subject.into(),
                format!("{:.0}", r.live_per_caller),
                format!("{:.0}", r.peak_per_caller),
                format!("{} B, {} B", r.left_after_exit, r.left_after_second),
                match (r.callers_during, r.callers_after) {
                    (Some(d), Some(a)) => format!("{d} → {a}"),
                    _ => "—".into(),
                },
                r.reclaim.map_or("—".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3)),
            ]);
        }
        s += &t.markdown();
        s
    }
}
