//! Unit-testing an item that owns a child pool, without starting a thread.
//!
//! `RandomsBatch<S>` is generic over its child pool `S:
//! SenderAndReceiver<Randoms>`. In production `S` is a `ThreadPool`; here it
//! is a `SenderAndReceiverMock` scripted with the requests the batch should
//! send and the answers it gets. The batch is built and called directly, as
//! a plain value: no pool, no worker.
//!
//! The same checks run as `cargo test --test mock`; this example prints each
//! step. Run with `cargo run --example mocking`.

use shardpool::{AddRequest, AddResponse, IdProvider, RemoveRequest, RemoveResponse, SenderAndReceiverMock};
use shardpool_samples::{RandomsBatch, RandomsBatchInit, RandomsInit, SumRequest, SumResponse};
use std::sync::Arc;

fn main() {
    let add = |id| AddRequest::new(id, RandomsInit { count: 10 });
    let mock = Arc::new(
        SenderAndReceiverMock::new()
            .expect(add(100), AddResponse { id: 100 })
            .expect(add(101), AddResponse { id: 101 })
            .expect(SumRequest(100), SumResponse { id: 100, sum: 30 })
            .expect(SumRequest(101), SumResponse { id: 101, sum: 12 })
            .expect(RemoveRequest(100), RemoveResponse { id: 100, existed: true })
            .expect(RemoveRequest(101), RemoveResponse { id: 101, existed: true }),
    );
    println!("scripted {} requests", mock.remaining());

    let init = RandomsBatchInit {
        children: 2,
        numbers: 10,
        ids: Arc::new(IdProvider::new(100)),
        pool: Arc::clone(&mock),
        shutdown_reports: None,
    };
    let batch = RandomsBatch::new(7, init).expect("the mock lets both children be created");
    println!("built the batch directly; it created children {:?}", batch.children());

    let sum = batch.sum_of_sums().expect("the mock answers both sums");
    println!("sum of sums from the canned answers: {sum}");
    assert_eq!(sum, 42);

    drop(batch);
    println!("dropped the batch; it removed its children ({} requests in all)", mock.calls());

    mock.assert_complete();
    println!("every scripted request came, in order");
}
