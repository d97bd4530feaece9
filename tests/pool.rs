//! Behaviour of the pool through its public API: lifecycle, routing, order,
//! errors, shutdown, nesting.

mod common;

use common::*;
use shardpool::{
    AddRequest, BuildError, Error, PanicReport, Pinning, RemoveRequest, ThreadPool, ThreadPoolBuilder,
};
use shardpool_samples::{MeanRequest, Randoms, RandomsInit, SumRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

fn pool(workers: usize) -> ThreadPool<Node> {
    ThreadPool::<Node>::builder().workers(workers).pinning(Pinning::Off).build().unwrap()
}

fn add(pool: &ThreadPool<Node>, ids: impl IntoIterator<Item = u64>) {
    for r in pool
        .send_and_receive(ids.into_iter().map(|id| AddRequest::new(id, NodeInit::value(id as i64))))
        .unwrap()
    {
        r.unwrap();
    }
}

#[test]
fn pool_is_send_and_sync_even_though_items_are_not() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ThreadPool<Node>>();
    assert_send_sync::<Arc<ThreadPool<Node>>>();
}

#[test]
fn creates_the_requested_number_of_workers() {
    for n in [1, 2, 3, 5] {
        assert_eq!(pool(n).thread_count(), n);
    }
}

#[test]
fn default_worker_count_is_the_available_cores() {
    let p = ThreadPool::<Node>::builder().pinning(Pinning::Off).build().unwrap();
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len().max(1));
    assert_eq!(p.thread_count(), cores);
}

#[test]
fn state_is_kept_per_id_and_routed_by_id() {
    let p = pool(3);
    add(&p, 0..30);
    let after: Vec<i64> =
        p.send_and_receive((0..30).map(|id| AddTo(id, 1000))).unwrap().map(Result::unwrap).collect();
    assert_eq!(after, (0..30).map(|id| id + 1000).collect::<Vec<_>>());
    for id in 0..30 {
        assert_eq!(p.send_and_receive_once(Get(id)).unwrap(), id as i64 + 1000);
    }
    // Default placement is id % workers.
    let stats = p.stats();
    assert_eq!(stats.workers.iter().map(|w| w.items).collect::<Vec<_>>(), vec![10, 10, 10]);
}

#[test]
fn responses_come_back_in_request_order_across_workers() {
    let p = pool(2);
    add(&p, 0..50);
    let ids: Vec<u64> = (0..2000).map(|i| (i * 7919) % 50).collect();
    let got: Vec<i64> =
        p.send_and_receive(ids.iter().map(|&id| Get(id))).unwrap().map(Result::unwrap).collect();
    assert_eq!(got, ids.iter().map(|&id| id as i64).collect::<Vec<_>>());
}

#[test]
fn add_duplicate_keeps_the_original_and_remove_reports_existence() {
    let p = pool(2);
    p.send_and_receive_once(AddRequest::new(4, NodeInit::value(40))).unwrap();
    p.send_and_receive_once(AddTo(4, 2)).unwrap();
    assert_eq!(
        p.send_and_receive_once(AddRequest::new(4, NodeInit::value(0))).err(),
        Some(Error::DuplicateId { id: 4 })
    );
    assert_eq!(p.send_and_receive_once(Get(4)).unwrap(), 42, "the original item is untouched");
    let removed = p.send_and_receive_once(RemoveRequest(4)).unwrap();
    assert!(removed.existed);
    assert_eq!(removed.id, 4);
    assert!(!p.send_and_receive_once(RemoveRequest(4)).unwrap().existed);
    assert_eq!(p.send_and_receive_once(Get(4)).err(), Some(Error::UnknownId { id: 4 }));
    // The id can be reused after removal.
    p.send_and_receive_once(AddRequest::new(4, NodeInit::value(7))).unwrap();
    assert_eq!(p.send_and_receive_once(Get(4)).unwrap(), 7);
}

