//! The idle policies: a polling worker never parks, the others park once
//! requests stop, and no request is lost to a worker that woke itself early
//! (the adaptive policy's timed park) or never slept.

use shardpool::{AddRequest, Idle, Pinning, ThreadPool};
use shardpool_samples::{Randoms, RandomsInit, SumRequest};
use std::time::{Duration, Instant};

fn pool(idle: Idle, workers: usize) -> ThreadPool<Randoms> {
    let pool =
        ThreadPool::<Randoms>::builder().workers(workers).pinning(Pinning::Off).idle(idle).build().unwrap();
    pool.send_and_receive((0..8).map(|id| AddRequest::new(id, RandomsInit { count: 4 })))
        .unwrap()
        .collect_all::<Vec<_>>()
        .unwrap();
    pool
}

/// Waits, spinning, for `d` (the caller stays awake; only the workers idle).
fn pause(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Waits up to a minute for every worker to park; whether they did.
fn eventually_all_parked(pool: &ThreadPool<Randoms>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if pool.stats().all_parked() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn a_polling_worker_never_parks() {
    let pool = pool(Idle::Poll, 2);
    std::thread::sleep(Duration::from_millis(30));
    let stats = pool.stats();
    assert!(stats.workers.iter().all(|w| w.parks == 0 && !w.parked), "{stats:?}");
    assert_eq!(pool.send_and_receive_once(SumRequest(3)).unwrap().id, 3);
    pool.shutdown().unwrap();
}

#[test]
fn parking_and_adaptive_workers_park_once_requests_stop() {
    for idle in [Idle::Park, Idle::default(), Idle::Adaptive { cap: Duration::from_secs(1) }] {
        let pool = pool(idle, 2);
        // Teach the adaptive policy a regular pace, then stop.
        for i in 0..50 {
            pause(Duration::from_micros(500));
            pool.send_and_receive_once(SumRequest(i % 8)).unwrap();
        }
        assert!(eventually_all_parked(&pool), "{idle:?}: the workers never parked: {:?}", pool.stats());
        // And for good: after at most one more anticipated gap (well under
        // 50 ms at this pace), no worker wakes itself again.
        std::thread::sleep(Duration::from_millis(50));
        let parks = |p: &ThreadPool<Randoms>| p.stats().workers.iter().map(|w| w.parks).collect::<Vec<_>>();
        let settled = parks(&pool);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(parks(&pool), settled, "{idle:?}: an idle worker kept waking itself");
    }
}

/// Every call is answered whatever the pace: regular gaps (the worker
/// anticipates them and wakes itself, often just before or just after the
/// request), gaps that break the pattern (the worker wakes, spins, finds
/// nothing and parks until rung), and batches from several threads.
#[test]
fn no_request_is_lost_to_a_worker_that_woke_itself() {
    for idle in [Idle::default(), Idle::Adaptive { cap: Duration::from_millis(50) }, Idle::Park, Idle::Poll] {
        let pool = pool(idle, 2);
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let pool = &pool;
                s.spawn(move || {
                    let paces = [200u64, 700, 1500, 900, 3000, 150];
                    for (i, us) in paces.iter().cycle().take(120).enumerate() {
                        // Mostly regular within a run of the same pace.
                        let jitter = if i % 17 == 0 { 4 } else { 1 };
                        pause(Duration::from_micros(us * jitter / (1 + t)));
                        if i % 10 == 0 {
                            let ids: Vec<u64> = (0..8).collect();
                            let sums: Vec<_> = pool
                                .send_and_receive(ids.iter().copied().map(SumRequest))
                                .unwrap()
                                .collect::<Result<_, _>>()
                                .unwrap();
                            assert_eq!(sums.iter().map(|s| s.id).collect::<Vec<_>>(), ids);
                        } else {
                            let id = (i as u64 + t) % 8;
                            assert_eq!(pool.send_and_receive_once(SumRequest(id)).unwrap().id, id);
                        }
                    }
                });
            }
        });
        pool.shutdown().unwrap();
    }
}
