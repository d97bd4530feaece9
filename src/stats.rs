//! Cheap per-pool statistics, kept by the workers with plain stores.

use crate::sync::atomic::{AtomicU64, Ordering};

/// Counters one worker keeps (single writer: the worker).
#[derive(Default)]
pub(crate) struct WorkerCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) items: AtomicU64,
    pub(crate) callers: AtomicU64,
    pub(crate) unanswered_errors: AtomicU64,
}

impl WorkerCounters {
    pub(crate) fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }
}

/// A snapshot of a pool's statistics; see
/// [`ThreadPool::stats`](crate::ThreadPool::stats).
///
/// # What a snapshot is guaranteed to include
///
/// The counters are read one by one with no lock, so a snapshot taken while
/// the pool is busy mixes moments. Two of them are exact with respect to
/// replies: a worker updates `items` and `requests` *before* it publishes a
/// reply, so once a thread has received a response, every snapshot it takes
/// afterwards counts that request (in `requests`) and its effect on the item
/// count (an add or remove, or an item dropped after a panic). The others
/// (`batches`, `parks`, `wakeups`, `parked`, `callers`) are approximate:
/// they may lag what has happened by a moment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolStats {
    /// One entry per worker, by index.
    pub workers: Vec<WorkerStats>,
    /// Caller threads registered with the pool whose lanes are not
    /// yet reclaimed.
    pub callers: usize,
}

impl PoolStats {
    /// Items alive in the whole pool.
    pub fn items(&self) -> u64 {
        self.workers.iter().map(|w| w.items).sum()
    }

    /// Requests processed by the whole pool.
    pub fn requests(&self) -> u64 {
        self.workers.iter().map(|w| w.requests).sum()
    }

    /// Whether every worker is parked (an idle pool burns no CPU).
    pub fn all_parked(&self) -> bool {
        self.workers.iter().all(|w| w.parked)
    }
}

/// One worker's statistics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's index.
    pub index: usize,
    /// Items alive on the worker (exact as of every reply received).
    pub items: u64,
    /// Requests processed (adds, removes and calls; exact as of every reply
    /// received).
    pub requests: u64,
    /// Batches drained (one per non-empty ring visit).
    pub batches: u64,
    /// Times the worker parked for lack of work.
    pub parks: u64,
    /// Times a caller had to unpark the worker.
    pub wakeups: u64,
    /// Whether the worker is parked right now.
    pub parked: bool,
    /// Caller threads whose rings the worker polls.
    pub callers: u64,
    /// The core the worker is pinned to; `None` when it is not pinned
    /// ([`Pinning::Off`](crate::Pinning::Off), or pinning failed under
    /// [`Pinning::BestEffort`](crate::Pinning::BestEffort)).
    pub core: Option<usize>,
    /// Caller threads that, when they last looked, were running on this
    /// worker's core: a thread looks as it registers, after a wait in which
    /// it parked, and every 256 waits. A thread counts once per level of
    /// nesting it calls from (a worker of another pool calling from a
    /// handler, say), and not on its own worker. While there are any, the
    /// worker, when idle, gives its core away on every look for work rather
    /// than now and then, so that a caller waiting on the same core is not
    /// kept waiting for it. Always 0 where the OS does not say which core a
    /// thread runs on (Linux does), or when the worker is not pinned.
    pub callers_on_core: u64,
    /// The worker thread's name.
    pub thread_name: String,
    /// Requests sent with [`send`](crate::ThreadPool::send) (no reply) that
    /// failed: an unknown id, a panicking item, a failed constructor. Each
    /// also went to the builder's
    /// [`error_handler`](crate::ThreadPoolBuilder::error_handler).
    pub send_errors: u64,
}

impl WorkerStats {
    /// Mean requests per drained batch (0 when none was drained).
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.requests as f64 / self.batches as f64
        }
    }
}