#[test]
fn unknown_id_fails_that_request_only() {
    let p = pool(2);
    add(&p, [1, 3]);
    let got: Vec<_> = p.send_and_receive([1, 2, 3, 5].map(Get)).unwrap().collect();
    assert_eq!(got, vec![Ok(1), Err(Error::UnknownId { id: 2 }), Ok(3), Err(Error::UnknownId { id: 5 })]);
    // The workers live on.
    assert_eq!(p.send_and_receive_once(Get(3)).unwrap(), 3);
}

#[test]
fn constructor_errors_and_panics_are_reported_and_add_nothing() {
    let p = pool(2);
    let fail = NodeInit { fail: true, ..NodeInit::default() };
    let panic = NodeInit { panic: true, ..NodeInit::default() };
    let got: Vec<_> = p
        .send_and_receive([
            AddRequest::new(1, fail),
            AddRequest::new(2, panic),
            AddRequest::new(3, NodeInit::value(3)),
        ])
        .unwrap()
        .collect();
    assert_eq!(got[0], Err(Error::InitFailed { id: 1, error: "node 1 refused".into() }));
    assert_eq!(got[1], Err(Error::Panicked { id: 2, message: "constructor of 2 panicked".into() }));
    assert_eq!(got[2].as_ref().unwrap().id, 3);
    assert_eq!(p.stats().items(), 1);
    assert_eq!(p.send_and_receive_once(Get(1)).err(), Some(Error::UnknownId { id: 1 }));
}

#[test]
fn a_panicking_item_is_removed_and_its_worker_and_neighbours_live_on() {
    let reports = Arc::new(Mutex::new(Vec::<PanicReport>::new()));
    let r2 = reports.clone();
    let p = ThreadPool::<Node>::builder()
        .workers(1)
        .pinning(Pinning::Off)
        .panic_handler(move |r| r2.lock().unwrap().push(r))
        .build()
        .unwrap();
    add(&p, [1, 2, 3]);
    let got: Vec<_> = p.send_and_receive([Get(1), Get(2), Get(3)]).unwrap().collect();
    assert_eq!(got, [Ok(1), Ok(2), Ok(3)]);
    assert_eq!(
        p.send_and_receive_once(Boom(2)),
        Err(Error::Panicked { id: 2, message: "node 2 exploded".into() })
    );
    assert_eq!(p.send_and_receive_once(Get(2)).err(), Some(Error::UnknownId { id: 2 }), "torn item is gone");
    assert_eq!(p.send_and_receive_once(Get(1)).unwrap(), 1);
    assert_eq!(p.send_and_receive_once(Get(3)).unwrap(), 3);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].worker, reports[0].id), (0, Some(2)));
    assert_eq!(reports[0].message, "node 2 exploded");
}

#[test]
fn a_panic_in_a_batch_costs_only_that_request() {
    let p = pool(2);
    add(&p, 0..6);
    let got: Vec<Result<i64, Error>> = p
        .send_and_receive((0..6).map(|id| if id == 3 { AddTo(id, i64::MAX) } else { AddTo(id, 1) }))
        .unwrap()
        .collect();
    // `AddTo` panics on overflow explicitly, in every build.
    assert_eq!(got[3], Err(Error::Panicked { id: 3, message: "node 3 overflowed".into() }));
    for (id, r) in got.iter().enumerate() {
        if id != 3 {
            assert_eq!(*r, Ok(id as i64 + 1));
        }
    }
    // The item that panicked is gone; its neighbours, on both workers, live on.
    assert_eq!(p.send_and_receive_once(Get(3)).err(), Some(Error::UnknownId { id: 3 }));
    let after: Vec<_> = p.send_and_receive([0, 1, 2, 4, 5].map(Get)).unwrap().collect();
    assert_eq!(after, [Ok(1), Ok(2), Ok(3), Ok(5), Ok(6)]);
}

#[test]
fn id_being_processed_names_the_item_inside_and_nothing_outside() {
    let p = pool(2);
    add(&p, [11, 12]);
    assert_eq!(p.send_and_receive_once(WhoAmI(11)).unwrap(), Some(11));
    assert_eq!(p.send_and_receive_once(WhoAmI(12)).unwrap(), Some(12));
    assert_eq!(shardpool::id_being_processed(), None);
}

