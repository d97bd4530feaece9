//! Break-even: 1000 messages each carrying `W` ns of calibrated work, to a
//! pool of 2 workers, against doing the work inline.

use crate::common::cpu::{cpu_split, CpuSplit};
use crate::common::echo::{burn_batch, echo_pool_with};
use crate::common::mtp::{mtp_burn_batch, mtp_echo_pool};
use crate::common::place;
use crate::common::work::{burn, ns_per_round, rounds_for};
use crate::measure::{fmt_ns, fmt_x, ns_per_elem, ns_per_elem_after_gap, Budget, Floor, Floors};
use crate::resources::workers_cell;
use crate::table::Table;
use std::hint::black_box;
use std::time::Duration;

pub const MESSAGES: u64 = 1000;
pub const WORK_NS: [u64; 6] = [100, 300, 1_000, 3_000, 10_000, 100_000];
pub const GAP: Duration = Duration::from_millis(1);
/// The `W`s whose CPU is split by thread: the two the targets name.
pub const SPLIT_NS: [u64; 2] = [300, 1_000];
/// The targets' speed-ups at [`SPLIT_NS`].
const SPLIT_TARGETS: [f64; 2] = [1.6, 1.85];

/// ns per message at one `W`.
pub struct Row {
    pub work_ns: u64,
    pub inline: f64,
    pub shardpool: f64,
    pub shardpool_gap: f64,
    /// shardpool with `caller_spin(0)`: the caller parks at once.
    pub no_spin: f64,
    pub mtp: f64,
    pub mtp_gap: f64,
}

pub struct BreakEven {
    pub rows: Vec<Row>,
    /// At each of [`SPLIT_NS`], per message.
    pub splits: Vec<(u64, CpuSplit)>,
    pub ns_per_round: f64,
    pub floor: Floor,
}

pub fn run(budget: Budget, floors: &mut Floors) -> BreakEven {
    let ((rows, splits), floor) = floors.around("break-even", || {
        place::on_driver(None, || {
            // Named, so that its workers' CPU can be told apart (`cpu_split`).
            let sp = echo_pool_with(2, |b| b.thread_name(|i| format!("be-sp-{i}")));
            let no_spin = echo_pool_with(2, |b| b.caller_spin(Duration::ZERO));
            let mt = mtp_echo_pool(2);
            let rows = WORK_NS
                .iter()
                .map(|&w| {
                    eprintln!("  break-even: W = {}", fmt_ns(w as f64));
                    let rounds = rounds_for(w);
                    // Enough time for a few batches even at 100 µs of work.
                    let cell =
                        budget.time(Duration::from_millis(200)).max(Duration::from_nanos(4 * MESSAGES * w));
                    let inline = ns_per_elem(cell, MESSAGES, || {
                        black_box((0..MESSAGES).fold(0u64, |a, _| a ^ burn(black_box(rounds))));
                    });
                    let shardpool = ns_per_elem(cell, MESSAGES, || {
                        black_box(burn_batch(&sp, MESSAGES, rounds));
                    });
                    let shardpool_gap = ns_per_elem_after_gap(cell, GAP, MESSAGES, || {
                        black_box(burn_batch(&sp, MESSAGES, rounds));
                    });
                    let no_spin = ns_per_elem(cell, MESSAGES, || {
                        black_box(burn_batch(&no_spin, MESSAGES, rounds));
                    });
                    let mtp = ns_per_elem(cell, MESSAGES, || {
                        black_box(mtp_burn_batch(&mt, MESSAGES, rounds));
                    });
                    let mtp_gap = ns_per_elem_after_gap(cell, GAP, MESSAGES, || {
                        black_box(mtp_burn_batch(&mt, MESSAGES, rounds));
                    });
                    Row { work_ns: w, inline, shardpool, shardpool_gap, no_spin, mtp, mtp_gap }
                })
                .collect::<Vec<_>>();
            let splits = SPLIT_NS
                .iter()
                .map(|&w| {
                    let rounds = rounds_for(w);
                    let split = cpu_split("be-sp-", budget.time(Duration::from_millis(200)), || {
                        black_box(burn_batch(&sp, MESSAGES, rounds));
                    });
                    (w, split.per(MESSAGES as f64))
                })
                .collect::<Vec<_>>();
            (rows, splits)
        })
    });
    BreakEven { rows, splits, ns_per_round: ns_per_round(), floor }
}

