//! [`IdProvider`]: fresh item ids for callers that do not pick their own.

use crate::sync::atomic::{AtomicU64, Ordering};
use std::fmt;
use std::ops::Range;

/// Hands out item ids, each once: a counter that any number of threads may
/// share (through an `Arc`, or a `static` reference).
///
/// Useful when several parts of a program add items to the same pool (the
/// parents of a nested pool creating their children, say) and must not
/// pick the same id twice.
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit};
/// use shardpool::{AddRequest, IdProvider, ThreadPool};
/// use std::sync::Arc;
///
/// let ids = Arc::new(IdProvider::new(100));
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// let handles: Vec<_> = (0..4)
///     .map(|_| {
///         let ids = Arc::clone(&ids);
///         std::thread::spawn(move || ids.next_id())
///     })
///     .collect();
/// let mut taken: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
/// for &id in &taken {
///     pool.send_and_receive_once(AddRequest::new(id, RandomsInit { count: 1 }))?;
/// }
/// taken.sort();
/// assert_eq!(taken, [100, 101, 102, 103]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct IdProvider {
    next: AtomicU64,
}

impl IdProvider {
    /// A provider whose first id is `first`.
    ///
    /// ```
    /// use shardpool::IdProvider;
    ///
    /// assert_eq!(IdProvider::new(7).next_id(), 7);
    /// ```
    pub fn new(first: u64) -> Self {
        Self { next: AtomicU64::new(first) }
    }

    /// A fresh id.
    ///
    /// Ids repeat only after 2^64 of them have been handed out (the counter
    /// wraps).
    ///
    /// ```
    /// use shardpool::IdProvider;
    ///
    /// let ids = IdProvider::default();
    /// assert_eq!((ids.next_id(), ids.next_id()), (0, 1));
    /// ```
    pub fn next_id(&self) -> u64 {
        // Relaxed: the counter orders nothing but itself, and each
        // fetch_add still returns a distinct value.
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// `count` fresh, consecutive ids in one step.
    ///
    /// ```
    /// use shardpool::IdProvider;
    ///
    /// let ids = IdProvider::new(10);
    /// assert_eq!(ids.next_ids(3), 10..13);
    /// assert_eq!(ids.next_id(), 13);
    /// ```
    pub fn next_ids(&self, count: u64) -> Range<u64> {
        // Relaxed, as in `next_id`.
        let first = self.next.fetch_add(count, Ordering::Relaxed);
        first..first.wrapping_add(count)
    }

    /// The id that [`next_id`](Self::next_id) would hand out now (another
    /// thread may take it first).
    ///
    /// ```
    /// use shardpool::IdProvider;
    ///
    /// let ids = IdProvider::new(5);
    /// assert_eq!(ids.peek(), 5);
    /// assert_eq!(ids.next_id(), 5);
    /// assert_eq!(ids.peek(), 6);
    /// ```
    pub fn peek(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

impl Default for IdProvider {
    /// A provider that starts at 0.
    fn default() -> Self {
        Self::new(0)
    }
}

impl fmt::Debug for IdProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdProvider").field("next", &self.peek()).finish()
    }
}
