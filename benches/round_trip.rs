//! `round_trip`: one caller, one pinned worker, one trivial request at a
//! time, answered before the next is sent.
//!
//! Subjects, all crossing the same two cores (caller on the last core,
//! worker on the first): the floor (one cache line bounced between the two
//! threads), a raw `rtrb` pair spinning on two rings, a crossbeam-channel
//! actor, messaging_thread_pool 5, and shardpool.

mod common;

use common::actor::ActorPool;
use common::cache_line::PingPong;
use common::rtrb_pair::RtrbPair;
use common::{echo, mtp, place};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    let worker = place::worker_core(0);

    // Each baseline's threads live only while it is measured: a spinning
    // partner would steal the core the next subject's worker is pinned to.
    {
        let (_partner, client) = PingPong::start(worker);
        g.bench_function("cache_line_floor", |b| b.iter(|| client.bounce()));
    }
    {
        let (_worker, mut client) = RtrbPair::start(worker, 256);
        let mut i = 0u64;
        g.bench_function("rtrb_pair", |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(client.call(i))
            })
        });
    }
    {
        let (_actors, clients) = ActorPool::start(1, 1, true);
        let client = &clients[0];
        g.bench_function("crossbeam_actor", |b| b.iter(|| black_box(client.call(black_box(7)))));
    }
    {
        let pool = mtp::mtp_echo_pool(1);
        g.bench_function("messaging_thread_pool", |b| {
            b.iter(|| black_box(mtp::mtp_ping(&pool, black_box(7))))
        });
    }
    {
        let pool = echo::echo_pool(1);
        g.bench_function("shardpool", |b| b.iter(|| black_box(echo::ping(&pool, black_box(7)))));
        // A different item each call, as the perf harness's round trip does.
        let mut id = 0u64;
        g.bench_function("shardpool_each_item", |b| {
            b.iter(|| {
                id = (id + 1) % echo::ITEMS;
                black_box(echo::ping(&pool, black_box(id)))
            })
        });
    }
    g.finish();
}

fn main() {
    place::on_driver(Some(place::caller_core()), || {
        let mut c = Criterion::default().configure_from_args();
        round_trip(&mut c);
        c.final_summary();
    });
}