#[test]
fn calling_an_item_on_ones_own_worker_runs_it_inline_and_calling_oneself_is_a_cycle() {
    let p = Arc::new(pool(2));
    let weak = Arc::downgrade(&p);
    let init = |v| NodeInit { value: v, pool: Some(weak.clone()), ..NodeInit::default() };
    for id in 0..4 {
        p.send_and_receive_once(AddRequest::new(id, init(id as i64 * 10))).unwrap();
    }
    // 0 and 2 live on worker 0; 1 and 3 on worker 1. Item 2 is run inline,
    // by worker 0, for item 0.
    assert_eq!(p.send_and_receive_once(Forward(0, 2)).unwrap(), Ok(20));
    // Item 0 calling itself waits on its own call: refused, naming it twice.
    let node = |id| shardpool::ChainLink { pool: std::any::type_name::<Node>(), id };
    assert_eq!(
        p.send_and_receive_once(Forward(0, 0)).unwrap(),
        Err(Error::Cycle { id: 0, chain: vec![node(0), node(0)] })
    );
    // Another worker of the same pool answers.
    assert_eq!(p.send_and_receive_once(Forward(0, 3)).unwrap(), Ok(30));
    assert_eq!(p.send_and_receive_once(Forward(1, 2)).unwrap(), Ok(20));
    // Every item is still there, and answers.
    for id in 0..4 {
        assert_eq!(p.send_and_receive_once(Get(id)).unwrap(), id as i64 * 10);
    }
}

struct Misplaced;
impl shardpool::PoolItem for Misplaced {
    type Init = ();
    type Api = ();
    type Response = ();
    type ThreadState = ();
    fn new_pool_item(_: u64, _: ()) -> Result<Self, shardpool::NewItemError> {
        Ok(Misplaced)
    }
    fn process_message(&mut self, _: ()) {}
    fn placement(id: u64, workers: usize) -> usize {
        if id == 0 {
            0
        } else {
            workers + id as usize
        }
    }
}

#[test]
fn out_of_range_placement_is_an_error_not_a_panic() {
    let p = ThreadPool::<Misplaced>::new(2).unwrap();
    assert_eq!(
        p.send_and_receive_once(AddRequest::new(1, ())).err(),
        Some(Error::BadPlacement { id: 1, worker: 3, workers: 2 })
    );
    let got: Vec<_> = p.send_and_receive([0, 5, 0].map(|id| AddRequest::new(id, ()))).unwrap().collect();
    assert!(got[0].is_ok());
    assert_eq!(got[1].clone().err(), Some(Error::BadPlacement { id: 5, worker: 7, workers: 2 }));
    assert_eq!(got[2].clone().err(), Some(Error::DuplicateId { id: 0 }));
}

#[test]
fn one_callers_requests_reach_an_item_in_order_through_tiny_rings() {
    let p = ThreadPool::<Node>::builder()
        .workers(2)
        .ring_capacity(4)
        .max_batch(3)
        .pinning(Pinning::Off)
        .build()
        .unwrap();
    add(&p, 0..4);
    let mut seq = 0u64;
    for round in 0..20 {
        // Batches far larger than the ring, interleaved with single calls.
        let n = 50 + round * 37;
        let reqs: Vec<Record> = (0..n).map(|i| Record(i % 4, seq + i)).collect();
        seq += n;
        for (i, r) in p.send_and_receive(reqs).unwrap().enumerate() {
            let (s, in_order, _) = r.unwrap();
            assert_eq!(s, seq - n + i as u64);
            assert!(in_order);
        }
        let (_, in_order, _) = p.send_and_receive_once(Record(round % 4, seq)).unwrap();
        assert!(in_order);
        seq += 1;
    }
    let total: usize = (0..4).map(|id| p.send_and_receive_once(Record(id, seq + id)).unwrap().2).sum();
    assert_eq!(total as u64, seq + 4);
}

