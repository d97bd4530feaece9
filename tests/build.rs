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

/// Answers with what its worker thread sees of itself.
struct Introspect<T> {
    _tag: std::marker::PhantomData<T>,
}

#[shardpool::pool_item]
impl<T: Send + 'static> Introspect<T> {
    fn new(_id: u64) -> Self {
        Introspect { _tag: std::marker::PhantomData }
    }

    #[messaging(ThreadNameRequest, ThreadNameResponse)]
    fn thread_name(&self) -> Option<String> {
        std::thread::current().name().map(str::to_owned)
    }

    #[messaging(AllowedCoresRequest, AllowedCoresResponse)]
    fn allowed_cores(&self) -> Vec<usize> {
        core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
    }
}

/// Adds item `id` for each worker, placed by the default placement (id
/// modulo the worker count), and asks each `ask`.
fn ask_each_worker<R>(pool: &ThreadPool<Introspect<u8>>, ask: impl Fn(u64) -> R) -> Vec<R::Response>
where
    R: shardpool::Request<Introspect<u8>>,
{
    (0..pool.thread_count() as u64)
        .map(|id| {
            pool.send_and_receive_once(IntrospectInit(id)).unwrap();
            pool.send_and_receive_once(ask(id)).unwrap()
        })
        .collect()
}

#[test]
fn worker_threads_are_named_after_the_item_type_by_default() {
    let pool = ThreadPool::<Introspect<u8>>::builder().workers(3).pinning(Pinning::Off).build().unwrap();
    let expected = ["Introspect-0", "Introspect-1", "Introspect-2"];
    // The OS thread carries the name (no path, no generic arguments)...
    let seen: Vec<_> = ask_each_worker(&pool, ThreadNameRequest).into_iter().map(|r| r.result).collect();
    assert_eq!(seen, expected.map(|n| Some(n.to_owned())));
    // ...and the stats report it.
    let stats: Vec<_> = pool.stats().workers.into_iter().map(|w| w.thread_name).collect();
    assert_eq!(stats, expected);
}

#[test]
fn a_thread_name_closure_overrides_the_default() {
    let pool = builder().workers(2).thread_name(|i| format!("dice-{i}")).build().unwrap();
    let stats: Vec<_> = pool.stats().workers.into_iter().map(|w| w.thread_name).collect();
    assert_eq!(stats, ["dice-0", "dice-1"]);
    // The OS threads carry the names too.
    let introspect = ThreadPool::<Introspect<u8>>::builder()
        .workers(2)
        .pinning(Pinning::Off)
        .thread_name(|i| format!("dice-{i}"))
        .build()
        .unwrap();
    let seen: Vec<_> =
        ask_each_worker(&introspect, ThreadNameRequest).into_iter().map(|r| r.result).collect();
    assert_eq!(seen, [Some("dice-0".to_owned()), Some("dice-1".to_owned())]);
}

/// `pinning(Off)` and `cores(..)` are independent settings: in either order
/// the workers are not pinned, and they run on the listed cores only.
#[test]
fn pinning_off_stays_off_whatever_the_order_of_a_core_list() {
    let core = *core_affinity::get_core_ids().expect("this platform reports cores").first().unwrap();
    let core = core.id;
    for (order, b) in [
        ("off, then cores", ThreadPool::<Introspect<u8>>::builder().pinning(Pinning::Off).cores(vec![core])),
        ("cores, then off", ThreadPool::<Introspect<u8>>::builder().cores(vec![core]).pinning(Pinning::Off)),
    ] {
        let pool = b.workers(2).build().unwrap();
        let pinned: Vec<_> = pool.stats().workers.iter().map(|w| w.core).collect();
        assert_eq!(pinned, [None, None], "{order}: no worker is pinned");
        if cfg!(target_os = "linux") {
            for cores in ask_each_worker(&pool, AllowedCoresRequest) {
                assert_eq!(cores.result, [core], "{order}: the workers run on the listed core only");
            }
        }
    }
}

/// With pinning on (the default), the stats report each worker's core.
#[cfg(target_os = "linux")]
#[test]
fn pinned_workers_report_their_core() {
    let core = core_affinity::get_core_ids().expect("this platform reports cores")[0].id;
    let pool = ThreadPool::<Introspect<u8>>::builder().workers(2).cores(vec![core]).build().unwrap();
    let pinned: Vec<_> = pool.stats().workers.iter().map(|w| w.core).collect();
    assert_eq!(pinned, [Some(core), Some(core)]);
    for cores in ask_each_worker(&pool, AllowedCoresRequest) {
        assert_eq!(cores.result, [core]);
    }
}
