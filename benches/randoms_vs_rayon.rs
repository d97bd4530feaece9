//! `randoms_vs_rayon`: the `Randoms` workload (sum and mean of each item's
//! numbers) over 1000 items, with 10,000 numbers per item (the size of
//! messaging_thread_pool's own `Randoms` sample) and with 100 (fine-grained:
//! tens of nanoseconds of work per message).
//!
//! Subjects: sequential on the calling thread, rayon `par_iter` over the same
//! items (a pool of one thread per core), shardpool (one worker per core), and
//! messaging_thread_pool 5 (one thread per core) hosting the same items.

mod common;

use common::mtp::{self, MtpMean, MtpSum};
use common::place;
use criterion::{BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;
use shardpool::{AddRequest, ThreadPool};
use shardpool_samples::{MeanRequest, Randoms, RandomsInit, SumRequest};
use std::hint::black_box;
use std::time::Duration;

const ITEMS: u64 = 1000;
const COUNTS: [usize; 2] = [10_000, 100];

#[derive(Clone, Copy)]
enum Op {
    Sum,
    Mean,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Sum => "sum",
            Op::Mean => "mean",
        }
    }

    fn apply(self, r: &Randoms) -> u128 {
        match self {
            Op::Sum => r.sum(),
            Op::Mean => r.mean(),
        }
    }
}

fn randoms_vs_rayon(c: &mut Criterion) {
    let workers = place::process_cores().len();
    let rayon_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .start_handler(|_| place::unpin_current())
        .build()
        .expect("build the rayon pool");
    let mut g = c.benchmark_group("randoms_vs_rayon");
    g.throughput(Throughput::Elements(ITEMS))
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20);
    for count in COUNTS {
        let local: Vec<Randoms> = (0..ITEMS).map(|id| Randoms::new(id, count)).collect();
        let sp = ThreadPool::<Randoms>::new(workers).expect("build the Randoms pool");
        sp.send_and_receive((0..ITEMS).map(|id| AddRequest::new(id, RandomsInit { count })))
            .expect("register")
            .for_each(|r| assert!(r.is_ok()));
        let mt = mtp::mtp_randoms_pool(workers, ITEMS, count);
        for op in [Op::Sum, Op::Mean] {
            let param = format!("{}/{count}", op.name());
            g.bench_with_input(BenchmarkId::new("sequential", &param), &op, |b, &op| {
                b.iter(|| local.iter().fold(0u128, |acc, r| acc ^ op.apply(r)))
            });
            g.bench_with_input(BenchmarkId::new("rayon", &param), &op, |b, &op| {
                b.iter(|| {
                    rayon_pool.install(|| local.par_iter().map(|r| op.apply(r)).reduce(|| 0, |a, b| a ^ b))
                })
            });
            g.bench_with_input(BenchmarkId::new("shardpool", &param), &op, |b, &op| {
                b.iter(|| match op {
                    Op::Sum => sp
                        .send_and_receive((0..ITEMS).map(SumRequest))
                        .expect("send")
                        .fold(0u128, |acc, r| acc ^ r.expect("sum").sum),
                    Op::Mean => sp
                        .send_and_receive((0..ITEMS).map(MeanRequest))
                        .expect("send")
                        .fold(0u128, |acc, r| acc ^ r.expect("mean").mean),
                })
            });
            g.bench_with_input(BenchmarkId::new("messaging_thread_pool", &param), &op, |b, &op| {
                b.iter(|| match op {
                    Op::Sum => mt
                        .send_and_receive((0..ITEMS).map(MtpSum))
                        .expect("send")
                        .fold(0u128, |a, r| a ^ r.result),
                    Op::Mean => mt
                        .send_and_receive((0..ITEMS).map(MtpMean))
                        .expect("send")
                        .fold(0u128, |a, r| a ^ r.result),
                })
            });
        }
        black_box(&local);
    }
    g.finish();
}

fn main() {
    place::on_driver(None, || {
        let mut c = Criterion::default().configure_from_args();
        randoms_vs_rayon(&mut c);
        c.final_summary();
    });
}
