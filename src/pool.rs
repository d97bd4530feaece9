//! The pool: its shared state, and the handle users call.

use crate::builder::ThreadPoolBuilder;
use crate::caller::{self, decode, LaneIds, Registration, Responses};
use crate::cores::CoreClaim;
use crate::doorbell::{Doorbell, CONTROL};
use crate::error::{take_panic_message, BuildError, Error};
use crate::gate::Gate;
use crate::item::{PoolItem, Request};
use crate::stats::{PoolStats, WorkerCounters, WorkerStats};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::barrier::Barrier;
use crate::sync::thread::JoinHandle;
use crate::sync::{Arc, CachePadded, Condvar, Mutex, Spin};
use crate::trace::{event, span};
use std::fmt;
use std::time::{Duration, Instant};

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

/// The longest a caller spins for a reply while threads outnumber cores.
const OVERSUBSCRIBED_SPIN: Duration = Duration::from_micros(5);

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
    pub(crate) idle: crate::idle::Idle,
    /// How many cores the process may use (at build).
    pub(crate) cores: usize,
    pub(crate) panic_handler: Option<PanicHandler>,
    /// Longest wait of `Drop` (and of `shutdown`) for the workers to stop.
    pub(crate) shutdown_timeout: Duration,
}

/// Which workers have finished (run their exit handler, or failed to
/// start), so that shutdown can wait for them with a deadline.
pub(crate) struct Exits {
    done: Mutex<Vec<bool>>,
    cv: Condvar,
}

impl Exits {
    fn new(workers: usize) -> Self {
        Self { done: Mutex::new(vec![false; workers]), cv: Condvar::new() }
    }

    /// Worker `index` is about to end its thread.
    pub(crate) fn mark(&self, index: usize) {
        self.done.lock().unwrap_or_else(|e| e.into_inner())[index] = true;
        self.cv.notify_all();
    }

