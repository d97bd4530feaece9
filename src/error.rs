//! Error types: what a call, a build or an item constructor can report.

use std::fmt;
use std::sync::Arc;

/// Why a request, or a whole call, got no response from its item.
///
/// Each request of a batch gets its own `Result`, so one bad id or one
/// panicking item costs that request alone: the rest of the batch is
/// answered, and the worker and its other items live on.
///
/// ```
/// use shardpool::{AddRequest, Error, ThreadPool};
/// use shardpool_samples::{MeanRequest, Randoms, RandomsInit};
///
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// pool.send_and_receive_once(AddRequest::new(1, RandomsInit { count: 4 }))?;
///
/// // Per request: a taken id and an unknown id, each with the id it concerns.
/// let again = pool.send_and_receive_once(AddRequest::new(1, RandomsInit { count: 4 }));
/// assert_eq!(again, Err(Error::DuplicateId { id: 1 }));
/// let missing = pool.send_and_receive_once(MeanRequest(9)).unwrap_err();
/// assert_eq!(missing.id(), Some(9));
/// assert_eq!(missing.to_string(), "no pool item has id 9");
///
/// // Per pool: nothing is sent once the pool is shut down.
/// pool.shutdown()?;
/// assert_eq!(pool.send_and_receive_once(MeanRequest(1)), Err(Error::Shutdown));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No item with this id lives in the pool.
    UnknownId {
        /// The id the request was addressed to.
        id: u64,
    },
    /// An item with this id already exists; the existing item is untouched.
    DuplicateId {
        /// The id that is taken.
        id: u64,
    },
    /// The item's constructor returned an error; no item was added. The
    /// constructor's error is kept whole: it is this error's
    /// [`source`](std::error::Error::source), and
    /// [`NewItemError::downcast_ref`] gets it back as its own type.
    InitFailed {
        /// The id of the item that was being created.
        id: u64,
        /// The constructor's error.
        error: NewItemError,
    },
    /// The item panicked while handling this request (or while being created
    /// or dropped). The item has been removed: its state may be torn.
    Panicked {
        /// The id of the item that panicked.
        id: u64,
        /// The panic's message.
        message: String,
    },
    /// The request was sent from a worker of this pool to an item on that
    /// same worker, in a way the worker cannot run inline.
    ///
    /// A blocking call ([`send_and_receive_once`](crate::ThreadPool::send_and_receive_once),
    /// its timeout form, a batch) made from an item's handler to another
    /// item of the same worker is run inline, at once, and does not fail
    /// this way. What still does: the non-blocking forms (`send`,
    /// `send_all`, the try-forms, the async calls) and `contains` to an item
    /// of the calling worker, and any call to one from a hook
    /// (`pre_process`, `post_process`, `on_shutdown`, which hold the thread
    /// state) or from code the worker runs outside a handler (a `Drop`, a
    /// waker, the panic or error handler).
    SameWorker {
        /// The id the request was addressed to.
        id: u64,
        /// The worker that both sends and would have to answer.
        worker: usize,
    },
    /// [`PoolItem::placement`](crate::PoolItem::placement) returned a worker
    /// index that does not exist.
    BadPlacement {
        /// The id being placed.
        id: u64,
        /// The index returned.
        worker: usize,
        /// How many workers the pool has.
        workers: usize,
    },
    /// The pool is shut down (or shutting down); the request was not sent.
    Shutdown,
    /// `shutdown` was called from one of the pool's own workers, which cannot
    /// wait for itself to stop. The pool is closed to new requests and stops
    /// once that worker returns to its loop.
    ShutdownFromWorker,
    /// The item answered with a response of another kind than the request
    /// expects (a bug in the item's `Request` implementation).
    UnexpectedResponse {
        /// The id the request was addressed to.
        id: u64,
    },
    /// The calling thread is exiting and its thread-local state is gone.
    ThreadExiting,
    /// [`shutdown_timeout`](crate::ThreadPool::shutdown_timeout) (or
    /// `shutdown`, bounded by the builder's `shutdown_timeout`) gave up on
    /// workers still busy in user code at the deadline. The pool is closed;
    /// these workers were left running and stop on their own if that code
    /// ever returns.
    ShutdownTimedOut {
        /// The workers that had not finished, by index.
        stuck: Vec<usize>,
    },
    /// A worker thread ended by a panic that escaped every `catch_unwind`
    /// (a bug in this crate, never the effect of user code); reported by the
    /// shutdown that joined it.
    WorkerDied {
        /// The worker, by index.
        worker: usize,
        /// The panic's message.
        message: String,
    },
    /// A call with a deadline
    /// ([`send_and_receive_once_timeout`](crate::ThreadPool::send_and_receive_once_timeout))
    /// was sent and not answered in time. The request may still be
    /// processed (it may have been already): the item's state may show its
    /// effect. Its response is dropped once this thread takes it off its
    /// lane (at its next blocking call to that worker, or when it exits).
    /// (A deadline that passes before the request could be sent gives
    /// [`Error::Full`]: nothing was sent.)
    Timeout {
        /// The item the request was addressed to.
        id: u64,
    },
    /// The calling thread's lane to the item's worker was full (its ring,
    /// or the reply cells of its earlier calls still unanswered), and the
    /// request was not sent: a try-form
    /// ([`try_send`](crate::ThreadPool::try_send),
    /// [`try_send_and_receive_once`](crate::ThreadPool::try_send_and_receive_once))
    /// does not wait for room, and it hands the request back in its
    /// [`TrySendError`]; a call with a deadline
    /// ([`send_and_receive_once_timeout`](crate::ThreadPool::send_and_receive_once_timeout))
    /// waited for room until the deadline.
    Full {
        /// The item the request was addressed to.
        id: u64,
        /// Its worker, by index.
        worker: usize,
    },
    /// Shutdown could not pass its process-wide memory barrier
    /// (`membarrier` kept failing, for example because a seccomp filter
    /// installed after the pool was built refuses it). Without it, stopping
    /// the workers could lose a request racing the shutdown, so they are left
    /// running and serving; the pool is closed to new requests. Build pools
    /// with [`membarrier(false)`](crate::ThreadPoolBuilder::membarrier), or
    /// set `SHARDPOOL_NO_MEMBARRIER=1`, where `membarrier` is not allowed.
    BarrierFailed {
        /// The `errno` of the last failed call.
        errno: i32,
    },
    /// A call from an item's handler whose target waits on that very call:
    /// the target is on the chain of handlers the call is made for (A calls
    /// B, B calls A), or it waits, through other items, on that chain (two
    /// independent calls crossing, A waiting on B while B waits on A). That
    /// includes waits a worker's stack makes: a handler that waits lets its
    /// worker run others above it, and resumes only once they have returned,
    /// so it waits on what they wait on too. Answered at once, instead of
    /// waiting for ever; nothing was run by the target.
    ///
    /// `chain` names the calls, outermost first, as far as they are known,
    /// and ends with the target. (A handler whose call is answered this way
    /// decides what to do with it: its own caller sees what it returns.)
    Cycle {
        /// The id of the item called.
        id: u64,
        /// The calls that lead back to it, outermost first, ending with it.
        chain: Vec<crate::chain::ChainLink>,
    },
    /// A call from an item's handler nested too deep: more than
    /// [`MAX_NESTED_DEPTH`](crate::MAX_NESTED_DEPTH) handlers on one worker
    /// thread, each waiting for a call (or calling inline), or a chain of
    /// calls longer than [`MAX_CHAIN`](crate::MAX_CHAIN) across threads.
    /// Nothing was sent.
    TooDeep {
        /// The id of the item called.
        id: u64,
        /// How deep the caller was (levels on its thread, or links of its
        /// chain).
        depth: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownId { id } => write!(f, "no pool item has id {id}"),
            Error::DuplicateId { id } => write!(f, "a pool item with id {id} already exists"),
            Error::InitFailed { id, error } => write!(f, "creating pool item {id} failed: {error}"),
            Error::Panicked { id, message } => {
                write!(f, "pool item {id} panicked and was removed: {message}")
            }
            Error::SameWorker { id, worker } => write!(
                f,
                "request for item {id} was sent from worker {worker}, which owns that item: \
                 the call would deadlock"
            ),
            Error::BadPlacement { id, worker, workers } => {
                write!(f, "placement put item {id} on worker {worker}, but the pool has {workers} workers")
            }
            Error::Shutdown => f.write_str("the thread pool is shut down"),
            Error::ShutdownFromWorker => {
                f.write_str("shutdown was called from one of the pool's own workers")
            }
            Error::UnexpectedResponse { id } => {
                write!(f, "item {id} answered with a response of the wrong kind for its request")
            }
            Error::ThreadExiting => f.write_str("the calling thread is exiting"),
            Error::ShutdownTimedOut { stuck } => {
                write!(
                    f,
                    "shutdown timed out: workers {stuck:?} are still busy in user code and were left running"
                )
            }
            Error::WorkerDied { worker, message } => {
                write!(f, "worker {worker} died of a panic outside user code: {message}")
            }
            Error::Timeout { id } => write!(f, "the request to item {id} was not answered in time"),
            Error::Cycle { id, chain } => {
                write!(f, "call to item {id} refused: it waits on this call (")?;
                for (i, link) in chain.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" -> ")?;
                    }
                    write!(f, "{link}")?;
                }
                f.write_str(")")
            }
            Error::TooDeep { id, depth } => {
                write!(f, "call to item {id} refused: nested {depth} deep, past the bound")
            }
            Error::Full { id, worker } => {
                write!(f, "the lane to worker {worker} (item {id}) is full; nothing was sent")
            }
            Error::BarrierFailed { errno } => write!(
                f,
                "shutdown could not pass its memory barrier (membarrier failed with errno {errno}); \
                 the workers were left running"
            ),
        }
    }
}

