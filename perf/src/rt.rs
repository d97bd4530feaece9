//! Round trips: one caller (on the last core), one worker (on the first),
//! one trivial request at a time; back to back, and after idle gaps.

use crate::common::actor::ActorPool;
use crate::common::cache_line::PingPong;
use crate::common::echo::{echo_pool, echo_pool_with, ping, ITEMS};
use crate::common::mtp::{mtp_echo_pool, mtp_ping};
use crate::common::place;
use crate::common::rtrb_pair::RtrbPair;
use crate::measure::{
    fmt_ns, fmt_x, latencies, latencies_after_gap, mean_ns, Budget, Floor, Floors, Latency,
};
use crate::table::Table;
use shardpool::Idle;
use std::time::Duration;

/// The round-trip subjects, cheapest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Floor,
    Rtrb,
    Actor,
    Mtp,
    Shardpool,
    /// shardpool with `Idle::Park` (the gaps only).
    ShardpoolPark,
    /// shardpool with `Idle::Poll` (the gaps only).
    ShardpoolPoll,
}

impl Subject {
    /// The subject whose back-to-back row this one's gap rows compare with.
    pub fn back_to_back(self) -> Subject {
        match self {
            Subject::ShardpoolPark | Subject::ShardpoolPoll => Subject::Shardpool,
            s => s,
        }
    }

    pub const ALL: [Subject; 5] =
        [Subject::Floor, Subject::Rtrb, Subject::Actor, Subject::Mtp, Subject::Shardpool];

    pub fn name(self) -> &'static str {
        match self {
            Subject::Floor => "cache-line floor",
            Subject::Rtrb => "raw rtrb pair",
            Subject::Actor => "crossbeam-channel actor",
            Subject::Mtp => "messaging_thread_pool 5",
            Subject::Shardpool => "shardpool",
            Subject::ShardpoolPark => "shardpool, Idle::Park",
            Subject::ShardpoolPoll => "shardpool, Idle::Poll",
        }
    }
}

/// Sets up `$subject` with one worker, binds `$op` to a closure making one
/// round trip, evaluates `$body`, and tears the subject down.
macro_rules! with_subject {
    ($subject:expr, |$op:ident| $body:expr) => {
        match $subject {
            Subject::Floor => {
                let (_partner, client) = PingPong::start(place::worker_core(0));
                #[allow(unused_mut)]
                let mut $op = |_: u64| {
                    client.bounce();
                    0u64
                };
                $body
            }
            Subject::Rtrb => {
                let (_worker, mut client) = RtrbPair::start(place::worker_core(0), 256);
                let mut $op = |i: u64| client.call(i);
                $body
            }
            Subject::Actor => {
                let (_actors, clients) = ActorPool::start(1, 1, true);
                #[allow(unused_mut)]
                let mut $op = |i: u64| clients[0].call(i % ITEMS);
                $body
            }
            Subject::Mtp => {
                let pool = mtp_echo_pool(1);
                #[allow(unused_mut)]
                let mut $op = |i: u64| mtp_ping(&pool, i % ITEMS);
                $body
            }
            Subject::Shardpool => {
                let pool = echo_pool(1);
                #[allow(unused_mut)]
                let mut $op = |i: u64| ping(&pool, i % ITEMS);
                $body
            }
            Subject::ShardpoolPark | Subject::ShardpoolPoll => {
                let idle = if $subject == Subject::ShardpoolPark { Idle::Park } else { Idle::Poll };
                let pool = echo_pool_with(1, |b| b.idle(idle));
                #[allow(unused_mut)]
                let mut $op = |i: u64| ping(&pool, i % ITEMS);
                $body
            }
        }
    };
}

/// One subject's back-to-back round trips.
pub struct Row {
    pub subject: Subject,
    /// Mean from timing many calls at once (no per-call timer).
    pub mean: f64,
    /// Per-call distribution (each includes one timer read).
    pub latency: Latency,
    pub floor: Floor,
}

/// One subject's round trips after an idle gap.
pub struct GapRow {
    pub subject: Subject,
    pub gap: Duration,
    pub latency: Latency,
    pub floor: Floor,
}

pub struct RoundTrips {
    pub rows: Vec<Row>,
    pub gaps: Vec<GapRow>,
}

pub const GAPS: [Duration; 4] = [
    Duration::from_micros(10),
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(5),
];

