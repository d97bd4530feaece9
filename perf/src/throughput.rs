//! Throughput: batches of trivial requests, the `Randoms` workload against
//! rayon, and many callers sharing one pool.

use crate::common::actor::ActorPool;
use crate::common::cpu::{cpu_split, CpuSplit};
use crate::common::echo::{echo_pool, echo_pool_with, ping, ping_batch, ITEMS};
use crate::common::ffwd::FfwdPool;
use crate::common::mtp::{mtp_echo_pool, mtp_ping, mtp_ping_batch, mtp_randoms_pool, MtpMean, MtpSum};
use crate::common::place;
use crate::common::rtrb_pair::RtrbPair;
use crate::measure::{fmt_ns, fmt_rate, fmt_x, ns_per_elem, Budget, Floor, Floors};
use crate::resources::workers_cell;
use crate::table::Table;
use rayon::prelude::*;
use shardpool::{AddRequest, ThreadPool};
use shardpool_samples::{MeanRequest, Randoms, RandomsInit, SumRequest};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

pub const SIZES: [u64; 4] = [1, 64, 1024, 100_000];

/// ns per element for each batch size, one subject and worker count.
pub struct BatchRow {
    pub subject: &'static str,
    pub workers: usize,
    pub ns: Vec<f64>,
    pub floor: Floor,
}

pub struct Batches {
    pub rows: Vec<BatchRow>,
}

pub const SP: &str = "shardpool";
pub const MTP: &str = "messaging_thread_pool 5";
pub const ACTOR: &str = "crossbeam-channel actor";
pub const RTRB: &str = "raw rtrb pair";
pub const RTRB_CHUNKED: &str = "rtrb pair, chunked";
pub const SP_NO_SPIN: &str = "shardpool, caller_spin 0";
pub const FFWD: &str = "ffwd delegation";

/// `ns_per_elem` of `f(n)` for each batch size `n`.
fn per_size(per_cell: Duration, mut f: impl FnMut(u64)) -> Vec<f64> {
    SIZES.map(|n| ns_per_elem(per_cell, n, || f(n))).to_vec()
}

