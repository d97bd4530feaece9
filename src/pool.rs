//! The pool's handle: what users call.

use crate::caller::{self, decode, AsyncResponse, AsyncResponses, CallerHandle, Responses};
use crate::doorbell::CONTROL;
use crate::error::{take_panic_message, BatchError, Error, TrySendError};
use crate::item::{Message, PoolItem, Request};
use crate::shared::{current_worker, Shared, NOT_PINNED};
use crate::stats::{PoolStats, WorkerStats};
use crate::sync::atomic::Ordering;
use crate::sync::thread::JoinHandle;
use crate::sync::{Arc, Mutex};
use crate::trace::{event, span};
use crate::wire::{Answer, IdSink, Query};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A message ready to leave: its worker, this thread's handle on the pool,
/// and the message.
type Addressed<P> = (usize, Rc<CallerHandle<P>>, Message<P>);

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
    pub(crate) shared: Arc<Shared<P>>,
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
        self.call_until(request, None)
    }

    /// One request, one response, the wait bounded by `deadline` if any.
    #[inline]
    fn call_until<R: Request<P>>(&self, request: R, deadline: Option<Instant>) -> Result<R::Response, Error> {
        let msg = request.into_message();
        let id = msg.id();
        span!(TRACE, "call", id);
        let worker = match self.shared.route::<P>(id) {
            Ok(worker) => worker,
            // From a handler, to an item of the same worker: run inline.
            Err(Error::SameWorker { .. }) if crate::worker::may_inline(self.shared.id) => {
                return decode::<P, R>(id, crate::worker::inline::<P>(&self.shared, msg));
            }
            Err(e) => return Err(e),
        };
        let handle = caller::handle(&self.shared)?;
        let outcome = handle.call(worker, msg, deadline)?;
        decode::<P, R>(id, outcome)
    }

    /// [`send_and_receive_once`](Self::send_and_receive_once), waiting at
    /// most `timeout` (for room in a full ring, and for the response).
    ///
    /// Past it, the call returns [`Error::Timeout`] if the request was sent
    /// (it may still be processed, or may have been already; its response
    /// is dropped when this thread takes it off its lane), or
    /// [`Error::Full`] if the ring had no room for it until then (nothing
    /// was sent). Order is kept: a later request from this thread to the
    /// same item is processed after it. The deadline may be overshot by
    /// about a millisecond (the pauses of the wait for room); from an item's
    /// handler, by as long as the handlers its worker runs meanwhile take
    /// (a waiting handler resumes after them: see the README's "Items
    /// calling items").
    ///
    /// ```
    /// use shardpool::{pool_item, Error, ThreadPool};
    /// use std::time::Duration;
    ///
    /// struct Slow;
    ///
    /// #[pool_item]
    /// impl Slow {
    ///     fn new(_id: u64) -> Self {
    ///         Slow
    ///     }
    ///
    ///     #[messaging(NapRequest, NapResponse)]
    ///     fn nap(&self, ms: u64) -> u64 {
    ///         std::thread::sleep(Duration::from_millis(ms));
    ///         ms
    ///     }
    /// }
    ///
    /// let pool = ThreadPool::<Slow>::new(1)?;
    /// pool.send_and_receive_once(SlowInit(1))?;
    /// let late = pool.send_and_receive_once_timeout(NapRequest(1, 200), Duration::from_millis(10));
    /// assert_eq!(late, Err(Error::Timeout { id: 1 }));
    /// // The next call is answered after the nap, with its own response.
    /// assert_eq!(pool.send_and_receive_once(NapRequest(1, 0))?.result, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_and_receive_once_timeout<R: Request<P>>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        self.call_until(request, Instant::now().checked_add(timeout))
    }

    /// [`send_and_receive_once`](Self::send_and_receive_once), as a future:
    /// `Send`, so it may be awaited in a task that moves between threads,
    /// and allocation-free per request once warm. The reply is written into
    /// a slot the task's waker is woken from, not into the thread's reply
    /// cells. Runtime-agnostic.
    ///
    /// Nothing is sent until the future is first polled; the request then
    /// leaves through the polling thread's ring. Dropping the future later
    /// (cancelling it) is safe at any point: its response is dropped when
    /// it comes, and the request may or may not have been processed. For a
    /// deadline, wrap it in the runtime's timeout.
    ///
    /// # Ordering
    ///
    /// Per item, requests are processed in the order they leave a thread.
    /// A task that awaits each response before it sends the next request
    /// therefore has its requests processed in order, whichever threads the
    /// runtime runs it on. Requests in flight at once from one task are
    /// ordered only if they left from the same thread: joined futures, a
    /// [`send`](Self::send) followed by an `.await` elsewhere and then a
    /// call, or a call whose future was dropped (a runtime timeout) before
    /// its response came, followed by another call.
    ///
    /// # What runs on the worker
    ///
    /// The worker wakes the task's waker (`wake_by_ref`, or `wake` for a
    /// task that waited for room in a full ring), and may drop the last
    /// clone of it: that is the runtime's code, run on the pool's
    /// worker under `catch_unwind` (a panic goes to the
    /// [`panic_handler`](crate::ThreadPoolBuilder::panic_handler)). With
    /// the common runtimes that is a few atomic operations; a waker that
    /// polls the task inline, or blocks, does so on the worker.
    ///
    /// # A full ring
    ///
    /// The future does not block its thread waiting for room in a full
    /// ring, nor spin its task: it leaves its waker with the ring and
    /// returns `Pending`, and the worker wakes it once it has freed room
    /// (a chunk at a time). For [`try_send`](Self::try_send)-style load
    /// shedding, check with a try-form first.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// let sum = block_on(async {
    ///     pool.send_and_receive_once_async(AddRequest::new(4, RandomsInit { count: 10 })).await?;
    ///     pool.send_and_receive_once_async(SumRequest(4)).await
    /// })?;
    /// assert_eq!(sum.id, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_and_receive_once_async<R: Request<P>>(&self, request: R) -> AsyncResponse<'_, P, R> {
        AsyncResponse::new(&self.shared, request)
    }

    /// [`send_and_receive`](Self::send_and_receive), as a stream: the
    /// responses in request order, each its own `Result`, with the same
    /// bounded streaming (a window of requests ahead of the response
    /// awaited). `Send` when the request iterator is, so the task awaiting
    /// it may move between threads; per item, the batch's requests are
    /// processed in order wherever it runs (a task moved with requests in
    /// flight sends nothing from its new thread until they are answered).
    /// See [`AsyncResponses`] for an example.
    pub fn send_and_receive_async<R, I>(&self, requests: I) -> AsyncResponses<'_, P, R, I::IntoIter>
    where
        R: Request<P>,
        I: IntoIterator<Item = R>,
    {
        AsyncResponses::new(&self.shared, requests.into_iter())
    }

    /// Sends one request without waiting for its response, which the
    /// worker drops. Waits only for room in a full ring.
    ///
    /// The request keeps its place: per item, it is processed in order with
    /// every other request from this thread. Its failure (an unknown id, a
    /// panicking item, a failed constructor) has nowhere to go back to: it
    /// is counted in [`WorkerStats::send_errors`](crate::WorkerStats::send_errors)
    /// and handed to the builder's
    /// [`error_handler`](crate::ThreadPoolBuilder::error_handler) (and a
    /// panic to the [`panic_handler`](crate::ThreadPoolBuilder::panic_handler)).
    ///
    /// The `Result` fails only if the request could not be sent (the pool
    /// shut down, a bad placement, the thread exiting).
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// pool.send(AddRequest::new(5, RandomsInit { count: 3 }))?;
    /// // Sent after the add, from the same thread: the item is there.
    /// assert_eq!(pool.send_and_receive_once(SumRequest(5))?.id, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<R: Request<P>>(&self, request: R) -> Result<(), Error> {
        self.send_message(request.into_message(), true).map_err(Error::from)
    }

    /// [`send`](Self::send) for each request, in order: none is answered.
    /// Waits only for room in full rings. Returns how many were sent.
    ///
    /// A request that cannot be sent (a bad placement, a call from the
    /// item's own worker, the pool shut down meanwhile, the thread exiting)
    /// is dropped and the rest are still tried; the first such failure comes
    /// back as a [`BatchError`], with how many there were (the others were
    /// sent).
    /// Failures on the worker go to the error handler, as for `send`.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// let sent = pool.send_all((0..100).map(|id| AddRequest::new(id, RandomsInit { count: 1 })))?;
    /// assert_eq!(sent, 100);
    /// assert_eq!(pool.ids()?.len(), 100); // asked after the sends, from the same thread
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_all<R, I>(&self, requests: I) -> Result<usize, BatchError>
    where
        R: Request<P>,
        I: IntoIterator<Item = R>,
    {
        let mut sent = 0;
        let mut first = None;
        let mut failed = 0;
        for (index, request) in requests.into_iter().enumerate() {
            // User code (the iterator, `into_message`, `placement`) runs with
            // every earlier request pushed and announced.
            match self.send_message(request.into_message(), true) {
                Ok(()) => sent += 1,
                Err(refused) => {
                    failed += 1;
                    first.get_or_insert((index, refused.error));
                    drop(refused.message);
                }
            }
        }
        match first {
            None => Ok(sent),
            Some((index, error)) => Err(BatchError { index, error, failed }),
        }
    }

    /// [`send`](Self::send), but fails with [`Error::Full`] instead of
    /// waiting when the ring to the item's worker is full, handing the
    /// request back (see [`TrySendError`]).
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(1)?;
    /// match pool.try_send(AddRequest::new(1, RandomsInit { count: 3 })) {
    ///     Ok(()) => {}
    ///     // Shed the load, or send it again later: nothing is lost.
    ///     Err(refused) => pool.send(refused.message.unwrap())?,
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send<R: Request<P>>(&self, request: R) -> Result<(), TrySendError<P>> {
        self.send_message(request.into_message(), false)
    }

    fn send_message(&self, msg: Message<P>, wait: bool) -> Result<(), TrySendError<P>> {
        span!(TRACE, "send", id = msg.id());
        let (worker, handle, msg) = self.address(msg)?;
        handle.send(worker, msg, wait).map_err(|(error, msg)| TrySendError { error, message: Some(msg) })
    }

    /// The worker `msg` goes to and this thread's handle on the pool, or
    /// why it cannot be sent, with the message handed back.
    fn address(&self, msg: Message<P>) -> Result<Addressed<P>, TrySendError<P>> {
        let addressed = self.shared.route::<P>(msg.id()).and_then(|w| Ok((w, caller::handle(&self.shared)?)));
        match addressed {
            Ok((worker, handle)) => Ok((worker, handle, msg)),
            Err(error) => Err(TrySendError { error, message: Some(msg) }),
        }
    }

    /// [`send_and_receive_once`](Self::send_and_receive_once), but fails
    /// with [`Error::Full`] instead of waiting when the ring to the item's
    /// worker is full, handing the request back (see [`TrySendError`]). Once
    /// sent, it waits for the response.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, Error, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(1)?;
    /// let added = pool.try_send_and_receive_once(AddRequest::new(1, RandomsInit { count: 3 }))?;
    /// assert_eq!(added.id, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send_and_receive_once<R: Request<P>>(
        &self,
        request: R,
    ) -> Result<R::Response, TrySendError<P>> {
        let msg = request.into_message();
        let id = msg.id();
        span!(TRACE, "call", id);
        let (worker, handle, msg) = self.address(msg)?;
        let outcome =
            handle.try_call(worker, msg).map_err(|(error, msg)| TrySendError { error, message: msg })?;
        Ok(decode::<P, R>(id, outcome)?)
    }

    /// Whether the item `id` exists, as its worker sees it when this
    /// thread's question reaches it: after every request this thread sent
    /// it before (they share the ring), unordered with other threads'.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, RemoveRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// assert!(!pool.contains(5)?);
    /// pool.send(AddRequest::new(5, RandomsInit { count: 1 }))?;
    /// assert!(pool.contains(5)?);
    /// pool.send(RemoveRequest(5))?;
    /// assert!(!pool.contains(5)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, id: u64) -> Result<bool, Error> {
        let worker = self.shared.route::<P>(id)?;
        let handle = caller::handle(&self.shared)?;
        match handle.query(worker, Query::Contains(id))? {
            Ok(Answer::Removed(_)) => Ok(true),
            Ok(Answer::Absent(_)) => Ok(false),
            Ok(_) => Err(Error::UnexpectedResponse { id }),
            Err(e) => Err(*e),
        }
    }

    /// The ids of every item, worker by worker (unsorted). Each worker's
    /// part is what it holds when this thread's question reaches it, after
    /// every request this thread sent it before; items added or removed by
    /// other threads meanwhile may or may not be listed.
    ///
    /// Not from a handler: called on one of the pool's own workers it
    /// returns [`Error::SameWorker`] (with id 0), as would
    /// [`broadcast`](Self::broadcast).
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(3)?;
    /// pool.send_and_receive((0..10).map(|id| AddRequest::new(id * 7, RandomsInit { count: 1 })))?
    ///     .collect_all::<Vec<_>>()?;
    /// let mut ids = pool.ids()?;
    /// ids.sort();
    /// assert_eq!(ids, (0..10).map(|id| id * 7).collect::<Vec<_>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ids(&self) -> Result<Vec<u64>, Error> {
        // Asked from one of our own workers, the question to it could never
        // be answered (and those to the others could wait on each other).
        if let Some(worker) = current_worker(self.shared.id) {
            return Err(Error::SameWorker { id: 0, worker });
        }
        let handle = caller::handle(&self.shared)?;
        let mut ids = Vec::new();
        for worker in 0..self.shared.workers.len() {
            // The worker appends to `ids` before it answers; we wait for the
            // answer, with no deadline, before we touch `ids` again.
            match handle.query(worker, Query::Ids(IdSink(&mut ids)))? {
                Ok(_) => {}
                Err(e) => return Err(*e),
            }
        }
        Ok(ids)
    }

    /// Sends a request to every item, `make(id)` for each, and returns each
    /// item's id with its response.
    ///
    /// Delivered to every item listed by [`ids`](Self::ids) (gathered
    /// worker by worker as the broadcast starts) that still exists when its
    /// request reaches it; an item removed in between is left out (an
    /// `UnknownId` for the very id asked is not reported), one added in
    /// between is not reached. The
    /// requests go as one batch, streamed, so each item's response is its
    /// own `Result`: a panicking item fails its own entry only.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// pool.send_and_receive((0..5).map(|id| AddRequest::new(id, RandomsInit { count: 3 })))?
    ///     .collect_all::<Vec<_>>()?;
    /// let sums = pool.broadcast(SumRequest)?;
    /// assert_eq!(sums.len(), 5);
    /// assert!(sums.iter().all(|(id, sum)| sum.as_ref().unwrap().id == *id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn broadcast<R, F>(&self, mut make: F) -> Result<Vec<(u64, Result<R::Response, Error>)>, Error>
    where
        R: Request<P>,
        F: FnMut(u64) -> R,
    {
        let ids = self.ids()?;
        let responses = self.send_and_receive(ids.iter().map(|&id| make(id)))?;
        Ok(ids
            .iter()
            .copied()
            .zip(responses)
            .filter(|(id, r)| !matches!(r, Err(Error::UnknownId { id: gone }) if gone == id))
            .collect())
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
        if current_worker(self.shared.id).is_some() {
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
                        callers_on_core: w.sharers.load(Ordering::Relaxed) as u64,
                        thread_name: self.names.get(index).cloned().unwrap_or_default(),
                        send_errors: c.unanswered_errors.load(Ordering::Relaxed),
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
