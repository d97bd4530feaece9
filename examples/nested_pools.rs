//! Nested pools, messaging_thread_pool's two-level sample: each
//! `RandomsBatch` in one pool owns a few `Randoms` in a second, shared pool
//! and fans its requests out to them. Ids for the children come from one
//! shared `IdProvider`. At shutdown each batch removes its children and
//! reports them.
//!
//! Run with `cargo run --example nested_pools`.

use shardpool::{AddRequest, Error, IdProvider, ThreadPool};
use shardpool_samples::{
    ChildrenRequest, Randoms, RandomsBatch, RandomsBatchInit, SumOfSumsRequest, SumRequest,
};
use std::sync::{mpsc, Arc};

const BATCHES: u64 = 4;
const CHILDREN: usize = 5;
const NUMBERS: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let children = Arc::new(ThreadPool::<Randoms>::new(2)?);
    let batches = ThreadPool::<RandomsBatch<ThreadPool<Randoms>>>::new(2)?;
    let ids = Arc::new(IdProvider::new(1000));
    let (reports, reported) = mpsc::channel();

    let adds = (0..BATCHES).map(|id| {
        let init = RandomsBatchInit {
            children: CHILDREN,
            numbers: NUMBERS,
            ids: Arc::clone(&ids),
            pool: Arc::clone(&children),
            shutdown_reports: Some(reports.clone()),
        };
        AddRequest::new(id, init)
    });
    batches.send_and_receive(adds)?.collect_all::<Vec<_>>()?;
    println!("created {BATCHES} batches of {CHILDREN} children each; next free child id: {}", ids.peek());

    // Each batch asks its children for their sums, from its own worker.
    for batch in 0..BATCHES {
        let mine = batches.send_and_receive_once(ChildrenRequest(batch))?.result;
        let sum = batches.send_and_receive_once(SumOfSumsRequest(batch))?.result?;
        println!("batch {batch}: children {mine:?}, sum of sums {sum}");
    }

    batches.shutdown()?;
    drop(reports);
    let mut shut: Vec<_> = reported.iter().collect();
    shut.sort_by_key(|r| r.id);
    for report in &shut {
        let removed = report.children.iter().filter(|c| c.as_ref().is_ok_and(|c| c.existed)).count();
        println!(
            "batch {} shut down and removed {removed} of its {} children",
            report.id,
            report.children.len()
        );
    }
    assert_eq!(shut.len() as u64, BATCHES);

    let first_child = 1000;
    assert_eq!(
        children.send_and_receive_once(SumRequest(first_child)),
        Err(Error::UnknownId { id: first_child })
    );
    println!("the child pool is empty again");
    Ok(())
}