impl Error {
    /// The id of the item the failed request was addressed to, for the
    /// errors that concern one item; `None` for those about the whole pool
    /// or the calling thread.
    ///
    /// ```
    /// use shardpool::Error;
    ///
    /// assert_eq!(Error::UnknownId { id: 7 }.id(), Some(7));
    /// assert_eq!(Error::Panicked { id: 3, message: "boom".into() }.id(), Some(3));
    /// assert_eq!(Error::Shutdown.id(), None);
    /// ```
    pub fn id(&self) -> Option<u64> {
        match *self {
            Error::UnknownId { id }
            | Error::DuplicateId { id }
            | Error::InitFailed { id, .. }
            | Error::Panicked { id, .. }
            | Error::SameWorker { id, .. }
            | Error::BadPlacement { id, .. }
            | Error::UnexpectedResponse { id }
            | Error::Timeout { id }
            | Error::Full { id, .. }
            | Error::Cycle { id, .. }
            | Error::TooDeep { id, .. } => Some(id),
            Error::Shutdown
            | Error::ShutdownFromWorker
            | Error::ThreadExiting
            | Error::ShutdownTimedOut { .. }
            | Error::WorkerDied { .. }
            | Error::BarrierFailed { .. } => None,
        }
    }
}

/// A request a try-form did not send, handed back with the reason.
///
/// `message` is the request as the pool routes it (what
/// [`Request::into_message`](crate::Request::into_message) made of it),
/// present whenever nothing was sent: the ring was full
/// ([`Error::Full`]), the pool is shut down, the placement was bad. A
/// [`Message`](crate::Message) is itself a request (its response is the
/// item's [`Reply`](crate::Reply)), so it can be sent again as it is, and
/// the typed response read back with the original request type's
/// [`from_reply`](crate::Request::from_reply). `?` turns it into its
/// [`Error`].
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
/// use shardpool::{AddRequest, Error, Request, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::builder().workers(1).ring_capacity(1).build()?;
/// pool.send_and_receive_once(AddRequest::new(1, RandomsInit { count: 3 }))?;
/// // However full the ring was, nothing is lost:
/// let sum = match pool.try_send_and_receive_once(SumRequest(1)) {
///     Ok(sum) => sum,
///     Err(refused) => {
///         assert!(matches!(refused.error, Error::Full { id: 1, worker: 0 }));
///         let reply = pool.send_and_receive_once(refused.message.unwrap())?;
///         SumRequest::from_reply(reply).unwrap()
///     }
/// };
/// assert_eq!(sum.id, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TrySendError<P: crate::PoolItem> {
    /// Why it was not sent, or why it failed.
    pub error: Error,
    /// The request, if it was not sent.
    pub message: Option<crate::Message<P>>,
}