pub fn batches(budget: Budget, floors: &mut Floors) -> Batches {
    let per_cell = budget.time(Duration::from_millis(250));
    let mut rows = Vec::new();
    for workers in [1usize, 2] {
        let subjects: &[&'static str] =
            if workers == 1 { &[SP, RTRB, RTRB_CHUNKED, MTP, ACTOR] } else { &[SP, MTP, ACTOR] };
        for &subject in subjects {
            eprintln!("  batch: {subject}, {workers} worker(s)");
            let label = format!("batch, {subject}, {workers} worker(s)");
            let (ns, floor) = floors.around(&label, || {
                place::on_driver(Some(place::caller_core()), || match subject {
                    SP => {
                        let pool = echo_pool(workers);
                        SIZES
                            .map(|n| {
                                ns_per_elem(per_cell, n, || {
                                    black_box(ping_batch(&pool, 0, n));
                                })
                            })
                            .to_vec()
                    }
                    MTP => {
                        let pool = mtp_echo_pool(workers);
                        SIZES
                            .map(|n| {
                                ns_per_elem(per_cell, n, || {
                                    black_box(mtp_ping_batch(&pool, 0, n));
                                })
                            })
                            .to_vec()
                    }
                    ACTOR => {
                        let (_actors, clients) = ActorPool::start(workers, 1, true);
                        SIZES
                            .map(|n| {
                                ns_per_elem(per_cell, n, || {
                                    black_box(clients[0].batch(0, n));
                                })
                            })
                            .to_vec()
                    }
                    RTRB_CHUNKED => {
                        let (_worker, mut client) = RtrbPair::start_chunked(place::worker_core(0), 256);
                        per_size(per_cell, |n| {
                            black_box(client.batch_chunked(0, n));
                        })
                    }
                    RTRB => {
                        let (_worker, mut client) = RtrbPair::start(place::worker_core(0), 256);
                        per_size(per_cell, |n| {
                            black_box(client.batch(0, n));
                        })
                    }
                    other => unreachable!("no batch subject {other:?}"),
                })
            });
            rows.push(BatchRow { subject, workers, ns, floor });
        }
    }
    Batches { rows }
}

impl Batches {
    pub fn get(&self, subject: &str, workers: usize, size: u64) -> f64 {
        let i = SIZES.iter().position(|&s| s == size).unwrap_or(0);
        self.rows.iter().find(|r| r.subject == subject && r.workers == workers).map_or(f64::NAN, |r| r.ns[i])
    }

    pub fn markdown(&self) -> String {
        let mut t = Table::new(&[
            "workers",
            "batch",
            "shardpool",
            "raw rtrb pair",
            "shardpool ÷ rtrb",
            "rtrb pair, chunked",
            "shardpool ÷ chunked",
            "messaging_thread_pool",
            "shardpool ÷ mtp",
            "crossbeam actor",
            "shardpool ÷ actor",
        ]);
        for workers in [1usize, 2] {
            for size in SIZES {
                let sp = self.get(SP, workers, size);
                let rtrb = self.get(RTRB, workers, size);
                let chunked = self.get(RTRB_CHUNKED, workers, size);
                let mtp = self.get(MTP, workers, size);
                let actor = self.get(ACTOR, workers, size);
                let (rtrb_cell, rtrb_ratio) = if rtrb.is_nan() {
                    ("—".to_string(), "—".to_string())
                } else {
                    (fmt_rate(rtrb), format!("{:.0}%", 100.0 * rtrb / sp))
                };
                let (chunked_cell, chunked_ratio) = if chunked.is_nan() {
                    ("—".to_string(), "—".to_string())
                } else {
                    (fmt_rate(chunked), format!("{:.0}%", 100.0 * chunked / sp))
                };
                t.row(vec![
                    workers.to_string(),
                    size.to_string(),
                    fmt_rate(sp),
                    rtrb_cell,
                    rtrb_ratio,
                    chunked_cell,
                    chunked_ratio,
                    fmt_rate(mtp),
                    fmt_x(mtp / sp),
                    fmt_rate(actor),
                    fmt_x(actor / sp),
                ]);
            }
        }
        let mut s = String::from("## Batch throughput (one caller, trivial requests)\n\n");
        s += "Requests answered per second, each batch sent and all its answers taken before the next. \
              The caller runs on the last core, worker *i* on core *i* (so with 2 workers the caller \
              shares a core with worker 1). *shardpool ÷ rtrb* is shardpool's throughput as a share of \
              the raw pair's, which moves one element at a time on each side; *shardpool ÷ chunked* \
              its share of the same pair written for streaming, both sides moving whole chunks \
              (`write_chunk_uninit` / `read_chunk`, one publication per run). The other ratios say \
              how many times faster shardpool is; the crossbeam actor uses bounded channels, each \
              side draining with `try_iter`, one message per request.\n\n";
        s += &t.markdown();
        let mut f = Table::new(&["subject", "workers", "floor before → after"]);
        for r in &self.rows {
            f.row(vec![r.subject.into(), r.workers.to_string(), r.floor.show()]);
        }
        s += "\n<details><summary>Floor around each row</summary>\n\n";
        s += &f.markdown();
        s += "\n</details>\n";
        s
    }
}

/// The Randoms workload: per (numbers per item, op), the time of one pass
/// over the 1000 items for each subject.
pub struct RandomsRow {
    pub count: usize,
    pub op: &'static str,
    /// sequential, rayon, shardpool, messaging_thread_pool: ns per pass.
    pub ns: [f64; 4],
}

pub struct RandomsResults {
    pub rows: Vec<RandomsRow>,
    /// Per numbers per item: where the CPU of shardpool's `sum` pass went,
    /// per pass.
    pub splits: Vec<(usize, CpuSplit)>,
    pub floor: Floor,
}

pub const RANDOMS_ITEMS: u64 = 1000;

pub fn randoms(budget: Budget, floors: &mut Floors) -> RandomsResults {
    let per_cell = budget.time(Duration::from_millis(300));
    let workers = place::process_cores().len();
    let ((rows, splits), floor) = floors.around("randoms vs rayon", || {
        place::on_driver(None, || {
            let rayon_pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .start_handler(|_| place::unpin_current())
                .build()
                .expect("build the rayon pool");
            let mut rows = Vec::new();
            let mut splits = Vec::new();
            for count in [10_000usize, 100] {
                eprintln!("  randoms vs rayon: {count} numbers per item");
                let local: Vec<Randoms> = (0..RANDOMS_ITEMS).map(|id| Randoms::new(id, count)).collect();
                let sp = ThreadPool::<Randoms>::builder()
                    .workers(workers)
                    .thread_name(|i| format!("randoms-sp-{i}"))
                    .build()
                    .expect("build the Randoms pool");
                sp.send_and_receive((0..RANDOMS_ITEMS).map(|id| AddRequest::new(id, RandomsInit { count })))
                    .expect("register")
                    .for_each(|r| assert!(r.is_ok()));
                let mt = mtp_randoms_pool(workers, RANDOMS_ITEMS, count);
                for op in ["sum", "mean"] {
                    let sum = op == "sum";
                    let apply = |r: &Randoms| if sum { r.sum() } else { r.mean() };
                    let seq = ns_per_elem(per_cell, 1, || {
                        black_box(local.iter().fold(0u128, |a, r| a ^ apply(r)));
                    });
                    let par = ns_per_elem(per_cell, 1, || {
                        black_box(
                            rayon_pool.install(|| local.par_iter().map(apply).reduce(|| 0, |a, b| a ^ b)),
                        );
                    });
                    let pool = ns_per_elem(per_cell, 1, || {
                        let x = if sum {
                            sp.send_and_receive((0..RANDOMS_ITEMS).map(SumRequest))
                                .expect("send")
                                .fold(0u128, |a, r| a ^ r.expect("sum").sum)
                        } else {
                            sp.send_and_receive((0..RANDOMS_ITEMS).map(MeanRequest))
                                .expect("send")
                                .fold(0u128, |a, r| a ^ r.expect("mean").mean)
                        };
                        black_box(x);
                    });
                    let mtp = ns_per_elem(per_cell, 1, || {
                        let x = if sum {
                            mt.send_and_receive((0..RANDOMS_ITEMS).map(MtpSum))
                                .expect("send")
                                .fold(0u128, |a, r| a ^ r.result)
                        } else {
                            mt.send_and_receive((0..RANDOMS_ITEMS).map(MtpMean))
                                .expect("send")
                                .fold(0u128, |a, r| a ^ r.result)
                        };
                        black_box(x);
                    });
                    rows.push(RandomsRow { count, op, ns: [seq, par, pool, mtp] });
                }
                splits.push((
                    count,
                    cpu_split("randoms-sp-", per_cell, || {
                        black_box(
                            sp.send_and_receive((0..RANDOMS_ITEMS).map(SumRequest))
                                .expect("send")
                                .fold(0u128, |a, r| a ^ r.expect("sum").sum),
                        );
                    }),
                ));
            }
            (rows, splits)
        })
    });
    RandomsResults { rows, splits, floor }
}

impl RandomsResults {
    /// shardpool's time over rayon's for `op` on items of `count` numbers.
    pub fn over_rayon(&self, count: usize, op: &str) -> f64 {
        self.rows.iter().find(|r| r.count == count && r.op == op).map_or(f64::NAN, |r| r.ns[2] / r.ns[1])
    }

    pub fn markdown(&self) -> String {
        let mut t = Table::new(&[
            "numbers per item",
            "op",
            "sequential",
            "rayon par_iter",
            "shardpool",
            "messaging_thread_pool",
            "shardpool speed-up vs sequential",
            "rayon ÷ shardpool",
            "mtp ÷ shardpool",
        ]);
        for r in &self.rows {
            let [seq, par, sp, mtp] = r.ns;
            t.row(vec![
                r.count.to_string(),
                r.op.into(),
                fmt_ns(seq),
                fmt_ns(par),
                fmt_ns(sp),
                fmt_ns(mtp),
                fmt_x(seq / sp),
                fmt_x(par / sp),
                fmt_x(mtp / sp),
            ]);
        }
        let mut s = String::from("## Randoms workload vs rayon (1000 items, one pass)\n\n");
        s += &format!(
            "Time for one pass (one request per item, all answers taken). One worker / thread per core for \
             every parallel subject; the caller is not pinned. Floor {}.\n\n",
            self.floor.show()
        );
        s += &t.markdown();
        s += &self.split_markdown();
        s
    }

    /// Where the CPU of shardpool's `sum` pass went, beside the sequential
    /// pass: the work alone, on one thread.
    fn split_markdown(&self) -> String {
        let mut t = Table::new(&[
            "numbers per item",
            "sequential pass",
            "wall per pass",
            "caller CPU",
            "workers' CPU",
            "workers' CPU ÷ sequential",
        ]);
        for (count, split) in &self.splits {
            let Some(r) = self.rows.iter().find(|r| r.count == *count && r.op == "sum") else { continue };
            let workers = split.workers_total();
            t.row(vec![
                count.to_string(),
                fmt_ns(r.ns[0]),
                fmt_ns(split.wall),
                fmt_ns(split.caller),
                workers_cell(split),
                fmt_x(workers / r.ns[0]),
            ]);
        }
        let mut s = String::from(
            "\n### Where a pass's CPU goes (shardpool, `sum`)\n\nThe pass again, its threads' CPU clocks \
             read before and after: the caller's CPU and each worker's, per pass. A worker's CPU includes \
             its spin while it waits for requests. Beyond the sequential pass's time, the workers' CPU is \
             each request's overhead, their waits, and the work running slower on two cores at once than \
             on one (with 10,000 numbers an item is 80 KB, and a pass reads 80 MB).\n\n",
        );
        s += &t.markdown();
        s
    }
}

/// One subject with a given number of callers: total rate and per-caller
/// counts.
pub struct CallersCell {
    pub subject: &'static str,
    pub callers: usize,
    pub ns_per_request: f64,
    pub counts: Vec<u64>,
}

impl CallersCell {
    /// Slowest caller's count over the fastest's.
    pub fn min_over_max(&self) -> f64 {
        let max = self.counts.iter().copied().max().unwrap_or(0).max(1);
        self.counts.iter().copied().min().unwrap_or(0) as f64 / max as f64
    }

    /// Jain's fairness index: 1 when every caller got the same share.
    pub fn jain(&self) -> f64 {
        let n = self.counts.len() as f64;
        let sum: f64 = self.counts.iter().map(|&c| c as f64).sum();
        let sq: f64 = self.counts.iter().map(|&c| (c as f64).powi(2)).sum();
        if sq == 0.0 {
            0.0
        } else {
            sum * sum / (n * sq)
        }
    }
}

pub struct Callers {
    pub cells: Vec<CallersCell>,
    pub floor: Floor,
}

/// The caller counts measured.
pub const CALLERS: [usize; 6] = [1, 2, 4, 8, 16, 64];
/// The caller counts the transport issue's targets name (a subset of
/// [`CALLERS`]); the others are shown, not judged.
pub const TARGET_CALLERS: [usize; 4] = [1, 4, 16, 64];
// A target count left out of `CALLERS` would drop out of the verdict
// unseen (`Callers::worst_vs` skips counts with no cell).
const _: () = {
    let mut t = 0;
    while t < TARGET_CALLERS.len() {
        let mut c = 0;
        while c < CALLERS.len() && CALLERS[c] != TARGET_CALLERS[t] {
            c += 1;
        }
        assert!(c < CALLERS.len(), "every target caller count is measured");
        t += 1;
    }
};

/// Runs `callers` threads calling `call(caller, i)` in a loop for `dur`
/// after they all registered; returns ns per request over all callers and
/// each caller's count.
fn run_for(callers: usize, dur: Duration, call: impl Fn(usize, u64) + Sync) -> (f64, Vec<u64>) {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(callers + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|c| {
                let (stop, start, call) = (&stop, &start, &call);
                s.spawn(move || {
                    call(c, 0);
                    start.wait();
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        call(c, k);
                        k += 1;
                    }
                    k
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
        let elapsed = t.elapsed();
        let counts: Vec<u64> = handles.into_iter().map(|h| h.join().expect("a caller thread")).collect();
        let total: u64 = counts.iter().sum();
        (elapsed.as_nanos() as f64 / total.max(1) as f64, counts)
    })
}

pub fn many_callers(budget: Budget, floors: &mut Floors) -> Callers {
    let dur = budget.time(Duration::from_millis(400));
    let workers = 2;
    let (cells, floor) = floors.around("many callers", || {
        place::on_driver(None, || {
            let sp = echo_pool(workers);
            let no_spin = echo_pool_with(workers, |b| b.caller_spin(Duration::ZERO));
            let mt = mtp_echo_pool(workers);
            let id = |c: usize, i: u64| (c as u64 * 7 + i) % ITEMS;
            let mut cells = Vec::new();
            for callers in CALLERS {
                eprintln!("  many callers: {callers}");
                let (ns, counts) = run_for(callers, dur, |c, i| {
                    black_box(ping(&sp, id(c, i)));
                });
                cells.push(CallersCell { subject: SP, callers, ns_per_request: ns, counts });
                let (ns, counts) = run_for(callers, dur, |c, i| {
                    black_box(ping(&no_spin, id(c, i)));
                });
                cells.push(CallersCell { subject: SP_NO_SPIN, callers, ns_per_request: ns, counts });
                let (ns, counts) = run_for(callers, dur, |c, i| {
                    black_box(mtp_ping(&mt, id(c, i)));
                });
                cells.push(CallersCell { subject: MTP, callers, ns_per_request: ns, counts });
                let (actors, clients) = ActorPool::start(workers, callers, true);
                let (ns, counts) = run_for(callers, dur, |c, i| {
                    black_box(clients[c].call(id(c, i)));
                });
                drop(clients);
                drop(actors);
                cells.push(CallersCell { subject: ACTOR, callers, ns_per_request: ns, counts });
                let (servers, clients) = FfwdPool::start(workers, callers, true);
                let (ns, counts) = run_for(callers, dur, |c, i| {
                    black_box(clients[c].call(id(c, i)));
                });
                drop(clients);
                drop(servers);
                cells.push(CallersCell { subject: FFWD, callers, ns_per_request: ns, counts });
            }
            cells
        })
    });
    Callers { cells, floor }
}

impl Callers {
    /// Over the targets' caller counts, the least of shardpool's throughput
    /// over `subject`'s.
    pub fn worst_vs(&self, subject: &str) -> f64 {
        TARGET_CALLERS
            .into_iter()
            .filter_map(|n| Some(self.cell(subject, n)?.ns_per_request / self.cell(SP, n)?.ns_per_request))
            .fold(f64::INFINITY, f64::min)
    }

    /// Over the targets' caller counts, the least of shardpool's slowest
    /// caller's count over its fastest's.
    pub fn worst_fairness(&self) -> f64 {
        TARGET_CALLERS
            .into_iter()
            .filter_map(|n| Some(self.cell(SP, n)?.min_over_max()))
            .fold(f64::INFINITY, f64::min)
    }

    fn cell(&self, subject: &str, callers: usize) -> Option<&CallersCell> {
        self.cells.iter().find(|c| c.subject == subject && c.callers == callers)
    }

    pub fn markdown(&self) -> String {
        let mut t = Table::new(&[
            "callers",
            "shardpool",
            "shardpool, caller_spin 0",
            "messaging_thread_pool",
            "crossbeam actor",
            "ffwd delegation",
            "shardpool ÷ mtp",
            "shardpool ÷ actor",
            "shardpool ÷ ffwd",
        ]);
        let cell = |c: &CallersCell| {
            format!("{} ({:.2}, {:.3})", fmt_rate(c.ns_per_request), c.min_over_max(), c.jain())
        };
        for callers in CALLERS {
            let (Some(sp), Some(no_spin), Some(mtp), Some(actor), Some(ffwd)) = (
                self.cell(SP, callers),
                self.cell(SP_NO_SPIN, callers),
                self.cell(MTP, callers),
                self.cell(ACTOR, callers),
                self.cell(FFWD, callers),
            ) else {
                continue;
            };
            t.row(vec![
                callers.to_string(),
                cell(sp),
                cell(no_spin),
                cell(mtp),
                cell(actor),
                cell(ffwd),
                fmt_x(mtp.ns_per_request / sp.ns_per_request),
                fmt_x(actor.ns_per_request / sp.ns_per_request),
                fmt_x(ffwd.ns_per_request / sp.ns_per_request),
            ]);
        }
        let mut s = String::from("## Many callers sharing one pool (2 workers, round trips)\n\n");
        s += &format!(
            "Total round trips per second over all callers, each caller looping on one request at a time \
             for a fixed time; callers unpinned, 2 cores. In brackets, fairness: the slowest caller's count \
             over the fastest's, and Jain's index (1 = equal shares). *caller_spin 0*: a pool built with \
             `.caller_spin(Duration::ZERO)` (callers park at once). The crossbeam actor uses bounded \
             channels drained with `try_iter`; *ffwd delegation* gives each caller a request line per \
             server and answers a group of four callers with one response line per sweep (after \
             Roghanchi et al., SOSP 2017); its servers spin for ever, a core each. Floor {}.\n\n",
            self.floor.show()
        );
        s += &t.markdown();
        s
    }
}
