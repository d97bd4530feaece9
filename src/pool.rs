//! The pool: its shared state, and the handle users call.

use crate::builder::ThreadPoolBuilder;
use crate::caller::{self, decode, LaneIds, Registration, Responses};
use crate::doorbell::{Doorbell, CONTROL};
use crate::error::{BuildError, Error};
use crate::item::{PoolItem, Request};
use crate::stats::{PoolStats, WorkerCounters, WorkerStats};
use crate::sync::affinity;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::barrier;
use crate::sync::thread::JoinHandle;
use crate::sync::{Arc, CachePadded, Mutex, Spin};
use crate::trace::{event, span};
use std::fmt;
use std::time::Duration;

/// A panic caught in user code on a worker, as seen by the builder's
/// [`panic_handler`](crate::ThreadPoolBuilder::panic_handler).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PanicReport {
    /// The worker the panic happened on.
    pub worker: usize,
    /// The item whose code panicked, if any.
    pub id: Option<u64>,
    /// The panic's message.
    pub message: String,
}

pub(crate) type PanicHandler = std::sync::Arc<dyn Fn(PanicReport) + Send + Sync>;

/// `WorkerShared::core` of a worker that is not pinned.
pub(crate) const NOT_PINNED: usize = usize::MAX;

/// Settings fixed at build time.
pub(crate) struct Config {
    pub(crate) ring_capacity: usize,
    pub(crate) max_batch: usize,
    /// Most requests one batch call keeps in flight.
    pub(crate) window: usize,
    pub(crate) caller_spin: Duration,
    pub(crate) worker_spin: Duration,
    pub(crate) panic_handler: Option<PanicHandler>,
}

/// What a worker shares with callers.
pub(crate) struct WorkerShared<P: PoolItem> {
    pub(crate) doorbell: Doorbell,
    /// The core the worker is pinned to, or `NOT_PINNED`. Written once by
    /// the worker before it reports to `build` (whose mutex publishes it).
    pub(crate) core: AtomicUsize,
    pub(crate) registrations: Mutex<Vec<Registration<P>>>,
    pub(crate) counters: CachePadded<WorkerCounters>,
}

/// What the pool's handle, its workers and its callers share.
pub(crate) struct Shared<P: PoolItem> {
    pub(crate) id: u64,
    /// Set once, by shutdown; see the gate in `caller.rs`.
    pub(crate) closed: AtomicBool,
    pub(crate) workers: Box<[WorkerShared<P>]>,
    pub(crate) lane_ids: Arc<LaneIds>,
    pub(crate) config: Config,
}

impl<P: PoolItem> Shared<P> {
    pub(crate) fn new(workers: usize, config: Config) -> Self {
        Self {
            id: crate::sync::next_pool_id(),
            closed: AtomicBool::new(false),
            workers: (0..workers)
                .map(|_| WorkerShared {
                    doorbell: Doorbell::new(),
                    core: AtomicUsize::new(NOT_PINNED),
                    registrations: Mutex::new(Vec::new()),
                    counters: CachePadded::new(WorkerCounters::default()),
                })
                .collect(),
            lane_ids: Arc::new(LaneIds::new()),
            config,
        }
    }

    /// The worker that owns `id`, checked: in range, and not the calling
    /// worker itself.
    #[inline]
    pub(crate) fn route<Q: PoolItem>(&self, id: u64) -> Result<usize, Error> {
        let workers = self.workers.len();
        let worker = Q::placement(id, workers);
        if worker >= workers {
            return Err(Error::BadPlacement { id, worker, workers });
        }
        if caller::current_worker(self.id) == Some(worker) {
            return Err(Error::SameWorker { id, worker });
        }
        Ok(worker)
    }

