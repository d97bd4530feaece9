//! `RandomsBatch`: items of one pool that each own children in another pool
//! and fan work out to them (messaging_thread_pool's two-level sample).

use crate::{Randoms, RandomsInit, SumRequest};
use shardpool::{pool_item, AddRequest, Error, IdProvider, RemoveRequest, RemoveResponse, SenderAndReceiver};
use std::fmt;
use std::sync::{mpsc, Arc};

/// What a [`RandomsBatch`] is created from.
pub struct RandomsBatchInit<S> {
    /// How many [`Randoms`] children to create.
    pub children: usize,
    /// How many numbers each child holds.
    pub numbers: usize,
    /// Where the children's ids come from: one provider for every batch that
    /// shares the child pool.
    pub ids: Arc<IdProvider>,
    /// The child pool: one shared by all batches, or one per batch.
    pub pool: Arc<S>,
    /// Where the batch reports its children when its pool shuts down.
    pub shutdown_reports: Option<mpsc::Sender<BatchShutdown>>,
}

impl<S> fmt::Debug for RandomsBatchInit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RandomsBatchInit")
            .field("children", &self.children)
            .field("numbers", &self.numbers)
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}

/// What a [`RandomsBatch`] reports when its pool shuts down: each of its
/// children, removed from the child pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchShutdown {
    /// The batch's id.
    pub id: u64,
    /// The answer to the removal of each child, in the order they were
    /// created.
    pub children: Vec<Result<RemoveResponse, Error>>,
}

/// A batch of [`Randoms`] that live in a child pool: the batch creates them
/// when it is created, sends each a request when asked for the sum of their
/// sums, and removes them when it is removed or its pool shuts down.
///
/// The child pool is any [`SenderAndReceiver<Randoms>`]: a real pool, or a
/// [`SenderAndReceiverMock`](shardpool::SenderAndReceiverMock) in tests, where a
/// batch can be built and called directly, with no thread at all (see
/// `tests/mock.rs` and `examples/mocking.rs`).
///
/// ```
/// use shardpool_samples::{
///     BatchShutdown, ChildrenRequest, Randoms, RandomsBatch, RandomsBatchInit, SumOfSumsRequest, SumRequest,
/// };
/// use shardpool::{AddRequest, Error, IdProvider, ThreadPool};
/// use std::sync::{mpsc, Arc};
///
/// let children = Arc::new(ThreadPool::<Randoms>::new(2)?);
/// let batches = ThreadPool::<RandomsBatch<ThreadPool<Randoms>>>::new(2)?;
/// let ids = Arc::new(IdProvider::new(1000));
/// let (reports, reported) = mpsc::channel();
/// for id in 0..2 {
///     let init = RandomsBatchInit {
///         children: 3,
///         numbers: 10,
///         ids: Arc::clone(&ids),
///         pool: Arc::clone(&children),
///         shutdown_reports: Some(reports.clone()),
///     };
///     batches.send_and_receive_once(AddRequest::new(id, init))?;
/// }
/// let mine = batches.send_and_receive_once(ChildrenRequest(1))?.result;
/// let expected: u128 = mine.iter().map(|&c| Randoms::new(c, 10).sum()).sum();
/// assert_eq!(batches.send_and_receive_once(SumOfSumsRequest(1))?.result, Ok(expected));
///
/// batches.shutdown()?;
/// let mut shut: Vec<BatchShutdown> = reported.try_iter().collect();
/// shut.sort_by_key(|r| r.id);
/// assert_eq!(shut.len(), 2);
/// assert!(shut.iter().all(|r| r.children.iter().all(|c| c.as_ref().is_ok_and(|c| c.existed))));
/// // The children are gone from the child pool.
/// assert_eq!(children.send_and_receive_once(SumRequest(mine[0])), Err(Error::UnknownId { id: mine[0] }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RandomsBatch<S: SenderAndReceiver<Randoms>> {
    id: u64,
    children: Vec<u64>,
    pool: Arc<S>,
    shutdown_reports: Option<mpsc::Sender<BatchShutdown>>,
}

#[pool_item]
impl<S: SenderAndReceiver<Randoms> + Send + Sync + 'static> RandomsBatch<S> {
    /// Creates the batch and its children. Fails, leaving no child behind,
    /// if any child cannot be created.
    pub fn new(id: u64, init: RandomsBatchInit<S>) -> Result<Self, Error> {
        let RandomsBatchInit { children, numbers, ids, pool, shutdown_reports } = init;
        let adds =
            ids.next_ids(children as u64).map(|child| AddRequest::new(child, RandomsInit { count: numbers }));
        let mut batch = Self { id, children: Vec::with_capacity(children), pool, shutdown_reports };
        let mut failure = None;
        for added in batch.pool.send_and_receive(adds)? {
            match added {
                Ok(added) => batch.children.push(added.id),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        match failure {
            // Dropping the batch removes the children it did create.
            Some(e) => Err(e),
            None => Ok(batch),
        }
    }

    /// The sum of the sums of the batch's children, asked of all of them at
    /// once.
    #[messaging(SumOfSumsRequest, SumOfSumsResponse)]
    pub fn sum_of_sums(&self) -> Result<u128, Error> {
        self.pool
            .send_and_receive(self.children.iter().copied().map(SumRequest))?
            .map(|sum| sum.map(|s| s.sum))
            .sum()
    }

    /// The ids of the batch's children, in the order they were created.
    #[messaging(ChildrenRequest, ChildrenResponse)]
    pub fn children(&self) -> Vec<u64> {
        self.children.clone()
    }

    /// Removes the children and reports them.
    #[hook]
    fn on_shutdown(&mut self, _state: &mut Self::ThreadState) {
        let report = BatchShutdown { id: self.id, children: self.remove_children() };
        if let Some(reports) = &self.shutdown_reports {
            // The receiver may be gone; then nobody wants the report.
            let _ = reports.send(report);
        }
    }
}

impl<S: SenderAndReceiver<Randoms>> RandomsBatch<S> {
    /// Removes the children from the child pool (once).
    fn remove_children(&mut self) -> Vec<Result<RemoveResponse, Error>> {
        let children = std::mem::take(&mut self.children);
        let removed = match self.pool.send_and_receive(children.iter().copied().map(RemoveRequest)) {
            Ok(removed) => removed.collect(),
            Err(e) => children.iter().map(|_| Err(e.clone())).collect(),
        };
        removed
    }
}

impl<S: SenderAndReceiver<Randoms>> Drop for RandomsBatch<S> {
    /// A batch removed from its pool takes its children with it.
    fn drop(&mut self) {
        if !self.children.is_empty() {
            self.remove_children();
        }
    }
}