impl BreakEven {
    /// shardpool's back-to-back speed-up at `w`.
    pub fn speedup(&self, w: u64) -> f64 {
        self.rows.iter().find(|r| r.work_ns == w).map_or(f64::NAN, |r| r.inline / r.shardpool)
    }

    /// The speed-up of batches that follow a 1 ms idle gap.
    pub fn speedup_after_idle(&self, w: u64) -> f64 {
        self.rows.iter().find(|r| r.work_ns == w).map_or(f64::NAN, |r| r.inline / r.shardpool_gap)
    }

    pub fn markdown(&self) -> String {
        let mut t = Table::new(&[
            "W",
            "inline per message",
            "shardpool",
            "shardpool after 1 ms idle",
            "shardpool, caller_spin 0",
            "messaging_thread_pool",
            "mtp after 1 ms idle",
        ]);
        let cell = |inline: f64, ns: f64| format!("{} ({})", fmt_ns(ns), fmt_x(inline / ns));
        for r in &self.rows {
            t.row(vec![
                fmt_ns(r.work_ns as f64),
                fmt_ns(r.inline),
                cell(r.inline, r.shardpool),
                cell(r.inline, r.shardpool_gap),
                cell(r.inline, r.no_spin),
                cell(r.inline, r.mtp),
                cell(r.inline, r.mtp_gap),
            ]);
        }
        let mut s = String::from("## Break-even (1000 messages of W ns of work, 2 workers)\n\n");
        s += &format!(
            "Time per message, and in brackets the speed-up, inline ÷ pool (2.00× is the most two workers \
             can give; the caller is not pinned and shares the 2 cores with them). The work is a \
             calibrated chain of {:.2} ns rounds; the *inline* column shows what W really cost. *after 1 ms \
             idle*: each batch follows a 1 ms sleep of the caller, by which time the workers have parked, unless the default adaptive idle policy, having learned the pace, woke them in time; \
             only the batch is timed. *caller_spin 0*: the same pool built with \
             `.caller_spin(Duration::ZERO)`, so the caller parks at once instead of spinning on a core the \
             workers need. Floor {}.\n\n",
            self.ns_per_round,
            self.floor.show()
        );
        s += &t.markdown();
        s += &self.split_markdown();
        s
    }

    /// The CPU split at [`SPLIT_NS`], beside what the targets leave for
    /// everything that is not the work.
    fn split_markdown(&self) -> String {
        let mut t = Table::new(&[
            "W",
            "inline per message",
            "wall per message",
            "caller CPU",
            "workers' CPU",
            "all CPU − inline",
            "target",
            "all CPU − inline the target allows",
        ]);
        for ((w, s), target) in self.splits.iter().zip(SPLIT_TARGETS) {
            let Some(r) = self.rows.iter().find(|r| r.work_ns == *w) else { continue };
            let workers = s.workers_total();
            t.row(vec![
                fmt_ns(*w as f64),
                fmt_ns(r.inline),
                fmt_ns(s.wall),
                fmt_ns(s.caller),
                workers_cell(s),
                fmt_ns(s.caller + workers - r.inline),
                fmt_x(target),
                fmt_ns(2.0 * r.inline / target - r.inline),
            ]);
        }
        let mut s = String::from(
            "\n### Where a message's CPU goes\n\nThe same batches, back to back, on the same pool, its threads' \
             CPU clocks read before and after: per message, the caller's CPU and each worker's. A \
             worker's CPU includes its spin while it waits for requests. At a speed-up S the two cores give \
             each message at most 2 × inline ÷ S of CPU, so everything that is not the work (the caller, \
             each request's overhead on its worker, a worker's wait) must fit in 2 × inline ÷ S − inline: \
             the last column.\n\n",
        );
        s += &t.markdown();
        s
    }
}