#[test]
fn a_batch_of_100k_streams_through_a_small_ring() {
    let p = ThreadPool::<Node>::builder().workers(2).ring_capacity(8).pinning(Pinning::Off).build().unwrap();
    add(&p, 0..10);
    let mut n = 0u64;
    for (i, r) in p.send_and_receive((0..100_000u64).map(|i| Get(i % 10))).unwrap().enumerate() {
        assert_eq!(r.unwrap(), (i % 10) as i64);
        n += 1;
    }
    assert_eq!(n, 100_000);
}

#[test]
fn calls_nest_on_one_thread_even_with_full_rings() {
    let p = ThreadPool::<Node>::builder().workers(1).ring_capacity(2).pinning(Pinning::Off).build().unwrap();
    add(&p, 0..3);
    let mut outer = 0;
    for r in p.send_and_receive((0..20).map(|i| Get(i % 3))).unwrap() {
        assert_eq!(r.unwrap(), outer % 3);
        // While the outer batch has requests in flight, start others.
        assert_eq!(p.send_and_receive_once(Get(1)).unwrap(), 1);
        let inner: Vec<i64> =
            p.send_and_receive((0..7).map(|i| Get(i % 3))).unwrap().map(Result::unwrap).collect();
        assert_eq!(inner, (0..7).map(|i| i % 3).collect::<Vec<_>>());
        outer += 1;
    }
    assert_eq!(outer, 20);
}

#[test]
fn dropping_a_batch_early_waits_for_what_was_sent_and_loses_nothing() {
    const BATCH: u64 = 20_000;
    // Large rings, so that many requests are in flight when the batch is
    // dropped; a small fairness quantum, so that another caller is served
    // while they are.
    let p = Arc::new(
        ThreadPool::<Node>::builder()
            .workers(2)
            .ring_capacity(4096)
            .max_batch(16)
            .pinning(Pinning::Off)
            .build()
            .unwrap(),
    );
    // Each `Record` keeps its worker busy a while, so that much of the batch
    // is still to be processed when the batch is dropped.
    let init = NodeInit { record_work: Duration::from_micros(20), ..NodeInit::default() };
    for r in p.send_and_receive((0..4).map(|id| AddRequest::new(id, init.clone()))).unwrap() {
        r.unwrap();
    }
    // Request `i` records sequence number `i` in item `i % 4`.
    let mut it = p.send_and_receive((0..BATCH).map(|i| Record(i % 4, i))).unwrap();
    assert_eq!(it.next().unwrap(), Ok((0, true, 1)));
    drop(it);
    // The drop waited for every request sent: another thread (whose requests
    // are not ordered after ours) already sees all of them.
    let p2 = p.clone();
    let seen_elsewhere: Vec<Vec<u64>> =
        thread::spawn(move || (0..4).map(|id| p2.send_and_receive_once(Log(id)).unwrap()).collect())
            .join()
            .unwrap();
    let logs: Vec<Vec<u64>> = (0..4).map(|id| p.send_and_receive_once(Log(id)).unwrap()).collect();
    assert_eq!(
        seen_elsewhere.iter().map(Vec::len).collect::<Vec<_>>(),
        logs.iter().map(Vec::len).collect::<Vec<_>>(),
        "dropping the batch returned before what it sent was processed (requests per item)"
    );
    // What was sent is a prefix `0..n` of the batch, each request applied
    // exactly once, in order, to its own item; nothing after it was applied.
    for (id, log) in logs.iter().enumerate() {
        assert!(log.iter().all(|&seq| seq % 4 == id as u64), "item {id} got another item's request: {log:?}");
        assert!(log.windows(2).all(|w| w[0] < w[1]), "item {id}: out of order or applied twice: {log:?}");
    }
    let mut applied: Vec<u64> = logs.concat();
    applied.sort_unstable();
    let n = applied.len() as u64;
    assert!((1..=BATCH).contains(&n), "{n} requests applied");
    if let Some((i, seq)) = applied.iter().enumerate().find(|&(i, &seq)| seq != i as u64) {
        panic!("the {n} applied requests are not the prefix 0..{n}: sorted, position {i} holds {seq}");
    }
    // The caller's slots and ring are clean: a new batch works in order.
    let got: Vec<_> = p.send_and_receive((0..4).map(|id| Record(id, BATCH + id))).unwrap().collect();
    for (id, r) in got.into_iter().enumerate() {
        assert_eq!(r, Ok((BATCH + id as u64, true, logs[id].len() + 1)));
    }
}

