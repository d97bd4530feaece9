//! What a batch sends: exactly the requests taken from its iterator, all of
//! them with `collect_all`, and only as far as it was driven otherwise.

use shardpool::{AddRequest, Error, Pinning, ThreadPool};
use shardpool_samples::{Randoms, RandomsInit, SumRequest};

fn pool(ring: usize) -> ThreadPool<Randoms> {
    ThreadPool::builder().workers(2).pinning(Pinning::Off).ring_capacity(ring).build().unwrap()
}

fn adds(ids: impl IntoIterator<Item = u64>) -> impl Iterator<Item = AddRequest<Randoms>> {
    ids.into_iter().map(|id| AddRequest::new(id, RandomsInit { count: 1 }))
}

/// 2,000 adds with a duplicate at position 2: `collect_all` sends and
/// applies all of them and reports the one failure.
#[test]
fn collect_all_sends_the_whole_batch_whatever_fails() {
    let pool = pool(8);
    let ids = (0..2000u64).map(|i| if i == 2 { 1 } else { i });
    let err = pool.send_and_receive(adds(ids)).unwrap().collect_all::<Vec<_>>().unwrap_err();
    assert_eq!((err.index, err.failed, err.error), (2, 1, Error::DuplicateId { id: 1 }));
    assert_eq!(pool.stats().items(), 1999);
    let ok =
        pool.send_and_receive((0..2000).filter(|&i| i != 2).map(SumRequest)).unwrap().collect_all::<Vec<_>>();
    assert_eq!(ok.unwrap().len(), 1999);
}

/// The short-circuiting collect stops at the first error; `sent` says
/// exactly how many requests left, and exactly those were applied.
#[test]
fn a_batch_dropped_early_has_applied_exactly_what_it_sent() {
    let pool = pool(8);
    let ids = (0..2000u64).map(|i| if i == 2 { 1 } else { i });
    let mut responses = pool.send_and_receive(adds(ids)).unwrap();
    let result: Result<Vec<_>, Error> = responses.by_ref().collect();
    assert_eq!(result.unwrap_err(), Error::DuplicateId { id: 1 });
    let sent = responses.sent();
    assert!((3..2000).contains(&sent), "sent {sent}: stopped early, after the duplicate");
    drop(responses);
    // Every request sent was applied (one of them the refused duplicate),
    // and none that was not.
    assert_eq!(pool.stats().items() as usize, sent - 1);
    let exists = |id| pool.send_and_receive_once(SumRequest(id)).is_ok();
    let last_sent = sent as u64 - 1; // ids are 0, 1, 1, 3, 4, ...: request k adds id k (k != 2)
    assert!(exists(last_sent));
    assert!(!exists(last_sent + 1));
}

/// A batch never driven sends nothing.
#[test]
fn a_batch_never_driven_sends_nothing() {
    let pool = pool(8);
    let responses = pool.send_and_receive(adds(0..10)).unwrap();
    assert_eq!(responses.sent(), 0);
    drop(responses);
    assert_eq!(pool.stats().items(), 0);
}