    /// How a caller spins for a reply before parking. On a core of its own
    /// it spins for `caller_spin`; on the core of a worker it waits for (a
    /// single call), or of any worker (a batch, which keeps every worker
    /// busy), it spins by yielding, so that the worker gets the core at once.
    /// A pause-spin there would keep the worker off its core until the next
    /// yield, and parking would cost a context switch per reply.
    // NB: in the perf harness (`cargo run --release -p perf`), one caller's
    // round trips against 2 workers on 2 cores went from 131 k/s (a plain
    // spin) to ~750 k/s (many-callers table).
    #[inline]
    pub(crate) fn caller_spin(&self, waiting_for: Option<usize>) -> Spin {
        let budget = self.config.caller_spin;
        if budget.is_zero() {
            return Spin::NONE;
        }
        let Some(cpu) = affinity::current_cpu() else { return Spin::alone(budget) };
        let on_cpu = |w: &WorkerShared<P>| w.core.load(Ordering::Relaxed) == cpu;
        let shared = match waiting_for {
            Some(w) => on_cpu(&self.workers[w]),
            None => self.workers.iter().any(on_cpu),
        };
        if shared {
            Spin::sharing(budget)
        } else {
            Spin::alone(budget)
        }
    }

    /// Closes the pool and wakes every worker so it drains and exits.
    pub(crate) fn close(&self) -> bool {
        // The shutdown side of the gate in `caller.rs`: set `closed`, then the
        // heavy barrier, then ring (the workers' loads follow it through the
        // doorbell's Release/Acquire).
        let was = self.closed.swap(true, Ordering::Relaxed);
        barrier::heavy();
        for w in self.workers.iter() {
            w.doorbell.ring(CONTROL);
        }
        !was
    }
}

/// A fixed set of worker threads hosting items of type `P`.
///
/// Items are created, called and removed by message; each lives on the
/// worker that [`PoolItem::placement`] picks for its id. Any number of
/// threads may call the pool at once (it is `Send + Sync` even when `P` is
/// not): each calling thread gets its own rings to the workers on first use.
///
/// Dropping the pool shuts it down (see [`shutdown`](Self::shutdown)).
///
/// ```
/// use shardpool::samples::{Randoms, RandomsInit, SumRequest};
/// use shardpool::{AddRequest, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// pool.send_and_receive((0..100).map(|id| AddRequest::new(id, RandomsInit { count: 10 })))?
///     .collect::<Result<Vec<_>, _>>()?;
/// let sums: Vec<_> = pool.send_and_receive((0..100).map(SumRequest))?.collect::<Result<_, _>>()?;
/// assert_eq!(sums.len(), 100);
/// assert!(sums.iter().enumerate().all(|(i, s)| s.id == i as u64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ThreadPool<P: PoolItem> {
    shared: Arc<Shared<P>>,
    joins: Mutex<Vec<JoinHandle<()>>>,
}

impl<P: PoolItem> fmt::Debug for ThreadPool<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("workers", &self.shared.workers.len())
            .field("closed", &self.is_shut_down())
            .finish()
    }
}

impl<P: PoolItem> ThreadPool<P> {
    /// A pool with `workers` threads and default settings.
    ///
    /// ```
    /// use shardpool::{samples::Randoms, BuildError, ThreadPool};
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

    pub(crate) fn from_parts(shared: Arc<Shared<P>>, joins: Vec<JoinHandle<()>>) -> Self {
        Self { shared, joins: Mutex::new(joins) }
    }

    /// How many worker threads the pool has.
    pub fn thread_count(&self) -> usize {
        self.shared.workers.len()
    }

    /// Sends `requests` and yields their responses **in request order**.
    ///
    /// Requests are sent as the returned iterator is driven, a window of
    /// them ahead of the response being waited for, so a batch of any size
    /// streams through the bounded rings. Each response is its own `Result`:
    /// an unknown id or a panicking item fails that request alone.
    ///
    /// The outer `Result` fails only if the calling thread cannot register
    /// (the pool is shut down, or the thread is exiting).
    ///
    /// ```
    /// use shardpool::samples::{MeanRequest, Randoms, RandomsInit};
    /// use shardpool::{AddRequest, Error, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// pool.send_and_receive_once(AddRequest::new(1, RandomsInit { count: 4 }))?;
    /// let results: Vec<_> = pool.send_and_receive([1, 2, 1].map(MeanRequest))?.collect();
    /// assert!(results[0].is_ok());
    /// assert_eq!(results[1], Err(Error::UnknownId { id: 2 }));
    /// assert!(results[2].is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_and_receive<R, I>(&self, requests: I) -> Result<Responses<'_, P, R, I::IntoIter>, Error>
    where
        R: Request<P>,
        I: IntoIterator<Item = R>,
    {
        Responses::new(&self.shared, requests.into_iter())
    }