pub fn run(budget: Budget, floors: &mut Floors) -> RoundTrips {
    let limit = budget.time(Duration::from_millis(800));
    let max_calls = budget.count(300_000);
    let mut rows = Vec::new();
    for subject in Subject::ALL {
        eprintln!("  round trip: {}", subject.name());
        let ((mean, latency), floor) = floors.around(&format!("round trip, {}", subject.name()), || {
            place::on_driver(Some(place::caller_core()), || {
                with_subject!(subject, |op| {
                    // Size the runs from a first estimate of the cost.
                    let estimate = mean_ns(2_000, &mut op).max(1.0);
                    let calls = ((limit.as_nanos() as f64 / estimate) as u64).clamp(5_000, max_calls);
                    let mean = mean_ns(calls, &mut op);
                    let latency = latencies(calls, limit, &mut op);
                    (mean, latency)
                })
            })
        });
        rows.push(Row { subject, mean, latency, floor });
    }
    let mut gaps = Vec::new();
    for subject in [
        Subject::Rtrb,
        Subject::Actor,
        Subject::Mtp,
        Subject::Shardpool,
        Subject::ShardpoolPark,
        Subject::ShardpoolPoll,
    ] {
        eprintln!("  round trip after idle gaps: {}", subject.name());
        let (lats, floor) = floors.around(&format!("round trip after gaps, {}", subject.name()), || {
            place::on_driver(Some(place::caller_core()), || {
                with_subject!(subject, |op| {
                    GAPS.iter()
                        .map(|&gap| {
                            let limit = budget.time(Duration::from_millis(350));
                            let n = (limit.as_nanos() / gap.as_nanos()) as u64;
                            latencies_after_gap(n, gap, limit, &mut op)
                        })
                        .collect::<Vec<_>>()
                })
            })
        });
        for (gap, latency) in GAPS.into_iter().zip(lats) {
            gaps.push(GapRow { subject, gap, latency, floor });
        }
    }
    RoundTrips { rows, gaps }
}

impl RoundTrips {
    pub fn mean(&self, s: Subject) -> f64 {
        self.rows.iter().find(|r| r.subject == s).map_or(f64::NAN, |r| r.mean)
    }

    pub fn p50(&self, s: Subject) -> f64 {
        self.rows.iter().find(|r| r.subject == s).map_or(f64::NAN, |r| r.latency.p50)
    }

    pub fn markdown(&self) -> String {
        let rtrb = self.mean(Subject::Rtrb);
        let mtp = self.mean(Subject::Mtp);
        let mut t = Table::new(&[
            "subject",
            "mean",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "mean ÷ rtrb pair",
            "mtp ÷ mean",
            "mean ÷ floor",
            "floor before → after",
        ]);
        for r in &self.rows {
            let l = r.latency;
            t.row(vec![
                r.subject.name().into(),
                fmt_ns(r.mean),
                fmt_ns(l.p50),
                fmt_ns(l.p90),
                fmt_ns(l.p99),
                fmt_ns(l.p999),
                fmt_ns(l.max),
                fmt_x(r.mean / rtrb),
                fmt_x(mtp / r.mean),
                fmt_x(r.mean / r.floor.mean()),
                r.floor.show(),
            ]);
        }
        let mut s = String::from("## Round trip (one caller, one worker, back to back)\n\n");
        s += "Caller pinned to the last core, worker to the first. *mean* times many calls at once (the \
              median of 25 runs); the percentiles time each call (so each includes one clock read, see \
              the head). *mtp ÷ mean* is how many times faster than messaging_thread_pool. The two \
              channel-based subjects block: their round trip is bimodal, a few µs when the reply finds \
              the caller still spinning in crossbeam's backoff (or the unpinned worker on the caller's \
              own core), tens of µs when it must wake a thread on an idle vCPU, so their mean and p50 \
              differ widely and move from run to run.\n\n";
        s += &t.markdown();

        let mut t = Table::new(&[
            "subject",
            "idle gap",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "p50 ÷ back-to-back p50",
            "samples",
            "floor before → after",
        ]);
        for g in &self.gaps {
            let l = g.latency;
            t.row(vec![
                g.subject.name().into(),
                fmt_ns(g.gap.as_nanos() as f64),
                fmt_ns(l.p50),
                fmt_ns(l.p90),
                fmt_ns(l.p99),
                fmt_ns(l.p999),
                fmt_ns(l.max),
                // The idle policy only matters once idle: every shardpool
                // row is set against shardpool's back-to-back p50.
                fmt_x(l.p50 / self.p50(g.subject.back_to_back())),
                l.samples.to_string(),
                g.floor.show(),
            ]);
        }
        s += "\n## Round trip after an idle gap\n\n";
        s += "The caller spins through the gap (so only the subject's side goes idle), then times one round \
              trip; the gaps are regular. shardpool's worker spins 50 µs, then follows its `Idle` policy: \
              `Idle::Park` parks until rung, so the longer gaps measure a futex wake-up; the default \
              `Idle::Adaptive` learns the gap and, up to its 10 ms cap, wakes itself shortly before the \
              next request (or spins through gaps under about 300 µs); `Idle::Poll` never parks. The \
              rtrb pair never parks; the channel-based subjects always block.\n\n";
        s += &t.markdown();
        s
    }
}
