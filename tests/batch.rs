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

/// Two batches on one thread, driven alternately, and single calls made
/// between their steps, all to the same two workers over rings of two: the
/// replies of one come back on the lanes ahead of the others' and are kept
/// for their owner. Every response is the right one, each batch in order.
#[test]
fn interleaved_batches_and_calls_on_one_thread_each_get_their_own_replies() {
    let pool = pool(2);
    pool.send_and_receive(adds(0..40)).unwrap().collect_all::<Vec<_>>().unwrap();
    let mut a = pool.send_and_receive((0..20).map(SumRequest)).unwrap();
    let mut b = pool.send_and_receive((20..40).rev().map(SumRequest)).unwrap();
    let (mut got_a, mut got_b, mut got_calls) = (Vec::new(), Vec::new(), Vec::new());
    for step in 0..20u64 {
        got_a.push(a.next().unwrap().unwrap().id);
        got_calls.push(pool.send_and_receive_once(SumRequest(step * 2)).unwrap().id);
        got_b.push(b.next().unwrap().unwrap().id);
    }
    assert!(a.next().is_none() && b.next().is_none());
    assert_eq!(got_a, (0..20).collect::<Vec<_>>());
    assert_eq!(got_b, (20..40).rev().collect::<Vec<_>>());
    assert_eq!(got_calls, (0..20).map(|s| s * 2).collect::<Vec<_>>());
}

/// A batch keeps a whole ring's worth of requests in flight to one worker
/// (ring of one, every id on worker 0 of one); a call to that worker made
/// between two of its steps has to wait for room on the lane, which the
/// batch's own replies free as the call takes them off the lane. It is
/// answered, and so is the batch, in order.
#[test]
fn a_call_made_while_a_batch_fills_the_lane_is_answered() {
    let pool =
        ThreadPool::<Randoms>::builder().workers(1).pinning(Pinning::Off).ring_capacity(1).build().unwrap();
    pool.send_and_receive(adds(0..8)).unwrap().collect_all::<Vec<_>>().unwrap();
    let batch = pool.send_and_receive((0..8).map(SumRequest)).unwrap();
    let mut ids = Vec::new();
    for r in batch {
        ids.push(r.unwrap().id);
        assert_eq!(pool.send_and_receive_once(SumRequest(7)).unwrap().id, 7);
    }
    assert_eq!(ids, (0..8).collect::<Vec<_>>());
}
