//! Building a pool: worker count, pinning, rings, waiting, threads, handlers.

use crate::cores::CoreClaim;
use crate::error::Error;
use crate::error::{take_panic_message, BuildError};
use crate::idle::Idle;
use crate::item::PoolItem;
use crate::pool::ThreadPool;
use crate::shared::{set_current_worker, Config, ErrorHandler, PanicHandler, PanicReport, Shared};
use crate::sync::affinity;
use crate::sync::atomic::Ordering;
use crate::sync::barrier::Barrier;
use crate::sync::thread::{self, Builder, JoinHandle};
use crate::sync::{Arc, Condvar, Mutex};
use crate::trace::event;
use crate::worker::Worker;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Whether workers are pinned to cores: each bound to one core of the set
/// [`ThreadPoolBuilder::cores`] chooses (by default, every core the process
/// may use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pinning {
    /// No worker is bound to one core: each may run on any core of the set
    /// (an inherited pin from the building thread is undone).
    Off,
    /// Pin each worker to one core; a worker that cannot be pinned runs
    /// unpinned.
    #[default]
    BestEffort,
    /// Pin each worker to one core, or fail the build.
    Required,
}

type Handler = std::sync::Arc<dyn Fn(usize) + Send + Sync>;
type NameFn = Box<dyn FnMut(usize) -> String>;

/// Configures and builds a [`ThreadPool`], in the style of rayon's
/// `ThreadPoolBuilder`.
///
/// ```
/// use shardpool_samples::Randoms;
/// use shardpool::{Pinning, ThreadPoolBuilder};
/// use std::time::Duration;
///
/// let pool = ThreadPoolBuilder::<Randoms>::new()
///     .workers(2)
///     .pinning(Pinning::Off)
///     .ring_capacity(64)
///     .caller_spin(Duration::from_micros(20))
///     .thread_name(|i| format!("randoms-{i}"))
///     .build()?;
/// assert_eq!(pool.thread_count(), 2);
/// # Ok::<(), shardpool::BuildError>(())
/// ```
pub struct ThreadPoolBuilder<P: PoolItem> {
    workers: Option<usize>,
    pinning: Pinning,
    cores: Option<Vec<usize>>,
    ring_capacity: usize,
    max_batch: usize,
    caller_spin: Duration,
    worker_spin: Duration,
    idle: Idle,
    thread_name: Option<NameFn>,
    stack_size: Option<usize>,
    start_handler: Option<Handler>,
    exit_handler: Option<Handler>,
    panic_handler: Option<PanicHandler>,
    error_handler: Option<ErrorHandler>,
    membarrier: bool,
    shutdown_timeout: Duration,
    _item: PhantomData<fn() -> P>,
}

