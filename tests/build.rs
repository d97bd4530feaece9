//! `build()`: every setting validated with a typed error, and a failed
//! build stops and joins the workers it started, whatever failed.

use shardpool::{BuildError, Pinning, ThreadPool, ThreadPoolBuilder};
use shardpool_samples::Randoms;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn builder() -> ThreadPoolBuilder<Randoms> {
    ThreadPool::<Randoms>::builder().pinning(Pinning::Off)
}

#[test]
fn a_worker_count_past_the_limit_is_a_typed_error() {
    let err = builder().workers(usize::MAX).build().unwrap_err();
    assert!(
        matches!(err, BuildError::OutOfRange { setting: "workers", value: usize::MAX, max }
            if max == ThreadPoolBuilder::<Randoms>::MAX_WORKERS),
        "{err:?}"
    );
    assert!(err.to_string().contains("workers"), "{err}");
}

#[test]
fn ring_capacities_past_the_limit_are_typed_errors_not_panics_at_the_first_call() {
    for capacity in [usize::MAX, 1 << 34, ThreadPoolBuilder::<Randoms>::MAX_RING_CAPACITY + 1] {
        let err = builder().workers(1).ring_capacity(capacity).build().unwrap_err();
        assert!(
            matches!(err, BuildError::OutOfRange { setting: "ring_capacity", value, max }
                if value == capacity && max <= ThreadPoolBuilder::<Randoms>::MAX_RING_CAPACITY),
            "{capacity}: {err:?}"
        );
    }
    // The limit itself builds and serves.
    let max = ThreadPoolBuilder::<Randoms>::MAX_RING_CAPACITY;
    let pool = builder().workers(1).ring_capacity(max).build().unwrap();
    let added = pool
        .send_and_receive_once(shardpool::AddRequest::new(1, shardpool_samples::RandomsInit { count: 1 }));
    assert_eq!(added.unwrap().id, 1);
}

/// A builder for 3 workers whose exit handler counts exits.
fn counted(exits: &Arc<AtomicUsize>) -> ThreadPoolBuilder<Randoms> {
    let exits = exits.clone();
    builder().workers(3).exit_handler(move |_| {
        exits.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn a_panicking_thread_name_closure_fails_the_build_and_joins_the_started_workers() {
    let exits = Arc::new(AtomicUsize::new(0));
    let err = counted(&exits)
        .thread_name(|i| if i == 2 { panic!("no name for {i}") } else { format!("named-{i}") })
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::ThreadName { worker: 2, message } if message.contains("no name for 2")),
        "{err:?}"
    );
    // Workers 0 and 1 were started, then stopped and joined before `build` returned.
    assert_eq!(exits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_nul_in_a_thread_name_fails_the_build_and_joins_the_started_workers() {
    let exits = Arc::new(AtomicUsize::new(0));
    let err = counted(&exits)
        .thread_name(|i| if i == 1 { "bad\0name".to_owned() } else { format!("ok-{i}") })
        .build();
    assert!(matches!(err, Err(BuildError::ThreadName { worker: 1, .. })), "{err:?}");
    assert_eq!(exits.load(Ordering::SeqCst), 1);
}

/// Thread states dropped (worker exits) in the failed build below.
static STATES_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A thread state whose drop takes a while, and worker 1 cannot build one.
#[derive(Default)]
struct SlowState;

impl Drop for SlowState {
    fn drop(&mut self) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        STATES_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

struct NoStateForOne;

impl shardpool::PoolItem for NoStateForOne {
    type Init = ();
    type Api = ();
    type Response = ();
    type ThreadState = SlowState;
    fn new_pool_item(_: u64, _: ()) -> Result<Self, shardpool::NewItemError> {
        Ok(NoStateForOne)
    }
    fn process_message(&mut self, _: ()) {}
    fn new_thread_state(worker: usize) -> SlowState {
        assert_ne!(worker, 1, "no state for worker 1");
        SlowState
    }
}

/// The shutdown timeout bounds waits for workers stuck in user code, not
/// the joining of a failed build: the started workers are joined whatever
/// the timeout, their thread state dropped before `build` returns.
#[test]
fn a_failed_build_joins_its_started_workers_whatever_the_shutdown_timeout() {
    let err = ThreadPool::<NoStateForOne>::builder()
        .workers(2)
        .pinning(Pinning::Off)
        .shutdown_timeout(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::WorkerStart { worker: 1, .. }), "{err:?}");
    assert_eq!(
        STATES_DROPPED.load(Ordering::SeqCst),
        1,
        "worker 0 was stopped and joined before build returned"
    );
}
