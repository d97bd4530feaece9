//! Building a pool: worker count, pinning, rings, waiting, threads, handlers.

use crate::caller::set_current_worker;
use crate::error::{panic_message, BuildError};
use crate::item::PoolItem;
use crate::pool::{Config, PanicHandler, PanicReport, Shared, ThreadPool};
use crate::sync::affinity;
use crate::sync::atomic::Ordering;
use crate::sync::thread::{self, Builder, JoinHandle};
use crate::sync::{Arc, Condvar, Mutex};
use crate::trace::event;
use crate::worker::Worker;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Whether workers are pinned to cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pinning {
    /// Workers may run on any core the process may use (an inherited pin
    /// from the building thread is undone).
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
/// use shardpool::samples::Randoms;
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
    thread_name: Option<NameFn>,
    stack_size: Option<usize>,
    start_handler: Option<Handler>,
    exit_handler: Option<Handler>,
    panic_handler: Option<PanicHandler>,
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
            thread_name: None,
            stack_size: None,
            start_handler: None,
            exit_handler: None,
            panic_handler: None,
            _item: PhantomData,
        }
    }

    /// Number of workers (default: the cores the process may use).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Whether to pin workers to cores (default [`Pinning::BestEffort`]).
    pub fn pinning(mut self, pinning: Pinning) -> Self {
        self.pinning = pinning;
        self
    }

    /// The cores to pin workers to, worker `i` on `cores[i % cores.len()]`
    /// (default: the cores the process may use, whatever the building
    /// thread's own mask). Implies at least best-effort pinning.
    pub fn cores(mut self, cores: Vec<usize>) -> Self {
        self.cores = Some(cores);
        if self.pinning == Pinning::Off {
            self.pinning = Pinning::BestEffort;
        }
        self
    }

    /// Capacity of each caller thread's ring to each worker (default 256).
    /// A full ring makes a batch wait for its oldest response; it never
    /// deadlocks.
    pub fn ring_capacity(mut self, n: usize) -> Self {
        self.ring_capacity = n;
        self
    }

    /// Most requests a worker takes from one ring before serving the next
    /// caller (default 64): the fairness quantum.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// How long a caller spins on a response before parking (default 50 µs).
    /// The spin yields the core now and then, so it behaves when threads
    /// outnumber cores.
    pub fn caller_spin(mut self, d: Duration) -> Self {
        self.caller_spin = d;
        self
    }

    /// How long an idle worker spins before parking (default 50 µs).
    pub fn worker_spin(mut self, d: Duration) -> Self {
        self.worker_spin = d;
        self
    }

    /// Names worker `i` (default `shardpool-{i}`).
    pub fn thread_name(mut self, f: impl FnMut(usize) -> String + 'static) -> Self {
        self.thread_name = Some(Box::new(f));
        self
    }

    /// Stack size of the worker threads.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs on each worker as it starts (after pinning, before any item).
    pub fn start_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.start_handler = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs on each worker as it exits (after its items are dropped).
    pub fn exit_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.exit_handler = Some(std::sync::Arc::new(f));
        self
    }

    /// Sees every panic caught in user code on a worker (the caller still
    /// gets its [`Error::Panicked`](crate::Error::Panicked)).
    pub fn panic_handler(mut self, f: impl Fn(PanicReport) + Send + Sync + 'static) -> Self {
        self.panic_handler = Some(std::sync::Arc::new(f));
        self
    }

    /// Starts the workers and returns once every one of them is running
    /// (pinned, if asked, with its thread state built). On failure, the
    /// workers already started are stopped and joined.
    pub fn build(mut self) -> Result<ThreadPool<P>, BuildError> {
        let process_cores = affinity::process_cores();
        let n = self.workers.unwrap_or(process_cores.len());
        if n == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if self.ring_capacity == 0 || self.max_batch == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        let cores = self.cores.clone().unwrap_or_else(|| process_cores.clone());
        if self.pinning == Pinning::Required && cores.is_empty() {
            return Err(BuildError::Pinning { worker: 0, core: None });
        }
        let config = Config {
            ring_capacity: self.ring_capacity,
            max_batch: self.max_batch,
            window: self.ring_capacity.saturating_mul(n),
            caller_spin: self.caller_spin,
            worker_spin: self.worker_spin,
            panic_handler: self.panic_handler.clone(),
        };
        crate::sync::barrier::init();
        let shared = Arc::new(Shared::<P>::new(n, config));
        let startup = Arc::new(Startup { reports: Mutex::new(Vec::new()), cv: Condvar::new() });
        let mut joins: Vec<JoinHandle<()>> = Vec::with_capacity(n);
        let mut failure = None;
        for index in 0..n {
            let name = match &mut self.thread_name {
                Some(f) => f(index),
                None => format!("shardpool-{index}"),
            };
            let mut builder = Builder::new().name(name);
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            let plan = StartPlan {
                index,
                core: (!cores.is_empty() && self.pinning != Pinning::Off).then(|| cores[index % cores.len()]),
                pinning: self.pinning,
                process_cores: process_cores.clone(),
                start: self.start_handler.clone(),
                exit: self.exit_handler.clone(),
            };
            let (shared2, startup2) = (shared.clone(), startup.clone());
            match builder.spawn(move || worker_main(shared2, startup2, plan)) {
                Ok(j) => joins.push(j),
                Err(e) => {
                    failure = Some(BuildError::Spawn(e));
                    break;
                }
            }
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
                // Dropping the pool closes it and joins the started workers.
                drop(pool);
                Err(e)
            }
        }
    }
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
    process_cores: Vec<usize>,
    start: Option<Handler>,
    exit: Option<Handler>,
}

fn worker_main<P: PoolItem>(shared: Arc<Shared<P>>, startup: Arc<Startup>, plan: StartPlan) {
    let index = plan.index;
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
            affinity::allow_current(&plan.process_cores);
        }
        if let Some(h) = &plan.start {
            h(index);
        }
        Ok(P::new_thread_state(index))
    }));
    let state = match started {
        Ok(Ok(state)) => state,
        Ok(Err(e)) => return startup.report(Err(e)),
        Err(payload) => {
            let message = panic_message(&*payload);
            return startup.report(Err(BuildError::WorkerStart { worker: index, message }));
        }
    };
    startup.report(Ok(()));
    drop(startup);
    event!(debug, worker = index, core = ?plan.core, "worker started");
    Worker::new(shared, index, state).run();
    event!(debug, worker = index, "worker exited");
    if let Some(h) = &plan.exit {
        let _ = catch_unwind(AssertUnwindSafe(|| h(index)));
    }
}
