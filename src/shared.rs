//! What a pool's handle, its workers and its callers share: the shutdown
//! gate and barrier, each worker's doorbell and registration queue, the
//! settings fixed at build, and the routing of an id to its worker.

use crate::cores::CoreClaim;
use crate::doorbell::{Doorbell, CONTROL};
use crate::error::Error;
use crate::gate::Gate;
use crate::item::PoolItem;
use crate::stats::WorkerCounters;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::barrier::Barrier;
use crate::sync::{Arc, CachePadded, Condvar, Mutex, Spin};
use crate::wire::{LaneIds, Registration};
use std::cell::Cell;
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

pub(crate) type ErrorHandler = std::sync::Arc<dyn Fn(Error) + Send + Sync>;

/// The longest a caller spins for a reply while threads outnumber cores.
const OVERSUBSCRIBED_SPIN: Duration = Duration::from_micros(5);

/// `WorkerShared::core` of a worker that is not pinned.
pub(crate) const NOT_PINNED: usize = usize::MAX;

/// A caller's core when it is not known (`CallerHandle::cpu`); no pinned
/// worker has it.
pub(crate) const UNKNOWN_CPU: usize = usize::MAX;

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
    /// Told the error of each request sent with `send` that failed.
    pub(crate) error_handler: Option<ErrorHandler>,
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
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Vec<bool> {
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
    /// The address of the worker thread's stack of frames (`chain.rs`), or
    /// 0. Written once by the worker before it reports to `build`.
    pub(crate) stack: AtomicUsize,
    /// How many callers' rings the worker found requests in on its last
    /// busy pass: a hint for how callers wait (`Shared::caller_spin`),
    /// written by the worker only when it changes.
    pub(crate) queued: AtomicUsize,
    /// How many caller handles last saw their thread on this worker's core
    /// (`CallerHandle::locate`): while any do, the idle worker yields the
    /// core on every look for work, so that such a caller gets its core
    /// back as soon as its reply is out. A hint, counted by the callers;
    /// nothing depends on it for correctness.
    pub(crate) sharers: AtomicUsize,
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
                    stack: AtomicUsize::new(0),
                    queued: AtomicUsize::new(0),
                    sharers: AtomicUsize::new(0),
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
        if current_worker(self.id) == Some(worker) {
            return Err(Error::SameWorker { id, worker });
        }
        Ok(worker)
    }

    /// Item `id` of this pool, as call chains name it (`chain.rs`).
    #[inline]
    pub(crate) fn node(&self, id: u64) -> crate::chain::Node {
        crate::chain::Node { pool: self.id, id, name: std::any::type_name::<P>() }
    }

    /// What a handler waiting for item `id` on worker `w` waits for, as a
    /// deadlock search follows it (`chain.rs`).
    #[inline]
    pub(crate) fn wait_for(&self, w: usize, id: u64) -> crate::chain::Wait {
        // Relaxed: written before the worker reported to `build`, whose
        // mutex published it before this pool was handed out.
        let addr = self.workers[w].stack.load(Ordering::Relaxed);
        // SAFETY: the worker stored there the address of its stack, or
        // nothing (0).
        crate::chain::Wait { target: self.node(id), host: unsafe { crate::chain::Stack::at(addr) } }
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

    /// Counts (`add`) or uncounts a caller handle on core `cpu` among the
    /// `sharers` of every worker pinned there but `me` (the handle's own
    /// thread, if it is a worker of this pool). Nothing for an unknown core.
    pub(crate) fn count_sharer(&self, cpu: usize, me: Option<usize>, add: bool) {
        if cpu == UNKNOWN_CPU {
            return;
        }
        for (i, w) in self.workers.iter().enumerate() {
            if w.core.load(Ordering::Relaxed) == cpu && me != Some(i) {
                // Relaxed: a hint for how the worker spins, not a hand-off.
                if add {
                    w.sharers.fetch_add(1, Ordering::Relaxed);
                } else {
                    w.sharers.fetch_sub(1, Ordering::Relaxed);
                }
            }
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

crate::sync::thread_local! {
    /// `(pool id, worker index)` when this thread is a pool worker.
    static CURRENT_WORKER: Cell<Option<(u64, usize)>> = const { Cell::new(None) };
}

/// Marks the calling thread as worker `index` of pool `pool_id`.
pub(crate) fn set_current_worker(pool_id: u64, index: usize) {
    CURRENT_WORKER.with(|c| c.set(Some((pool_id, index))));
}

/// The worker index of the calling thread in pool `pool_id`, if it is one.
#[inline]
pub(crate) fn current_worker(pool_id: u64) -> Option<usize> {
    match CURRENT_WORKER.try_with(Cell::get) {
        Ok(Some((p, w))) if p == pool_id => Some(w),
        _ => None,
    }
}
