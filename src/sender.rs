//! [`SenderAndReceiver`]: what code that talks to a pool can be written
//! against, so that a test can hand it a [`SenderAndReceiverMock`] instead
//! of a [`ThreadPool`].
//!
//! [`SenderAndReceiverMock`]: crate::SenderAndReceiverMock

use crate::error::Error;
use crate::item::{PoolItem, Request};
use crate::pool::ThreadPool;
use std::sync::Arc;

/// Sends typed requests to the items of a pool and yields their responses.
///
/// [`ThreadPool`] implements it, and so does the
/// [`SenderAndReceiverMock`](crate::SenderAndReceiverMock) of tests; code
/// that owns or shares a pool (a parent item holding its child pool, a
/// service in front of one) takes any `S: SenderAndReceiver<P>` and is then
/// testable without threads.
///
/// The methods mirror [`ThreadPool::send_and_receive`] and
/// [`ThreadPool::send_and_receive_once`], so code moves between the two
/// unchanged: responses come **in request order**, each its own `Result`,
/// and the outer `Result` fails only if nothing could be sent at all.
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
/// use shardpool::{AddRequest, Error, SenderAndReceiver, ThreadPool};
///
/// /// The total of the sums of `ids`, from whatever pool it is given.
/// fn total(pool: &impl SenderAndReceiver<Randoms>, ids: &[u64]) -> Result<u128, Error> {
///     pool.send_and_receive(ids.iter().copied().map(SumRequest))?
///         .map(|sum| sum.map(|s| s.sum))
///         .sum()
/// }
///
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// pool.send_and_receive((0..4).map(|id| AddRequest::new(id, RandomsInit { count: 3 })))?
///     .collect_all::<Vec<_>>()?;
/// assert_eq!(total(&pool, &[0, 1, 2, 3])?, (0..4).map(|id| Randoms::new(id, 3).sum()).sum());
/// assert_eq!(total(&pool, &[9]), Err(Error::UnknownId { id: 9 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SenderAndReceiver<P: PoolItem> {
    /// Sends `requests` and yields their responses in request order. See
    /// [`ThreadPool::send_and_receive`].
    fn send_and_receive<R, I>(
        &self,
        requests: I,
    ) -> Result<impl Iterator<Item = Result<R::Response, Error>>, Error>
    where
        R: Request<P>,
        I: IntoIterator<Item = R>;

    /// Sends one request and waits for its response. See
    /// [`ThreadPool::send_and_receive_once`].
    fn send_and_receive_once<R: Request<P>>(&self, request: R) -> Result<R::Response, Error>;
}

/// The real thing: requests go to the pool's workers.
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit};
/// use shardpool::{AddRequest, SenderAndReceiver, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::new(1)?;
/// let added = SenderAndReceiver::send_and_receive_once(&pool, AddRequest::new(4, RandomsInit { count: 1 }))?;
/// assert_eq!(added.id, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<P: PoolItem> SenderAndReceiver<P> for ThreadPool<P> {
    fn send_and_receive<R, I>(
        &self,
        requests: I,
    ) -> Result<impl Iterator<Item = Result<R::Response, Error>>, Error>
    where
        R: Request<P>,
        I: IntoIterator<Item = R>,
    {
        ThreadPool::send_and_receive(self, requests)
    }

    fn send_and_receive_once<R: Request<P>>(&self, request: R) -> Result<R::Response, Error> {
        ThreadPool::send_and_receive_once(self, request)
    }
}

/// Implements the trait for a pointer to a sender (`Arc<S>`, `&S`) by
/// forwarding to the sender it points to. Doc comments before an invocation
/// document the generated impl.
macro_rules! forward_to_inner {
    ($(#[$doc:meta])* $ptr:ty) => {
        $(#[$doc])*
        impl<P: PoolItem, S: SenderAndReceiver<P>> SenderAndReceiver<P> for $ptr {
            fn send_and_receive<R, I>(
                &self,
                requests: I,
            ) -> Result<impl Iterator<Item = Result<R::Response, Error>>, Error>
            where
                R: Request<P>,
                I: IntoIterator<Item = R>,
            {
                S::send_and_receive(self, requests)
            }

            fn send_and_receive_once<R: Request<P>>(&self, request: R) -> Result<R::Response, Error> {
                S::send_and_receive_once(self, request)
            }
        }
    };
}

forward_to_inner! {
    /// A shared pool (`Arc<ThreadPool<P>>`, `Arc<SenderAndReceiverMock<P>>`)
    /// sends as the pool does.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, SenderAndReceiver, ThreadPool};
    /// use std::sync::Arc;
    ///
    /// fn add(pool: impl SenderAndReceiver<Randoms>, id: u64) -> u64 {
    ///     pool.send_and_receive_once(AddRequest::new(id, RandomsInit { count: 1 })).unwrap().id
    /// }
    ///
    /// let pool = Arc::new(ThreadPool::<Randoms>::new(1)?);
    /// assert_eq!(add(Arc::clone(&pool), 5), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Arc<S>
}

forward_to_inner! {
    /// A borrowed pool sends as the pool does.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, SenderAndReceiver, ThreadPool};
    ///
    /// fn add(pool: impl SenderAndReceiver<Randoms>, id: u64) -> u64 {
    ///     pool.send_and_receive_once(AddRequest::new(id, RandomsInit { count: 1 })).unwrap().id
    /// }
    ///
    /// let pool = ThreadPool::<Randoms>::new(1)?;
    /// assert_eq!(add(&pool, 6), 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    &S
}