impl<P: crate::PoolItem> fmt::Debug for TrySendError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrySendError")
            .field("error", &self.error)
            .field("message", &self.message.as_ref().map(|m| m.id()))
            .finish()
    }
}

impl<P: crate::PoolItem> fmt::Display for TrySendError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<P: crate::PoolItem> std::error::Error for TrySendError<P> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<P: crate::PoolItem> From<TrySendError<P>> for Error {
    fn from(e: TrySendError<P>) -> Self {
        e.error
    }
}

impl<P: crate::PoolItem> From<Error> for TrySendError<P> {
    fn from(error: Error) -> Self {
        Self { error, message: None }
    }
}

/// [`Error::InitFailed`]'s source is the constructor's own error.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InitFailed { error, .. } => Some(error.as_error()),
            _ => None,
        }
    }
}

/// The first failure of a batch sent whole with
/// [`Responses::collect_all`](crate::Responses::collect_all) (every request
/// was still sent and answered), or the first request of
/// [`ThreadPool::send_all`](crate::ThreadPool::send_all) that could not be
/// sent (the other `failed - 1` were not sent either; the rest were).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchError {
    /// The position in the batch of the first request that failed.
    pub index: usize,
    /// Why it failed.
    pub error: Error,
    /// How many requests of the batch failed in all.
    pub failed: usize,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} request(s) of the batch failed; the first, at index {}: {}",
            self.failed, self.index, self.error
        )
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Keeps the first failure, so `?` works in functions returning
/// `Result<_, Error>` (the index and count are dropped).
impl From<BatchError> for Error {
    fn from(e: BatchError) -> Self {
        e.error
    }
}

