//! What a pool item is, and the typed messages that reach it.

use crate::error::NewItemError;
use std::cell::Cell;

/// A stateful object hosted by a [`ThreadPool`](crate::ThreadPool).
///
/// Each item is created on one worker thread by [`new_pool_item`], lives
/// there until it is removed or the pool shuts down, and is only reached by
/// messages. The item itself need not be `Send` or `Sync` (it may hold `Rc`,
/// `RefCell` or raw handles); only its init data, requests and responses
/// cross threads.
///
/// The optional hooks run on the item's worker thread.
///
/// # Example
///
/// ```
/// use shardpool::{AddRequest, Message, NewItemError, PoolItem, Reply, Request, ThreadPool};
/// use std::{cell::RefCell, rc::Rc};
///
/// // Not `Send`: it holds an `Rc<RefCell<..>>`.
/// struct Counter(Rc<RefCell<u64>>);
///
/// struct Increment(u64);
///
/// impl PoolItem for Counter {
///     type Init = u64;
///     type Api = Increment;
///     type Response = u64;
///     type ThreadState = ();
///
///     fn new_pool_item(_id: u64, start: u64) -> Result<Self, NewItemError> {
///         Ok(Counter(Rc::new(RefCell::new(start))))
///     }
///
///     fn process_message(&mut self, _request: Increment) -> u64 {
///         *self.0.borrow_mut() += 1;
///         *self.0.borrow()
///     }
/// }
///
/// impl Request<Counter> for Increment {
///     type Response = u64;
///     fn into_message(self) -> Message<Counter> {
///         Message::Call { id: self.0, request: self }
///     }
///     fn from_reply(reply: Reply<Counter>) -> Option<u64> {
///         match reply {
///             Reply::Response(n) => Some(n),
///             _ => None,
///         }
///     }
/// }
///
/// let pool = ThreadPool::<Counter>::new(2).unwrap();
/// pool.send_and_receive_once(AddRequest::new(7, 40)).unwrap();
/// pool.send_and_receive_once(Increment(7)).unwrap();
/// assert_eq!(pool.send_and_receive_once(Increment(7)).unwrap(), 42);
/// ```
///
/// [`new_pool_item`]: PoolItem::new_pool_item
pub trait PoolItem: Sized + 'static {
    /// The data an item is created from (sent with an [`AddRequest`]).
    type Init: Send + 'static;
    /// The item's requests (usually an enum with one variant per request).
    type Api: Send + 'static;
    /// The item's responses (usually an enum with one variant per response).
    type Response: Send + 'static;
    /// State each worker thread keeps for all its items (`()` for none),
    /// created on the worker by [`new_thread_state`](Self::new_thread_state)
    /// and handed to the hooks.
    type ThreadState: Default + 'static;

    /// Creates the item with this id, on the worker thread that will own it.
    /// An error is returned to the caller as [`Error::InitFailed`](crate::Error::InitFailed),
    /// whole (make a [`NewItemError`] from any error type with `?` or
    /// `.into()`), and no item is added.
    fn new_pool_item(id: u64, init: Self::Init) -> Result<Self, NewItemError>;

    /// Handles one request and produces its response.
    ///
    /// A panic here is caught: the caller gets
    /// [`Error::Panicked`](crate::Error::Panicked), the item is removed (its
    /// state may be torn) and the worker goes on with its other items.
    fn process_message(&mut self, request: Self::Api) -> Self::Response;

    /// Which worker (in `0..workers`) owns the item with this id. Defaults
    /// to `id % workers`. Runs on the calling thread; an index out of range
    /// is reported as [`Error::BadPlacement`](crate::Error::BadPlacement).
    fn placement(id: u64, workers: usize) -> usize {
        (id % workers as u64) as usize
    }

    /// Creates the per-worker state, once per worker as it starts.
    fn new_thread_state(worker: usize) -> Self::ThreadState {
        let _ = worker;
        Self::ThreadState::default()
    }

    /// Runs before each [`process_message`](Self::process_message).
    fn pre_process(&mut self, state: &mut Self::ThreadState) {
        let _ = state;
    }

    /// Runs after each [`process_message`](Self::process_message).
    fn post_process(&mut self, state: &mut Self::ThreadState) {
        let _ = state;
    }

    /// Runs for each item still alive when the pool shuts down, just before
    /// it is dropped (not when it is removed by a [`RemoveRequest`]).
    fn on_shutdown(&mut self, state: &mut Self::ThreadState) {
        let _ = state;
    }
}

/// A message as the pool routes it: create, remove, or call an item.
pub enum Message<P: PoolItem> {
    /// Create the item `id` from `init`.
    Add {
        /// The new item's id.
        id: u64,
        /// What to create it from.
        init: P::Init,
    },
    /// Drop the item `id` (on its own thread).
    Remove {
        /// The id of the item to remove.
        id: u64,
    },
    /// Deliver `request` to the item `id`.
    Call {
        /// The addressed item.
        id: u64,
        /// The item's request.
        request: P::Api,
    },
}

impl<P: PoolItem> Message<P> {
    /// The id this message is addressed to.
    pub fn id(&self) -> u64 {
        match self {
            Message::Add { id, .. } | Message::Remove { id } | Message::Call { id, .. } => *id,
        }
    }
}

/// What the worker sends back for a [`Message`] that succeeded.
pub enum Reply<P: PoolItem> {
    /// The item was created.
    Added {
        /// Its id.
        id: u64,
    },
    /// The remove request was handled.
    Removed {
        /// The id asked for.
        id: u64,
        /// Whether an item with that id existed (and was dropped).
        existed: bool,
    },
    /// The item's response to a [`Message::Call`].
    Response(P::Response),
}