impl<P: PoolItem> fmt::Debug for ThreadPoolBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("workers", &self.workers)
            .field("pinning", &self.pinning)
            .field("cores", &self.cores)
            .field("ring_capacity", &self.ring_capacity)
            .field("max_batch", &self.max_batch)
            .field("caller_spin", &self.caller_spin)
            .field("worker_spin", &self.worker_spin)
            .field("idle", &self.idle)
            .field("membarrier", &self.membarrier)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl<P: PoolItem> Default for ThreadPoolBuilder<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: PoolItem> ThreadPoolBuilder<P> {
    /// Default ring capacity (requests per caller thread and worker).
    pub const DEFAULT_RING_CAPACITY: usize = 256;
    /// Default most requests drained from one ring per pass.
    pub const DEFAULT_MAX_BATCH: usize = 64;
    /// Default time a caller spins on its response before parking.
    pub const DEFAULT_CALLER_SPIN: Duration = Duration::from_micros(50);
    /// Default time an idle worker spins before parking.
    pub const DEFAULT_WORKER_SPIN: Duration = Duration::from_micros(50);
    /// Default longest wait of `shutdown` and `Drop` for the workers.
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Most workers a pool may have.
    pub const MAX_WORKERS: usize = 4096;
    /// Most requests one ring may hold (see also [`MAX_RING_BYTES`](Self::MAX_RING_BYTES)).
    pub const MAX_RING_CAPACITY: usize = 1 << 16;
    /// Most bytes one lane's rings may take (capacity times the size of a
    /// request plus that of an outcome); a lane, a request ring and a reply
    /// ring, is allocated per caller thread and worker.
    pub const MAX_RING_BYTES: usize = 64 << 20;
    /// Most requests one batch keeps in flight, whatever the ring capacity
    /// and worker count (each takes a slot in the caller's in-flight table).
    const MAX_WINDOW: usize = 1 << 16;

    /// A builder with the defaults: one worker per core the process may use,
    /// best-effort pinning, and the `DEFAULT_*` settings.
    pub fn new() -> Self {
        Self {
            workers: None,
            pinning: Pinning::default(),
            cores: None,
            ring_capacity: Self::DEFAULT_RING_CAPACITY,
            max_batch: Self::DEFAULT_MAX_BATCH,
            caller_spin: Self::DEFAULT_CALLER_SPIN,
            worker_spin: Self::DEFAULT_WORKER_SPIN,
            idle: Idle::default(),
            thread_name: None,
            stack_size: None,
            start_handler: None,
            exit_handler: None,
            panic_handler: None,
            error_handler: None,
            membarrier: true,
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            _item: PhantomData,
        }
    }

    /// Number of workers (default: the cores the process may use).
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// let pool = ThreadPool::<Randoms>::builder().workers(3).build()?;
    /// assert_eq!(pool.thread_count(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Whether to pin workers to cores (default [`Pinning::BestEffort`]).
    /// Independent of [`cores`](Self::cores), in either order: `Off` with a
    /// core list lets every worker run on any core of the list.
    ///
    /// ```
    /// use shardpool::{Pinning, ThreadPool};
    /// use shardpool_samples::Randoms;
    ///
    /// let pool = ThreadPool::<Randoms>::builder().workers(2).pinning(Pinning::Off).build()?;
    /// // No worker is bound to a core.
    /// assert!(pool.stats().workers.iter().all(|w| w.core.is_none()));
    /// # Ok::<(), shardpool::BuildError>(())
    /// ```
    pub fn pinning(mut self, pinning: Pinning) -> Self {
        self.pinning = pinning;
        self
    }

    /// The cores the workers run on. Pinned (the default), worker `i` is
    /// bound to `cores[i % cores.len()]`; with [`Pinning::Off`] every
    /// worker may run on any of them. This setting never changes
    /// [`pinning`](Self::pinning), whatever the order of the two calls.
    ///
    /// Without it, each pinned worker takes the least-loaded core the
    /// process may use (whatever the building thread's own mask), counting
    /// the pinned workers of every live pool of the process, ties going to
    /// the lower core: a second pool starts on the cores the first left
    /// free. A pool's cores are given back when it is dropped; an explicit
    /// list is counted too.
    ///
    /// ```
    /// use shardpool::{Pinning, ThreadPool};
    /// use shardpool_samples::Randoms;
    ///
    /// // Both workers on core 0, each pinned there (best effort).
    /// let pinned = ThreadPool::<Randoms>::builder().workers(2).cores(vec![0]).build()?;
    /// assert!(pinned.stats().workers.iter().all(|w| w.core.is_none() || w.core == Some(0)));
    ///
    /// // Confined to core 0 but not pinned: `pinning(Off)` stays off.
    /// let floating = ThreadPool::<Randoms>::builder().pinning(Pinning::Off).cores(vec![0]).build()?;
    /// assert!(floating.stats().workers.iter().all(|w| w.core.is_none()));
    /// # Ok::<(), shardpool::BuildError>(())
    /// ```
    pub fn cores(mut self, cores: Vec<usize>) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Capacity of each caller thread's lane to each worker (default 256):
    /// the requests of one thread that may be in flight to one worker. A
    /// request whose reply does not come back in the lane's reply cells (a
    /// [`send`](crate::ThreadPool::send), an async call) takes two of the
    /// ring's cells, so about half as many of those fit. A full lane makes a
    /// batch wait for its oldest response, and a try-form return
    /// [`Error::Full`](crate::Error::Full); it never deadlocks.
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// // 4096 requests per caller thread and worker may be in flight.
    /// let pool = ThreadPool::<Randoms>::builder().workers(1).ring_capacity(4096).build()?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ring_capacity(mut self, n: usize) -> Self {
        self.ring_capacity = n;
        self
    }

    /// Most requests a worker takes from one ring before serving the next
    /// caller (default 64): the fairness quantum.
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// // Serve at most 8 requests of one caller before looking at the next.
    /// let pool = ThreadPool::<Randoms>::builder().workers(1).max_batch(8).build()?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// How long a caller spins on a response before parking (default 50 µs).
    /// The spin yields the core now and then, so it behaves when threads
    /// outnumber cores; when the callers queued on a worker (as the worker
    /// last saw them) and the workers outnumber the cores by more than one,
    /// a caller spins by yielding for at most 5 µs before it parks, leaving
    /// the cores to the workers. A caller whose waits for a worker's replies
    /// have outlasted this spin four times in a row spins only a sixteenth
    /// of it for that worker's replies (and the full spin one wait in
    /// sixteen), until one comes within the full spin again: replies that
    /// take longer than the spin are not worth the CPU of spinning for.
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// use std::time::Duration;
    ///
    /// // Callers that share cores with other work: park sooner.
    /// let pool = ThreadPool::<Randoms>::builder().caller_spin(Duration::from_micros(5)).build()?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn caller_spin(mut self, d: Duration) -> Self {
        self.caller_spin = d;
        self
    }

    /// How long an idle worker spins before parking (default 50 µs).
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// use std::time::Duration;
    ///
    /// // Spend less CPU between bursts, at the cost of a wake-up after 5 µs idle.
    /// let pool = ThreadPool::<Randoms>::builder().worker_spin(Duration::from_micros(5)).build()?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn worker_spin(mut self, d: Duration) -> Self {
        self.worker_spin = d;
        self
    }

    /// What an idle worker does after its spin (default
    /// [`Idle::Adaptive`]): park until rung, anticipate requests that come
    /// at regular gaps, or poll for ever. See [`Idle`] for what each costs.
    ///
    /// ```
    /// use shardpool::{Idle, ThreadPool};
    /// use shardpool_samples::Randoms;
    ///
    /// let pool = ThreadPool::<Randoms>::builder().workers(1).idle(Idle::Park).build()?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn idle(mut self, idle: Idle) -> Self {
        self.idle = idle;
        self
    }

    /// Whether the shutdown gate may use Linux's `membarrier` (default
    /// `true`): requests then pass a compiler fence instead of a full one,
    /// and shutdown pays one `membarrier` call. Turn it off in sandboxes
    /// whose seccomp policy kills a process that calls `membarrier`; the
    /// environment variable `SHARDPOOL_NO_MEMBARRIER=1` turns it off for
    /// every pool of the process. Elsewhere than Linux it has no effect.
    ///
    /// ```
    /// use shardpool_samples::Randoms;
    /// use shardpool::ThreadPool;
    ///
    /// let pool = ThreadPool::<Randoms>::builder().workers(1).membarrier(false).build()?;
    /// pool.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn membarrier(mut self, allowed: bool) -> Self {
        self.membarrier = allowed;
        self
    }

    /// Longest wait of [`ThreadPool::shutdown`] and of dropping the pool for
    /// the workers to finish (default 10 s). Workers still busy in user code
    /// then are left running; `shutdown` says so with
    /// [`Error::ShutdownTimedOut`](crate::Error::ShutdownTimedOut).
    /// `Duration::MAX` waits for ever.
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::<Randoms>::builder().shutdown_timeout(Duration::from_secs(1)).build()?;
    /// pool.shutdown()?; // nothing is stuck: returns at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Names worker `i` (default `{Type}-{i}`, the item's type name without
    /// its path or generic arguments: `Randoms-0`, `Randoms-1`, ..; a long
    /// type name is cut so that the whole fits the 15 bytes Linux keeps of a
    /// thread's name, index included: `ConnectionMan-0`). The name may not
    /// contain a NUL byte; a closure that panics or returns one fails the
    /// build with [`BuildError::ThreadName`].
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// let default = ThreadPool::<Randoms>::builder().workers(2).build()?;
    /// assert_eq!(default.stats().workers[1].thread_name, "Randoms-1");
    ///
    /// let named = ThreadPool::<Randoms>::builder().workers(1).thread_name(|i| format!("dice-{i}")).build()?;
    /// assert_eq!(named.stats().workers[0].thread_name, "dice-0");
    /// # Ok::<(), shardpool::BuildError>(())
    /// ```
    pub fn thread_name(mut self, f: impl FnMut(usize) -> String + 'static) -> Self {
        self.thread_name = Some(Box::new(f));
        self
    }

    /// Stack size of the worker threads.
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// // Items that recurse deeply.
    /// let pool = ThreadPool::<Randoms>::builder().workers(1).stack_size(16 << 20).build()?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs on each worker as it starts (after pinning, before any item).
    /// A panic in it fails the build with [`BuildError::WorkerStart`].
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&started);
    /// let pool = ThreadPool::<Randoms>::builder()
    ///     .workers(2)
    ///     .start_handler(move |_worker| {
    ///         seen.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()?;
    /// // `build` returns once every worker has started.
    /// assert_eq!(started.load(Ordering::SeqCst), 2);
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.start_handler = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs on each worker as it exits (after its items are dropped).
    /// A panic in it is caught and reported to the
    /// [`panic_handler`](Self::panic_handler).
    ///
    /// ```
    /// use shardpool::ThreadPool;
    /// use shardpool_samples::Randoms;
    ///
    /// use std::sync::mpsc;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let pool = ThreadPool::<Randoms>::builder()
    ///     .workers(2)
    ///     .exit_handler(move |worker| tx.lock().unwrap().send(worker).unwrap())
    ///     .build()?;
    /// pool.shutdown()?;
    /// let mut exited: Vec<usize> = rx.try_iter().collect();
    /// exited.sort();
    /// assert_eq!(exited, [0, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exit_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.exit_handler = Some(std::sync::Arc::new(f));
        self
    }

    /// Sees every panic caught in user code on a worker (the caller still
    /// gets its [`Error::Panicked`](crate::Error::Panicked)).
    /// It runs on the worker, before the caller gets its error.
    ///
    /// ```
    /// use shardpool::{pool_item, Error, PanicReport, ThreadPool};
    /// use std::sync::{Arc, Mutex};
    ///
    /// struct Fragile;
    ///
    /// #[pool_item]
    /// impl Fragile {
    ///     fn new(_id: u64) -> Self {
    ///         Fragile
    ///     }
    ///
    ///     #[messaging(BreakRequest, BreakResponse)]
    ///     fn break_it(&self) {
    ///         panic!("broken")
    ///     }
    /// }
    ///
    /// let reports = Arc::new(Mutex::new(Vec::<PanicReport>::new()));
    /// let sink = Arc::clone(&reports);
    /// let pool = ThreadPool::<Fragile>::builder()
    ///     .workers(1)
    ///     .panic_handler(move |report| sink.lock().unwrap().push(report))
    ///     .build()?;
    /// pool.send_and_receive_once(FragileInit(1))?;
    /// let err = pool.send_and_receive_once(BreakRequest(1)).unwrap_err();
    /// assert!(matches!(err, Error::Panicked { id: 1, .. }));
    /// let reports = reports.lock().unwrap();
    /// assert_eq!((reports[0].worker, reports[0].id, reports[0].message.as_str()), (0, Some(1), "broken"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn panic_handler(mut self, f: impl Fn(PanicReport) + Send + Sync + 'static) -> Self {
        self.panic_handler = Some(std::sync::Arc::new(f));
        self
    }

    /// Is told the error of every request sent with
    /// [`send`](crate::ThreadPool::send) (which has no reply to carry it)
    /// that failed: an unknown id, a panicking item (also reported to the
    /// [`panic_handler`](Self::panic_handler)), a failed constructor. It runs
    /// on the worker; each such error is also counted in
    /// [`WorkerStats::send_errors`](crate::WorkerStats::send_errors).
    ///
    /// ```
    /// use shardpool_samples::{Randoms, SumRequest};
    /// use shardpool::{Error, ThreadPool};
    /// use std::sync::mpsc;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let pool = ThreadPool::<Randoms>::builder()
    ///     .workers(1)
    ///     .error_handler(move |e| tx.lock().unwrap().send(e).unwrap())
    ///     .build()?;
    /// pool.send(SumRequest(3))?; // no item 3
    /// assert_eq!(rx.recv()?, Error::UnknownId { id: 3 });
    /// assert_eq!(pool.stats().workers[0].send_errors, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn error_handler(mut self, f: impl Fn(Error) + Send + Sync + 'static) -> Self {
        self.error_handler = Some(std::sync::Arc::new(f));
        self
    }

    /// Checks every setting; the worker count, the core list and the ring
    /// capacity's limits.
    fn validate(&self, n: usize) -> Result<(), BuildError> {
        let out = |setting, value, max| Err(BuildError::OutOfRange { setting, value, max });
        if n == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if self.ring_capacity == 0 || self.max_batch == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if n > Self::MAX_WORKERS {
            return out("workers", n, Self::MAX_WORKERS);
        }
        // A lane is a request ring and reply cells of the same capacity (a
        // request ring of one has two cells: `caller/mod.rs`, `register`).
        let lane = std::mem::size_of::<crate::wire::Payload<P>>()
            + crate::reply::cell_size::<crate::wire::Outcome<P>>();
        let max_ring = Self::MAX_RING_CAPACITY.min(Self::MAX_RING_BYTES / lane.max(1));
        if self.ring_capacity > max_ring {
            return out("ring_capacity", self.ring_capacity, max_ring);
        }
        Ok(())
    }

    /// Starts the workers and returns once every one of them is running
    /// (pinned, if asked, with its thread state built).
    ///
    /// Every setting is checked first, and a bad one is a typed
    /// [`BuildError`] that names it. On any failure (a setting, a thread
    /// name, a worker that cannot be spawned, pinned or started) the workers
    /// already started are stopped and joined before `build` returns.
    ///
    /// ```
    /// use shardpool_samples::Randoms;
    /// use shardpool::{BuildError, ThreadPool};
    ///
    /// let err = ThreadPool::<Randoms>::builder().ring_capacity(usize::MAX).build().unwrap_err();
    /// assert!(matches!(err, BuildError::OutOfRange { setting: "ring_capacity", .. }));
    /// ```
    pub fn build(mut self) -> Result<ThreadPool<P>, BuildError> {
        let process_cores = affinity::process_cores();
        let n = self.workers.unwrap_or(process_cores.len());
        self.validate(n)?;
        // The set the workers run on: pinned, one core of it each; not
        // pinned, all of it.
        let cores = self.cores.clone().unwrap_or_else(|| process_cores.clone());
        if self.pinning == Pinning::Required && cores.is_empty() {
            return Err(BuildError::Pinning { worker: 0, core: None });
        }
        // Which core each worker is pinned to (`cores.rs`): an explicit list
        // as given, otherwise the least-loaded cores of the process.
        let claim = match (self.pinning, &self.cores) {
            (Pinning::Off, _) => CoreClaim::none(),
            (_, Some(list)) if !list.is_empty() => CoreClaim::exactly(n, list),
            (_, Some(_)) => CoreClaim::none(),
            (_, None) => CoreClaim::least_loaded(n, &process_cores),
        };
        let config = Config {
            ring_capacity: self.ring_capacity,
            max_batch: self.max_batch,
            window: self.ring_capacity.saturating_mul(n).min(Self::MAX_WINDOW),
            caller_spin: self.caller_spin,
            worker_spin: self.worker_spin,
            idle: self.idle,
            cores: process_cores.len(),
            panic_handler: self.panic_handler.clone(),
            error_handler: self.error_handler.clone(),
            shutdown_timeout: self.shutdown_timeout,
        };
        let shared = Arc::new(Shared::<P>::new(n, config, Barrier::new(self.membarrier), claim));
        let startup = Arc::new(Startup { reports: Mutex::new(Vec::new()), cv: Condvar::new() });
        let mut joins: Vec<JoinHandle<()>> = Vec::with_capacity(n);
        let mut failure = None;
        for index in 0..n {
            let plan = StartPlan {
                index,
                core: shared.cores.core(index),
                pinning: self.pinning,
                allowed: if cores.is_empty() { process_cores.clone() } else { cores.clone() },
                start: self.start_handler.clone(),
                exit: self.exit_handler.clone(),
            };
            match self.spawn(index, plan, &shared, &startup) {
                Ok(j) => joins.push(j),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Workers never spawned have nothing to wait for, and no core.
        for index in joins.len()..n {
            shared.exits.mark(index);
            shared.cores.release(index);
        }
        // Wait for every started worker to report.
        let started = joins.len();
        {
            let mut reports = startup.reports.lock().unwrap_or_else(|e| e.into_inner());
            while reports.len() < started {
                reports = startup.cv.wait(reports).unwrap_or_else(|e| e.into_inner());
            }
            if failure.is_none() {
                failure = reports.drain(..).find_map(|r| r.err());
            }
        }
        let pool = ThreadPool::from_parts(shared, joins);
        match failure {
            None => Ok(pool),
            Some(e) => {
                pool.abandon();
                Err(e)
            }
        }
    }

    /// Names and spawns worker `index`. User code (the name closure) and the
    /// standard library's checks (a NUL in the name, a stack size it cannot
    /// round) run under `catch_unwind`, so a failure is an error, never a
    /// panic out of `build` with workers left parked.
    fn spawn(
        &mut self,
        index: usize,
        plan: StartPlan,
        shared: &Arc<Shared<P>>,
        startup: &Arc<Startup>,
    ) -> Result<JoinHandle<()>, BuildError> {
        let name = match &mut self.thread_name {
            Some(f) => {
                catch_unwind(AssertUnwindSafe(|| f(index))).map_err(|payload| BuildError::ThreadName {
                    worker: index,
                    message: format!("the thread_name closure panicked: {}", take_panic_message(payload)),
                })?
            }
            None => default_thread_name(short_type_name::<P>(), index),
        };
        if name.contains('\0') {
            return Err(BuildError::ThreadName {
                worker: index,
                message: format!("{name:?} contains a NUL byte"),
            });
        }
        let mut builder = Builder::new().name(name);
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        let (shared, startup) = (shared.clone(), startup.clone());
        match catch_unwind(AssertUnwindSafe(move || {
            builder.spawn(move || worker_main(shared, startup, plan))
        })) {
            Ok(Ok(j)) => Ok(j),
            Ok(Err(e)) => Err(BuildError::Spawn(e)),
            Err(payload) => Err(BuildError::Spawn(std::io::Error::other(take_panic_message(payload)))),
        }
    }
}

// The pool's constructors live here, beside the builder they use, so that
// `pool.rs` does not depend on this module (which depends on it).
impl<P: PoolItem> ThreadPool<P> {
    /// A pool with `workers` threads and default settings.
    ///
    /// ```
    /// use shardpool::{BuildError, ThreadPool};
    /// use shardpool_samples::Randoms;
    ///
    /// assert_eq!(ThreadPool::<Randoms>::new(2).unwrap().thread_count(), 2);
    /// assert!(matches!(ThreadPool::<Randoms>::new(0), Err(BuildError::ZeroWorkers)));
    /// ```
    pub fn new(workers: usize) -> Result<Self, BuildError> {
        ThreadPoolBuilder::new().workers(workers).build()
    }

    /// A builder for a pool with custom settings.
    pub fn builder() -> ThreadPoolBuilder<P> {
        ThreadPoolBuilder::new()
    }
}

/// Linux keeps this many bytes of a thread's name (16 with the NUL).
const OS_THREAD_NAME: usize = 15;

/// `{name}-{index}`, the name cut (at a character boundary) so that the
/// whole fits the OS's limit and tools like `top -H` still show the index.
fn default_thread_name(name: &str, index: usize) -> String {
    let suffix = format!("-{index}");
    let mut room = OS_THREAD_NAME.saturating_sub(suffix.len()).min(name.len());
    while !name.is_char_boundary(room) {
        room -= 1;
    }
    format!("{}{suffix}", &name[..room])
}

/// `P`'s type name without its module path or generic arguments:
/// `Randoms` for `shardpool_samples::randoms::Randoms`, `Cache` for
/// `app::Cache<alloc::string::String>`.
fn short_type_name<P>() -> &'static str {
    let full = std::any::type_name::<P>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

struct Startup {
    reports: Mutex<Vec<Result<(), BuildError>>>,
    cv: Condvar,
}

impl Startup {
    fn report(&self, r: Result<(), BuildError>) {
        self.reports.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        self.cv.notify_all();
    }
}

struct StartPlan {
    index: usize,
    core: Option<usize>,
    pinning: Pinning,
    /// The cores an unpinned worker may run on.
    allowed: Vec<usize>,
    start: Option<Handler>,
    exit: Option<Handler>,
}

fn worker_main<P: PoolItem>(shared: Arc<Shared<P>>, startup: Arc<Startup>, plan: StartPlan) {
    let index = plan.index;
    // However this thread ends, shutdown learns that it did.
    let _exit = ExitMark(&shared, index);
    set_current_worker(shared.id, index);
    shared.workers[index].doorbell.set_thread(thread::current());
    // Everything up to the report runs under `catch_unwind`: a worker that
    // dies before reporting would leave `build` waiting forever.
    let started = catch_unwind(AssertUnwindSafe(|| {
        let pinned = plan.core.filter(|&c| affinity::pin_current(c));
        if let Some(core) = pinned {
            shared.workers[index].core.store(core, Ordering::Relaxed);
        } else {
            if plan.pinning == Pinning::Required {
                return Err(BuildError::Pinning { worker: index, core: plan.core });
            }
            // Undo a pin inherited from the building thread.
            affinity::allow_current(&plan.allowed);
        }
        if matches!(shared.config.idle, Idle::Adaptive { .. }) {
            crate::idle::tighten_timer_slack();
        }
        if let Some(h) = &plan.start {
            h(index);
        }
        Ok(P::new_thread_state(index))
    }));
    // The thread's stack of frames (`chain.rs`), where callers can find it
    // before the pool is handed out (published by the report).
    let lease = crate::chain::Lease::take();
    shared.workers[index].stack.store(lease.stack().addr(), Ordering::Relaxed);
    let state = match started {
        Ok(Ok(state)) => state,
        Ok(Err(e)) => return startup.report(Err(e)),
        Err(payload) => {
            let message = take_panic_message(payload);
            return startup.report(Err(BuildError::WorkerStart { worker: index, message }));
        }
    };
    startup.report(Ok(()));
    drop(startup);
    event!(debug, worker = index, core = ?plan.core, "worker started");
    let panic_handler = shared.config.panic_handler.clone();
    Worker::new(shared.clone(), index, state, lease).run();
    event!(debug, worker = index, "worker exited");
    if let Some(h) = &plan.exit {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| h(index))) {
            crate::worker::report(&panic_handler, index, None, take_panic_message(payload));
        }
    }
}

/// Marks its worker as finished, and gives its core back, when dropped (on
/// every way out of `worker_main`, unwinding included).
struct ExitMark<'a, P: PoolItem>(&'a Shared<P>, usize);

impl<P: PoolItem> Drop for ExitMark<'_, P> {
    fn drop(&mut self) {
        self.0.cores.release(self.1);
        self.0.exits.mark(self.1);
    }
}

#[cfg(test)]
mod thread_name_tests {
    use super::default_thread_name;

    #[test]
    fn default_names_keep_the_index_within_fifteen_bytes() {
        assert_eq!(default_thread_name("Randoms", 3), "Randoms-3");
        assert_eq!(default_thread_name("ConnectionManager", 0), "ConnectionMan-0");
        assert_eq!(default_thread_name("ConnectionManager", 12), "ConnectionMa-12");
        // Never cut inside a character: "Ärger" is 6 bytes.
        assert_eq!(default_thread_name("ÄrgerÄrgerÄrger", 1), "ÄrgerÄrger-1");
        assert!(default_thread_name("x", 4095).len() <= 15);
    }
}