/// Why [`ThreadPoolBuilder::build`](crate::ThreadPoolBuilder::build) failed.
/// Any worker already started has been stopped and joined.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The pool was asked for zero workers.
    ZeroWorkers,
    /// The ring capacity or batch size was zero.
    ZeroCapacity,
    /// Pinning was required but a worker could not be pinned.
    Pinning {
        /// The worker that could not be pinned.
        worker: usize,
        /// The core it was meant for (`None` when no core was available).
        core: Option<usize>,
    },
    /// The OS refused to start a worker thread.
    Spawn(std::io::Error),
    /// A worker panicked while starting (in the start handler or in
    /// [`PoolItem::new_thread_state`](crate::PoolItem::new_thread_state)).
    WorkerStart {
        /// The worker that failed.
        worker: usize,
        /// The panic's message.
        message: String,
    },
    /// A setting is out of its allowed range.
    OutOfRange {
        /// The builder method that set it.
        setting: &'static str,
        /// The value asked for.
        value: usize,
        /// The largest value allowed.
        max: usize,
    },
    /// The worker thread's name could not be made: the
    /// [`thread_name`](crate::ThreadPoolBuilder::thread_name) closure
    /// panicked, or its name contains a NUL byte.
    ThreadName {
        /// The worker being named.
        worker: usize,
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("a thread pool needs at least one worker"),
            BuildError::ZeroCapacity => f.write_str("ring capacity and batch size must be at least 1"),
            BuildError::Pinning { worker, core: Some(core) } => {
                write!(f, "pinning was required but worker {worker} could not be pinned to core {core}")
            }
            BuildError::Pinning { worker, core: None } => {
                write!(f, "pinning was required but no core is available for worker {worker}")
            }
            BuildError::Spawn(e) => write!(f, "could not spawn a worker thread: {e}"),
            BuildError::WorkerStart { worker, message } => {
                write!(f, "worker {worker} panicked while starting: {message}")
            }
            BuildError::OutOfRange { setting, value, max } => {
                write!(f, "{setting}({value}) is out of range: the most allowed is {max}")
            }
            BuildError::ThreadName { worker, message } => {
                write!(f, "could not name worker {worker}: {message}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// The error an item's constructor returns: it reaches the caller as
/// [`Error::InitFailed`], whole.
///
/// Made from any `std::error::Error + Send + Sync + 'static` (with `?` or
/// `.into()`), which [`downcast_ref`](Self::downcast_ref) gets back, or from
/// a message (`String` or `&str`). It is cheap to clone (the error is shared)
/// and two compare equal when their messages do.
///
/// ```
/// use shardpool::{Error, NewItemError};
/// use std::error::Error as _;
///
/// #[derive(Debug)]
/// struct NoDevice(u32);
/// impl std::fmt::Display for NoDevice {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "no device {}", self.0)
///     }
/// }
/// impl std::error::Error for NoDevice {}
///
/// let failed = Error::InitFailed { id: 4, error: NoDevice(2).into() };
/// assert_eq!(failed.to_string(), "creating pool item 4 failed: no device 2");
/// // The constructor's error, as its own type.
/// let source = failed.source().unwrap();
/// assert_eq!(source.downcast_ref::<NoDevice>().unwrap().0, 2);
///
/// // A message alone.
/// assert_eq!(NewItemError::new("the limit is below the id").to_string(), "the limit is below the id");
/// assert_eq!(NewItemError::from("same text"), NewItemError::new("same text"));
/// ```
///
/// `NewItemError` does not itself implement `std::error::Error` (as with
/// `anyhow::Error`, that would conflict with the conversion from every
/// error type), so `?` does not turn it into a `Box<dyn Error>`: in a test
/// that calls `new_pool_item` directly, use `.map_err(|e| e.to_string())`,
/// or [`as_error`](Self::as_error), which lends the error inside.
#[derive(Clone)]
pub struct NewItemError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl NewItemError {
    /// An error that is only this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(message.into())))
    }

    /// The constructor's error, as a `std::error::Error`.
    pub fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The constructor's error as its own type `E`, if it is one.
    ///
    /// ```
    /// use shardpool::NewItemError;
    ///
    /// let e = NewItemError::from(std::fmt::Error);
    /// assert!(e.downcast_ref::<std::fmt::Error>().is_some());
    /// assert!(e.downcast_ref::<std::io::Error>().is_none());
    /// ```
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Display for NewItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for NewItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Equal when the messages are: errors of different types with the same
/// text compare equal.
impl PartialEq for NewItemError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for NewItemError {}

/// Any error type, `String` or `&str`: whatever converts into a boxed
/// `std::error::Error + Send + Sync`. The error is kept whole, not turned
/// into its message.
impl<E> From<E> for NewItemError
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        Self(Arc::from(error.into()))
    }
}

/// Turns a caught panic's payload into its message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Drops a user value whose owner has nobody to report a panic to (a
/// thread-local destructor, the last owner of a reply lane): under
/// `catch_unwind`, so that a panicking `Drop` costs only itself and cannot
/// abort the process by panicking during another unwind.
pub(crate) fn drop_quietly<T>(value: T) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value))) {
        drop(take_panic_message(payload));
    }
}

/// Turns a caught panic's payload into its message and drops the payload
/// under `catch_unwind`: a payload's `Drop` is user code too. A panic from
/// that drop is noted in the message, and its own payload is leaked rather
/// than dropped (dropping it could panic again, without end).
pub(crate) fn take_panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = panic_message(&*payload);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload))) {
        Ok(()) => message,
        Err(second) => {
            let note = panic_message(&*second);
            std::mem::forget(second);
            format!("{message} (and dropping the panic payload panicked: {note})")
        }
    }
}