    /// Waits until every worker has finished or `deadline` passes; returns
    /// which workers have finished.
    fn wait(&self, deadline: Option<Instant>) -> Vec<bool> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !done.iter().all(|&d| d) {
            #[cfg(not(shardpool_loom))]
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                done = self.cv.wait_timeout(done, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            #[cfg(shardpool_loom)]
            let _ = deadline;
            done = self.cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
        done.clone()
    }
}

/// What a worker shares with callers.
pub(crate) struct WorkerShared<P: PoolItem> {
    pub(crate) doorbell: Doorbell,
    /// The core the worker is pinned to, or `NOT_PINNED`. Written once by
    /// the worker before it reports to `build` (whose mutex publishes it).
    pub(crate) core: AtomicUsize,
    /// How many callers' rings the worker found requests in on its last
    /// busy pass: a hint for how callers wait (`Shared::caller_spin`),
    /// written by the worker only when it changes.
    pub(crate) queued: AtomicUsize,
    pub(crate) registrations: Mutex<Vec<Registration<P>>>,
    pub(crate) counters: CachePadded<WorkerCounters>,
}

/// What the pool's handle, its workers and its callers share.
pub(crate) struct Shared<P: PoolItem> {
    pub(crate) id: u64,
    /// The shutdown gate (`src/gate/`).
    pub(crate) gate: Gate,
    /// The pool's barrier pair, shared by the gate and the doorbells' lazy
    /// announcements (`src/doorbell.rs`).
    pub(crate) barrier: Barrier,
    pub(crate) workers: Box<[WorkerShared<P>]>,
    pub(crate) exits: Exits,
    pub(crate) lane_ids: Arc<LaneIds>,
    pub(crate) config: Config,
    /// The cores the workers were given (`cores.rs`), handed back when the
    /// last of the pool's handle and its workers lets go of this state: a
    /// worker left running by a timed-out shutdown keeps its core counted.
    pub(crate) cores: CoreClaim,
}

impl<P: PoolItem> Shared<P> {
    pub(crate) fn new(workers: usize, config: Config, barrier: Barrier, cores: CoreClaim) -> Self {
        Self {
            id: crate::sync::next_pool_id(),
            gate: Gate::new(barrier),
            barrier,
            exits: Exits::new(workers),
            workers: (0..workers)
                .map(|_| WorkerShared {
                    doorbell: Doorbell::new(),
                    core: AtomicUsize::new(NOT_PINNED),
                    queued: AtomicUsize::new(0),
                    registrations: Mutex::new(Vec::new()),
                    counters: CachePadded::new(WorkerCounters::default()),
                })
                .collect(),
            lane_ids: Arc::new(LaneIds::new()),
            config,
            cores,
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
    ///
    /// `cpu` is the caller's core as far as it knows (the caller looks it up
    /// when it registers and after a wait whose spin ran out, not per call).
    #[inline]
    pub(crate) fn caller_spin(&self, waiting_for: Option<usize>, cpu: Option<usize>) -> Spin {
        let budget = self.config.caller_spin;
        if budget.is_zero() {
            return Spin::NONE;
        }
        // Callers queued on the workers, as they last saw it, and the
        // workers themselves outnumber the cores by more than one: spinning
        // callers would take the cores from the workers (a yield hands the
        // core to the next spinning caller, not to the worker), so wait by
        // yielding, briefly, then park. One thread more than the cores is
        // fine: a lone caller sharing its core with a worker hands it over
        // with each yield (below).
        let queued = match waiting_for {
            Some(w) => self.workers[w].queued.load(Ordering::Relaxed),
            None => self.workers.iter().map(|w| w.queued.load(Ordering::Relaxed)).max().unwrap_or(0),
        };
        if queued + self.workers.len() > self.config.cores + 1 {
            return Spin::sharing(budget.min(OVERSUBSCRIBED_SPIN));
        }
        let Some(cpu) = cpu else { return Spin::alone(budget) };
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

    /// Closes the pool and wakes every worker so it drains and exits
    /// (`src/gate/`: S1..S3, then S4 here). Returns whether this call closed
    /// it; fails if the gate could not be sealed.
    pub(crate) fn close(&self) -> Result<bool, Error> {
        let first = self.gate.close()?;
        for w in self.workers.iter() {
            w.doorbell.ring(CONTROL);
        }
        Ok(first)
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
/// # Ordering
///
/// - **One item runs one request at a time**, on its worker: handlers never
///   overlap, whoever sends.
/// - **Per calling thread, per item: first in, first out.** Requests one
///   thread sends to one item are handled in the order they are sent (they
///   share that thread's ring to the item's worker), across calls and
///   batches alike. A batch sends its requests as it is driven (a window
///   ahead of the response being read), so a call made while an earlier
///   batch is only partly driven may overtake that batch's unsent requests.
/// - **A batch's responses come back in request order**, whichever workers
///   answer first.
/// - **Between calling threads there is no order**: a worker serves the
///   rings of its callers in turn, so requests from two threads to one item
///   interleave in an unspecified way.
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
/// use shardpool::{AddRequest, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// pool.send_and_receive((0..100).map(|id| AddRequest::new(id, RandomsInit { count: 10 })))?
///     .collect_all::<Vec<_>>()?;
/// let sums: Vec<_> = pool.send_and_receive((0..100).map(SumRequest))?.collect::<Result<_, _>>()?;
/// assert_eq!(sums.len(), 100);
/// assert!(sums.iter().enumerate().all(|(i, s)| s.id == i as u64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ThreadPool<P: PoolItem> {
    shared: Arc<Shared<P>>,
    /// By worker index; `None` once joined.
    joins: Mutex<Vec<Option<JoinHandle<()>>>>,
    /// The worker threads' names, by index.
    names: Vec<String>,
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

    pub(crate) fn from_parts(shared: Arc<Shared<P>>, joins: Vec<JoinHandle<()>>) -> Self {
        let names = joins.iter().map(|j| j.thread().name().unwrap_or_default().to_owned()).collect();
        Self { shared, joins: Mutex::new(joins.into_iter().map(Some).collect()), names }
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
    /// What is sent when the iterator is dropped early, and how to send a
    /// whole batch whatever fails ([`Responses::collect_all`]), is set out
    /// on [`Responses`].
    ///
    /// ```
    /// use shardpool_samples::{MeanRequest, Randoms, RandomsInit};
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
    #[must_use = "requests are sent only as the responses are iterated"]
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
    /// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
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
    /// Waits at most the builder's
    /// [`shutdown_timeout`](crate::ThreadPoolBuilder::shutdown_timeout)
    /// (default 10 s); see [`shutdown_timeout`](Self::shutdown_timeout) for
    /// what happens to workers still busy then.
    ///
    /// Called from one of the pool's own workers (which cannot join itself)
    /// it closes the pool and returns [`Error::ShutdownFromWorker`]; the
    /// workers then stop on their own.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
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
        self.shutdown_timeout(self.shared.config.shutdown_timeout)
    }

    /// [`shutdown`](Self::shutdown), waiting at most `timeout` for the
    /// workers to finish.
    ///
    /// A worker still busy when the deadline passes is one stuck in user
    /// code (a handler, hook or `Drop` that blocks, or two items on
    /// different workers calling each other). The pool is closed all the
    /// same; the call returns [`Error::ShutdownTimedOut`] naming the stuck
    /// workers and leaves them running: each finishes its shutdown on its
    /// own if its user code ever returns. A later `shutdown` waits for them
    /// again; dropping the pool detaches them.
    ///
    /// ```
    /// use shardpool_samples::Randoms;
    /// use shardpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// pool.shutdown_timeout(Duration::from_secs(5))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), Error> {
        if self.shared.close()? {
            event!(debug, pool = self.shared.id, "pool shutting down");
        }
        if caller::current_worker(self.shared.id).is_some() {
            return Err(Error::ShutdownFromWorker);
        }
        let deadline = Instant::now().checked_add(timeout);
        // Wait before taking the join handles: a concurrent shutdown with a
        // longer deadline must not hold ours up.
        let done = self.shared.exits.wait(deadline);
        let mut joins = self.joins.lock().unwrap_or_else(|e| e.into_inner());
        let mut stuck = Vec::new();
        let mut died = None;
        for (index, (join, done)) in joins.iter_mut().zip(done).enumerate() {
            if !done {
                if join.is_some() {
                    stuck.push(index);
                }
                continue;
            }
            if let Some(j) = join.take() {
                // A worker has marked itself done: the thread is ending. It
                // cannot have panicked outside `catch_unwind` short of a bug
                // in this crate, but if it did, say so.
                if let Err(payload) = j.join() {
                    died.get_or_insert((index, take_panic_message(payload)));
                }
            }
        }
        if let Some((worker, message)) = died {
            Err(Error::WorkerDied { worker, message })
        } else if stuck.is_empty() {
            Ok(())
        } else {
            event!(error, pool = self.shared.id, ?stuck, "shutdown timed out on workers stuck in user code");
            Err(Error::ShutdownTimedOut { stuck })
        }
    }

    /// A build failed: stop and join the workers started so far, however
    /// long their exit takes (only the thread state's `Drop` and the exit
    /// handler remain). No caller has seen the pool, so the gate is sealed
    /// without its barrier, which cannot fail.
    pub(crate) fn abandon(self) {
        self.shared.gate.seal_unshared();
        for w in self.shared.workers.iter() {
            w.doorbell.ring(CONTROL);
        }
        self.shared.exits.wait(None);
        for j in self.joins.lock().unwrap_or_else(|e| e.into_inner()).iter_mut().filter_map(Option::take) {
            let _ = j.join();
        }
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.gate.is_closed()
    }

    /// A snapshot of the pool's statistics (cheap: a few relaxed loads per
    /// worker).
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
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
                        // Stored before the worker reported to `build`,
                        // which waited for that report under a lock.
                        core: Some(w.core.load(Ordering::Relaxed)).filter(|&c| c != NOT_PINNED),
                        thread_name: self.names.get(index).cloned().unwrap_or_default(),
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

/// Dropping the pool shuts it down as [`ThreadPool::shutdown`] does, waiting
/// at most the builder's
/// [`shutdown_timeout`](crate::ThreadPoolBuilder::shutdown_timeout) (default
/// 10 s) for the workers. Workers still stuck in user code then, or all of
/// them when the pool is dropped on one of its own workers, are detached and
/// stop on their own.
impl<P: PoolItem> Drop for ThreadPool<P> {
    fn drop(&mut self) {
        if let Err(Error::BarrierFailed { errno }) = self.shutdown() {
            // Nothing to return it to; the workers stay up, serving.
            eprintln!(
                "shardpool: shutdown could not seal the pool (membarrier failed, errno {errno}); \
                 its workers are left running"
            );
        }
    }
}