    /// Sends one request and waits for its response.
    ///
    /// ```
    /// use shardpool::samples::{Randoms, RandomsInit, SumRequest};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(1)?;
    /// pool.send_and_receive_once(AddRequest::new(9, RandomsInit { count: 3 }))?;
    /// let sum = pool.send_and_receive_once(SumRequest(9))?;
    /// assert_eq!(sum.id, 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_and_receive_once<R: Request<P>>(&self, request: R) -> Result<R::Response, Error> {
        let msg = request.into_message();
        let id = msg.id();
        span!(TRACE, "call", id);
        let worker = self.shared.route::<P>(id)?;
        let handle = caller::handle(&self.shared)?;
        let outcome = handle.call(worker, msg)?;
        decode::<P, R>(id, outcome)
    }

    /// Shuts the pool down: new calls fail with [`Error::Shutdown`], every
    /// request already sent is answered, each item's
    /// [`on_shutdown`](PoolItem::on_shutdown) runs and the item is dropped on
    /// its worker, and the workers are joined. Idempotent; a second caller
    /// waits for the first to finish.
    ///
    /// Called from one of the pool's own workers (which cannot join itself)
    /// it closes the pool and returns [`Error::ShutdownFromWorker`]; the
    /// workers then stop on their own.
    ///
    /// ```
    /// use shardpool::samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, Error, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(1)?;
    /// pool.shutdown()?;
    /// pool.shutdown()?; // idempotent
    /// assert_eq!(
    ///     pool.send_and_receive_once(AddRequest::new(1, RandomsInit { count: 1 })).err(),
    ///     Some(Error::Shutdown)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) -> Result<(), Error> {
        if self.shared.close() {
            event!(debug, pool = self.shared.id, "pool shutting down");
        }
        if (0..self.thread_count()).any(|w| caller::current_worker(self.shared.id) == Some(w)) {
            return Err(Error::ShutdownFromWorker);
        }
        let mut joins = self.joins.lock().unwrap_or_else(|e| e.into_inner());
        for j in joins.drain(..) {
            // A worker cannot panic outside `catch_unwind` short of a bug;
            // either way it is gone and there is nothing left to wait for.
            let _ = j.join();
        }
        Ok(())
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// A snapshot of the pool's statistics (cheap: a few relaxed loads per
    /// worker).
    ///
    /// ```
    /// use shardpool::samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// pool.send_and_receive((0..10).map(|id| AddRequest::new(id, RandomsInit { count: 1 })))?
    ///     .for_each(drop);
    /// let stats = pool.stats();
    /// assert_eq!(stats.items(), 10);
    /// assert_eq!(stats.callers, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            workers: self
                .shared
                .workers
                .iter()
                .enumerate()
                .map(|(index, w)| {
                    let c = &w.counters;
                    WorkerStats {
                        index,
                        items: c.items.load(Ordering::Relaxed),
                        requests: c.requests.load(Ordering::Relaxed),
                        batches: c.batches.load(Ordering::Relaxed),
                        parks: c.parks.load(Ordering::Relaxed),
                        wakeups: w.doorbell.wakeups(),
                        parked: w.doorbell.is_sleeping(),
                        callers: c.callers.load(Ordering::Relaxed),
                    }
                })
                .collect(),
            callers: self.shared.lane_ids.live(),
        }
    }
}

#[cfg(shardpool_loom)]
impl<P: PoolItem> ThreadPool<P> {
    /// The shared state, for `loom_api`.
    pub(crate) fn shared(&self) -> &Shared<P> {
        &self.shared
    }
}

impl<P: PoolItem> Drop for ThreadPool<P> {
    fn drop(&mut self) {
        // On one of its own workers the pool cannot join; the workers are
        // detached and stop on their own (see `shutdown`).
        let _ = self.shutdown();
    }
}