/// A typed request: ties a request type to the response type it yields, so
/// that [`ThreadPool::send_and_receive`](crate::ThreadPool::send_and_receive)
/// returns `R::Response` values with no casts by the caller.
///
/// See [`PoolItem`] for a complete example.
pub trait Request<P: PoolItem>: Send {
    /// What the caller receives for this request.
    type Response;

    /// Wraps the request as the message the pool routes.
    fn into_message(self) -> Message<P>;

    /// Extracts this request's response from the item's reply; `None` if the
    /// reply is of another kind (reported as
    /// [`Error::UnexpectedResponse`](crate::Error::UnexpectedResponse)).
    fn from_reply(reply: Reply<P>) -> Option<Self::Response>;
}

/// A [`Message`] is a request too, answered with the item's [`Reply`]
/// whole: this is how one batch carries requests of different types (turn
/// each into its message), and how a request handed back by a try-form
/// ([`TrySendError`](crate::TrySendError)) is sent again. Each typed
/// response is read back with its request type's
/// [`from_reply`](Request::from_reply).
///
/// ```
/// use shardpool_samples::{MeanRequest, Randoms, RandomsInit, SumRequest};
/// use shardpool::{AddRequest, Request, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// pool.send_and_receive_once(AddRequest::new(1, RandomsInit { count: 4 }))?;
/// // One batch, three request types.
/// let mixed = [
///     SumRequest(1).into_message(),
///     MeanRequest(1).into_message(),
///     AddRequest::new(2, RandomsInit { count: 1 }).into_message(),
/// ];
/// let replies: Vec<_> = pool.send_and_receive(mixed)?.collect::<Result<_, _>>()?;
/// let mut replies = replies.into_iter();
/// let sum = SumRequest::from_reply(replies.next().unwrap()).unwrap();
/// let mean = MeanRequest::from_reply(replies.next().unwrap()).unwrap();
/// let added = <AddRequest<Randoms>>::from_reply(replies.next().unwrap()).unwrap();
/// assert_eq!((sum.id, mean.id, added.id), (1, 1, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<P: PoolItem> Request<P> for Message<P> {
    type Response = Reply<P>;

    fn into_message(self) -> Message<P> {
        self
    }

    fn from_reply(reply: Reply<P>) -> Option<Reply<P>> {
        Some(reply)
    }
}

/// Creates the item `id` from `init`. Answered with an [`AddResponse`], or
/// with [`Error::DuplicateId`](crate::Error::DuplicateId) /
/// [`Error::InitFailed`](crate::Error::InitFailed).
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit};
/// use shardpool::{AddRequest, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::new(1).unwrap();
/// let added = pool.send_and_receive_once(AddRequest::new(3, RandomsInit { count: 10 })).unwrap();
/// assert_eq!(added.id, 3);
/// ```
pub struct AddRequest<P: PoolItem> {
    /// The new item's id.
    pub id: u64,
    /// What to create it from.
    pub init: P::Init,
}

impl<P: PoolItem> AddRequest<P> {
    /// A request to create item `id` from `init`.
    pub fn new(id: u64, init: P::Init) -> Self {
        Self { id, init }
    }
}

/// The item was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddResponse {
    /// Its id.
    pub id: u64,
}

impl<P: PoolItem> Request<P> for AddRequest<P> {
    type Response = AddResponse;

    fn into_message(self) -> Message<P> {
        Message::Add { id: self.id, init: self.init }
    }

    fn from_reply(reply: Reply<P>) -> Option<AddResponse> {
        match reply {
            Reply::Added { id } => Some(AddResponse { id }),
            _ => None,
        }
    }
}

/// Drops the item with this id, on its own thread. Answered with a
/// [`RemoveResponse`] that says whether it existed.
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit};
/// use shardpool::{AddRequest, RemoveRequest, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::new(1).unwrap();
/// pool.send_and_receive_once(AddRequest::new(3, RandomsInit { count: 10 })).unwrap();
/// assert!(pool.send_and_receive_once(RemoveRequest(3)).unwrap().existed);
/// assert!(!pool.send_and_receive_once(RemoveRequest(3)).unwrap().existed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveRequest(pub u64);

/// The answer to a [`RemoveRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveResponse {
    /// The id asked for.
    pub id: u64,
    /// Whether an item with that id existed (and was dropped).
    pub existed: bool,
}

impl<P: PoolItem> Request<P> for RemoveRequest {
    type Response = RemoveResponse;

    fn into_message(self) -> Message<P> {
        Message::Remove { id: self.0 }
    }

    fn from_reply(reply: Reply<P>) -> Option<RemoveResponse> {
        match reply {
            Reply::Removed { id, existed } => Some(RemoveResponse { id, existed }),
            _ => None,
        }
    }
}

crate::sync::thread_local! {
    static BEING_PROCESSED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The id of the item whose constructor, hook or `process_message` is
/// running on this thread, if any (`None` outside a worker, or between
/// messages).
///
/// ```
/// use shardpool::id_being_processed;
/// assert_eq!(id_being_processed(), None);
/// ```
pub fn id_being_processed() -> Option<u64> {
    BEING_PROCESSED.try_with(Cell::get).ok().flatten()
}

/// Marks `id` as being processed on this thread until the guard drops.
pub(crate) struct Processing(Option<u64>);

impl Processing {
    #[inline]
    pub(crate) fn enter(id: u64) -> Self {
        Processing(BEING_PROCESSED.with(|c| c.replace(Some(id))))
    }
}

impl Drop for Processing {
    #[inline]
    fn drop(&mut self) {
        let prev = self.0;
        let _ = BEING_PROCESSED.try_with(|c| c.set(prev));
    }
}