#[test]
fn shutdown_is_graceful_idempotent_and_refuses_later_calls() {
    let before = SHUTDOWN_HOOKS.load(Ordering::SeqCst);
    let exits = Arc::new(AtomicUsize::new(0));
    let e2 = exits.clone();
    let p = ThreadPool::<Node>::builder()
        .workers(2)
        .pinning(Pinning::Off)
        .exit_handler(move |_| {
            e2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    add(&p, 1000..1010);
    p.shutdown().unwrap();
    assert!(p.is_shut_down());
    assert_eq!(exits.load(Ordering::SeqCst), 2, "workers joined");
    assert!(SHUTDOWN_HOOKS.load(Ordering::SeqCst) >= before + 10, "every item's shutdown hook ran");
    p.shutdown().unwrap();
    assert_eq!(p.send_and_receive_once(Get(1000)).err(), Some(Error::Shutdown));
    assert_eq!(
        p.send_and_receive([Get(1000)]).err().map(|e| e.to_string()),
        Some(Error::Shutdown.to_string())
    );
    // A thread that never called before is refused too.
    let p = Arc::new(p);
    let p2 = p.clone();
    let r = thread::spawn(move || p2.send_and_receive_once(Get(1000)).err()).join().unwrap();
    assert_eq!(r, Some(Error::Shutdown));
}

#[test]
fn drop_shuts_down_and_joins() {
    let exits = Arc::new(AtomicUsize::new(0));
    let e2 = exits.clone();
    let p = ThreadPool::<Node>::builder()
        .workers(3)
        .pinning(Pinning::Off)
        .exit_handler(move |_| {
            e2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    add(&p, 0..9);
    drop(p);
    assert_eq!(exits.load(Ordering::SeqCst), 3);
}

#[test]
fn shutdown_racing_with_callers_answers_or_refuses_every_request() {
    const ITEMS: u64 = 8;
    for round in 0..20 {
        let p = Arc::new(pool(2));
        // Each item leaves its final value here when the pool shuts down.
        let finals: FinalValues = Arc::default();
        for r in p
            .send_and_receive((0..ITEMS).map(|id| {
                AddRequest::new(
                    id,
                    NodeInit { value: id as i64, finals: Some(finals.clone()), ..NodeInit::default() },
                )
            }))
            .unwrap()
        {
            r.unwrap();
        }
        let start = Arc::new(Barrier::new(5));
        let callers: Vec<_> = (0..4u64)
            .map(|t| {
                let (p, start) = (p.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    let mut seen_shutdown = false;
                    // Answered `AddTo(id, 1)`s per id.
                    let mut answered = [0i64; ITEMS as usize];
                    for i in 0..400u64 {
                        let ids: Vec<u64> = if i % 2 == 0 {
                            vec![(t + i) % ITEMS]
                        } else {
                            (0..5).map(|k| (t + k) % ITEMS).collect()
                        };
                        let results: Vec<Result<i64, Error>> = if i % 2 == 0 {
                            vec![p.send_and_receive_once(AddTo(ids[0], 1))]
                        } else {
                            match p.send_and_receive(ids.iter().map(|&id| AddTo(id, 1))) {
                                Ok(it) => it.collect(),
                                Err(e) => vec![Err(e); ids.len()],
                            }
                        };
                        assert_eq!(results.len(), ids.len(), "a batch lost responses");
                        for (id, r) in ids.into_iter().zip(results) {
                            match r {
                                Ok(_) => {
                                    assert!(!seen_shutdown, "answered after a refusal on one thread");
                                    answered[id as usize] += 1;
                                }
                                Err(Error::Shutdown) => seen_shutdown = true,
                                Err(e) => panic!("unexpected error {e}"),
                            }
                        }
                    }
                    answered
                })
            })
            .collect();
        start.wait();
        if round % 2 == 1 {
            thread::yield_now();
        }
        p.shutdown().unwrap();
        let mut answered = [0i64; ITEMS as usize];
        for c in callers {
            for (total, n) in answered.iter_mut().zip(c.join().unwrap()) {
                *total += n;
            }
        }
        // Every answered add was applied, and no refused one: each item's
        // final value is its initial value plus its answered adds, exactly.
        let mut finals = finals.lock().unwrap().clone();
        finals.sort_unstable();
        let expected: Vec<(u64, i64)> =
            (0..ITEMS).map(|id| (id, id as i64 + answered[id as usize])).collect();
        assert_eq!(
            finals, expected,
            "round {round}: final values against answered adds (initial value = id)"
        );
    }
}

#[test]
fn a_caller_thread_that_panics_mid_batch_leaves_the_pool_whole() {
    let p = Arc::new(pool(2));
    add(&p, 0..4);
    let baseline = p.stats().callers;
    let p2 = p.clone();
    let r = thread::spawn(move || {
        let mut it = p2.send_and_receive((0..500).map(|i| AddTo(i % 4, 1))).unwrap();
        it.next();
        panic!("caller gives up with requests in flight");
    })
    .join();
    assert!(r.is_err());
    assert!(eventually(|| p.stats().callers == baseline), "the dead caller's rings were reclaimed");
    let got: Vec<_> = p.send_and_receive((0..4).map(Get)).unwrap().collect();
    assert!(got.iter().all(Result::is_ok));
}

#[test]
fn nested_pools_fan_out_from_items_to_a_child_pool() {
    use shardpool::{Message, NewItemError, PoolItem, Reply, Request};

    /// Each parent owns a share of a child pool of `Randoms`.
    struct Parent {
        child: Arc<ThreadPool<Randoms>>,
        ids: std::ops::Range<u64>,
    }
    struct Total(u64);
    impl PoolItem for Parent {
        type Init = Arc<ThreadPool<Randoms>>;
        type Api = Total;
        type Response = u128;
        type ThreadState = ();
        fn new_pool_item(id: u64, child: Self::Init) -> Result<Self, NewItemError> {
            let ids = id * 10..id * 10 + 10;
            for r in child
                .send_and_receive(ids.clone().map(|i| AddRequest::new(i, RandomsInit { count: 20 })))
                .unwrap()
            {
                r.map_err(|e| NewItemError::new(e.to_string()))?;
            }
            Ok(Parent { child, ids })
        }
        fn process_message(&mut self, _: Total) -> u128 {
            self.child
                .send_and_receive(self.ids.clone().map(SumRequest))
                .unwrap()
                .map(|r| r.unwrap().sum)
                .sum()
        }
    }
    impl Request<Parent> for Total {
        type Response = u128;
        fn into_message(self) -> Message<Parent> {
            Message::Call { id: self.0, request: self }
        }
        fn from_reply(reply: Reply<Parent>) -> Option<u128> {
            match reply {
                Reply::Response(t) => Some(t),
                _ => None,
            }
        }
    }

    let child = Arc::new(ThreadPool::<Randoms>::new(2).unwrap());
    let parents = ThreadPool::<Parent>::new(2).unwrap();
    for r in parents.send_and_receive((0..6).map(|id| AddRequest::new(id, child.clone()))).unwrap() {
        r.unwrap();
    }
    let totals: Vec<u128> =
        parents.send_and_receive((0..6).map(Total)).unwrap().map(Result::unwrap).collect();
    for (id, total) in totals.iter().enumerate() {
        let expect: u128 = (id as u64 * 10..id as u64 * 10 + 10).map(|i| Randoms::new(i, 20).sum()).sum();
        assert_eq!(*total, expect);
    }
    assert_eq!(child.stats().items(), 60);
    // Both workers of the parent pool registered as callers of the child.
    assert_eq!(child.stats().callers, 2);
    drop(parents);
    assert!(child.send_and_receive_once(MeanRequest(0)).is_ok());
}

#[test]
fn build_errors_are_typed_and_stop_started_workers() {
    assert!(matches!(ThreadPool::<Node>::new(0), Err(BuildError::ZeroWorkers)));
    assert!(matches!(
        ThreadPool::<Node>::builder().workers(1).ring_capacity(0).build(),
        Err(BuildError::ZeroCapacity)
    ));

    let exits = Arc::new(AtomicUsize::new(0));
    let e2 = exits.clone();
    let r = ThreadPool::<Node>::builder()
        .workers(3)
        .pinning(Pinning::Required)
        .cores(vec![0, 100_000])
        .exit_handler(move |_| {
            e2.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    match r {
        Err(BuildError::Pinning { worker: 1, core: Some(100_000) }) => {}
        other => panic!("expected a pinning error, got {other:?}"),
    }
    // Workers 0 and 2 started (pinned to core 0) and were stopped and joined.
    assert_eq!(exits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_worker_that_fails_to_start_fails_the_build() {
    struct Fragile;
    impl shardpool::PoolItem for Fragile {
        type Init = ();
        type Api = ();
        type Response = ();
        type ThreadState = ();
        fn new_pool_item(_: u64, _: ()) -> Result<Self, shardpool::NewItemError> {
            Ok(Fragile)
        }
        fn process_message(&mut self, _: ()) {}
        fn new_thread_state(worker: usize) {
            assert!(worker != 1, "worker 1 cannot start");
        }
    }
    let starts = Arc::new(AtomicUsize::new(0));
    let s2 = starts.clone();
    let r = ThreadPoolBuilder::<Fragile>::new().workers(2).start_handler(move |_| {
        s2.fetch_add(1, Ordering::SeqCst);
    });
    match r.build() {
        Err(BuildError::WorkerStart { worker: 1, message }) => assert_eq!(message, "worker 1 cannot start"),
        other => panic!("expected a start error, got {other:?}"),
    }
    assert_eq!(starts.load(Ordering::SeqCst), 2);
}

#[test]
fn workers_of_a_pool_built_on_a_pinned_thread_are_not_all_on_its_core() {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() < 2 {
        return; // Nothing to spread over.
    }
    let masks = Arc::new(Mutex::new(Vec::new()));
    let m2 = masks.clone();
    let first = cores[0];
    thread::spawn(move || {
        assert!(core_affinity::set_for_current(first));
        let m3 = m2.clone();
        let p = ThreadPool::<Node>::builder()
            .workers(2)
            .pinning(Pinning::Off)
            .start_handler(move |_| {
                let mine = core_affinity::get_core_ids().unwrap_or_default();
                m3.lock().unwrap().push(mine.len());
            })
            .build()
            .unwrap();
        drop(p);
        let p = ThreadPool::<Node>::builder().workers(2).pinning(Pinning::Required).build().unwrap();
        drop(p);
    })
    .join()
    .unwrap();
    let masks = masks.lock().unwrap();
    assert_eq!(masks.len(), 2);
    assert!(masks.iter().all(|&n| n == cores.len()), "unpinned workers see every core: {masks:?}");
}

#[test]
fn an_idle_pool_parks_every_worker_and_wakes_on_demand() {
    let p = pool(2);
    add(&p, 0..4);
    assert!(eventually(|| p.stats().all_parked()), "workers parked once idle: {:?}", p.stats());
    let parks = p.stats().workers.iter().map(|w| w.parks).sum::<u64>();
    assert!(parks >= 2);
    // A parked worker is woken by the next request.
    assert_eq!(p.send_and_receive_once(Get(3)).unwrap(), 3);
    assert!(p.stats().workers[1].wakeups >= 1);
    assert!(eventually(|| p.stats().all_parked()));
}

#[test]
fn statistics_count_requests_batches_and_callers() {
    let p = pool(1);
    add(&p, 0..10);
    let _: Vec<_> = p.send_and_receive((0..500).map(|i| Get(i % 10))).unwrap().collect();
    let s = p.stats();
    assert_eq!(s.requests(), 510);
    assert!(s.workers[0].batches >= 1 && s.workers[0].batches <= 510);
    assert!(s.workers[0].mean_batch() >= 1.0);
    assert_eq!(s.callers, 1);
    assert_eq!(s.workers[0].callers, 1);
    assert_eq!(s.items(), 10);
}

/// The first two cores this process may use, or `None` (the test is
/// skipped) if it may use only one.
#[cfg(target_os = "linux")]
fn two_cores() -> Option<(usize, usize)> {
    match core_ids()[..] {
        [c0, c1, ..] => Some((c0, c1)),
        _ => {
            eprintln!("skipped: needs a process allowed on two cores at least");
            None
        }
    }
}

/// `callers_on_core` of workers 0 and 1.
#[cfg(target_os = "linux")]
fn callers_on_core(pool: &ThreadPool<Node>) -> (u64, u64) {
    let s = pool.stats();
    (s.workers[0].callers_on_core, s.workers[1].callers_on_core)
}

/// A caller thread counts itself on the worker pinned to the core it runs on
/// (that worker, when idle, then gives the core away on every look for
/// work), moves its count when a wait in which it parked finds it on
/// another core, and takes the count away when it exits.
#[test]
#[cfg(target_os = "linux")] // where a thread can tell which core it runs on
fn a_caller_is_counted_on_the_core_it_shares_with_a_worker_until_it_moves_or_exits() {
    let Some((c0, c1)) = two_cores() else { return };
    // No caller spin: a call whose reply is not in at once parks.
    let pool = ThreadPool::<Node>::builder()
        .workers(2)
        .cores(vec![c0, c1])
        .caller_spin(Duration::ZERO)
        .build()
        .unwrap();
    let on_core = || callers_on_core(&pool);
    assert_eq!(on_core(), (0, 0));
    thread::scope(|s| {
        s.spawn(|| {
            pin_to(c0);
            // Item 1 lives on worker 1; each `Record` keeps it busy 200 ms,
            // so the call parks.
            let init = NodeInit { record_work: Duration::from_millis(200), ..NodeInit::default() };
            pool.send_and_receive_once(AddRequest::new(1, init)).unwrap();
            assert_eq!(on_core(), (1, 0), "registered on worker 0's core");
            pin_to(c1);
            assert_eq!(on_core(), (1, 0), "not looked again before a park");
            pool.send_and_receive_once(Record(1, 1)).unwrap();
            assert_eq!(on_core(), (0, 1), "moved to worker 1's core");
        })
        .join()
        .unwrap();
    });
    assert_eq!(on_core(), (0, 0), "an exited caller is not counted");
}

/// A caller on a core that several workers are pinned to counts on each of
/// them; a worker calling another worker of its pool on the same core counts
/// on that one, never on itself.
#[test]
#[cfg(target_os = "linux")] // where a thread can tell which core it runs on
fn every_worker_on_a_callers_core_counts_it_but_its_own_worker_does_not() {
    let Some((c0, c1)) = two_cores() else { return };
    let p = Arc::new(ThreadPool::<Node>::builder().workers(2).cores(vec![c0, c0]).build().unwrap());
    let on_core = || callers_on_core(&p);
    thread::scope(|s| {
        s.spawn(|| {
            pin_to(c0);
            p.send_and_receive_once(Get(0)).unwrap_err();
            assert_eq!(on_core(), (1, 1), "counted on both workers of its core");
        })
        .join()
        .unwrap();
    });
    assert_eq!(on_core(), (0, 0));
    thread::scope(|s| {
        s.spawn(|| {
            pin_to(c1);
            let init = NodeInit { pool: Some(Arc::downgrade(&p)), ..NodeInit::default() };
            for id in 0..2 {
                p.send_and_receive_once(AddRequest::new(id, init.clone())).unwrap();
            }
            assert_eq!(on_core(), (0, 0), "a caller on another core counts nowhere");
            // Item 0, on worker 0, calls item 1, on worker 1: worker 0's
            // thread, on core c0, counts on worker 1 alone.
            assert_eq!(p.send_and_receive_once(Forward(0, 1)).unwrap().unwrap(), 0);
            assert_eq!(on_core(), (0, 1));
        })
        .join()
        .unwrap();
    });
}
