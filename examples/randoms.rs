//! The `Randoms` sample end to end: create items, call them one by one and in
//! batches, remove one, and compare the cost of a message with doing the same
//! work inline.
//!
//! Run with `cargo run --release --example randoms`.

use shardpool::{AddRequest, Error, RemoveRequest, ThreadPool};
use shardpool_samples::{MeanRequest, Randoms, RandomsInit, SumRequest};
use std::hint::black_box;
use std::time::Instant;

const ITEMS: u64 = 1000;
const NUMBERS: usize = 100;
const ROUNDS: u32 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workers = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let pool = ThreadPool::<Randoms>::new(workers)?;
    println!("pool of {} workers", pool.thread_count());

    // Create the items: each is built on the worker that owns its id.
    let added = pool
        .send_and_receive((0..ITEMS).map(|id| AddRequest::new(id, RandomsInit { count: NUMBERS })))?
        .collect_all::<Vec<_>>()?;
    println!("added {} items with {NUMBERS} numbers each", added.len());

    // One request to every item, responses in request order.
    let sums = pool.send_and_receive((0..ITEMS).map(SumRequest))?.collect::<Result<Vec<_>, _>>()?;
    let total: u128 = sums.iter().map(|s| s.sum).sum();
    println!("sum over all items: {total}");

    // Errors are per request and typed; the worker and the batch live on.
    let mixed: Vec<_> = pool.send_and_receive([0, ITEMS + 5, 1].map(MeanRequest))?.collect();
    println!("mean of 0: {:?}", mixed[0].as_ref().map(|m| m.mean));
    println!("mean of {}: {}", ITEMS + 5, mixed[1].as_ref().unwrap_err());
    assert_eq!(mixed[1], Err(Error::UnknownId { id: ITEMS + 5 }));

    // Remove one item and put a new one in its place.
    assert!(pool.send_and_receive_once(RemoveRequest(1))?.existed);
    pool.send_and_receive_once(AddRequest::new(1, RandomsInit { count: NUMBERS }))?;

    // What a message costs, against doing the same work inline.
    let local: Vec<Randoms> = (0..ITEMS).map(|id| Randoms::new(id, NUMBERS)).collect();
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for r in &local {
            black_box(r.sum());
        }
    }
    let inline_ns = start.elapsed().as_nanos() as f64 / f64::from(ROUNDS) / ITEMS as f64;

    let start = Instant::now();
    for _ in 0..ROUNDS {
        for id in 0..ITEMS {
            black_box(pool.send_and_receive_once(SumRequest(id))?);
        }
    }
    let once_ns = start.elapsed().as_nanos() as f64 / f64::from(ROUNDS) / ITEMS as f64;

    let start = Instant::now();
    for _ in 0..ROUNDS {
        for s in pool.send_and_receive((0..ITEMS).map(SumRequest))? {
            black_box(s?);
        }
    }
    let batch_ns = start.elapsed().as_nanos() as f64 / f64::from(ROUNDS) / ITEMS as f64;

    println!("sum of {NUMBERS} numbers, per item:");
    println!("  inline on this thread:       {inline_ns:8.0} ns");
    println!("  one round trip per request:  {once_ns:8.0} ns");
    println!("  in batches of {ITEMS}:          {batch_ns:8.0} ns per element");
    let stats = pool.stats();
    println!(
        "workers processed {} requests, mean batch {:.1}",
        stats.requests(),
        stats.workers.iter().map(|w| w.mean_batch()).sum::<f64>() / stats.workers.len() as f64
    );
    pool.shutdown()?;
    println!("shut down cleanly");
    Ok(())
}
