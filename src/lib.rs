//! # shardpool
//!
//! A typed thread pool of stateful objects, with messaging cheap enough that
//! operations of a microsecond are worth sending.
//!
//! Each *item* is created on one worker thread, lives there for life and is
//! reached only by typed request/response messages addressed by a `u64` id.
//! Items need not be `Send` or `Sync`; only the messages cross threads.
//!
//! - Each calling thread gets its own bounded SPSC ring to each worker, made
//!   on first use and reclaimed when the thread exits: no lock and no shared
//!   queue on the hot path.
//! - Workers (pinned to cores by default) drain their rings in batches, and
//!   spin, then park, when idle: an idle pool burns no CPU.
//! - Responses land in reply cells beside each ring, several to a cache
//!   line; the caller spins briefly, then parks. While a worker is awake, a
//!   request and its reply cost no locked instruction; no allocation per
//!   request once warm.
//! - A panicking item, an unknown id, a call to one's own worker, a call
//!   after shutdown: each is a typed [`Error`] for that request, never a dead
//!   worker, a lost batch or a hang.
//!
//! ```
//! use shardpool_samples::{MeanRequest, Randoms, RandomsInit, SumRequest};
//! use shardpool::{AddRequest, RemoveRequest, ThreadPool};
//!
//! let pool = ThreadPool::<Randoms>::new(2)?;
//! // Create 100 items, spread over the workers by id.
//! pool.send_and_receive((0..100).map(|id| AddRequest::new(id, RandomsInit { count: 100 })))?
//!     .collect_all::<Vec<_>>()?;
//! // One request to each, answered in request order.
//! let sums: Vec<_> = pool.send_and_receive((0..100).map(SumRequest))?.collect::<Result<_, _>>()?;
//! assert_eq!(sums[42].id, 42);
//! // One request, one response.
//! let mean = pool.send_and_receive_once(MeanRequest(7))?;
//! assert_eq!(mean.id, 7);
//! assert!(pool.send_and_receive_once(RemoveRequest(7))?.existed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod builder;
mod caller;
mod chain;
mod cores;
mod doorbell;
mod error;
mod gate;
mod id_provider;
mod idle;
mod item;
#[cfg(shardpool_loom)]
#[doc(hidden)]
pub mod loom_api;
mod mock;
mod nest;
mod pool;
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub mod porting;
mod reply;
mod room;
mod sender;
mod shared;
mod slot;
mod stats;
mod sync;
#[cfg(all(test, not(shardpool_loom)))]
mod testing;
mod trace;
mod wire;
mod worker;

pub use builder::{Pinning, ThreadPoolBuilder};
pub use caller::{AsyncResponse, AsyncResponses, Responses};
pub use chain::ChainLink;
pub use error::{BatchError, BuildError, Error, NewItemError, TrySendError};
pub use id_provider::IdProvider;
pub use idle::Idle;
pub use item::{
    id_being_processed, AddRequest, AddResponse, Message, PoolItem, RemoveRequest, RemoveResponse, Reply,
    Request,
};
pub use mock::SenderAndReceiverMock;
pub use pool::ThreadPool;
pub use sender::SenderAndReceiver;
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use shardpool_macros::pool_item;
pub use shared::PanicReport;
pub use stats::{PoolStats, WorkerStats};

/// Most handlers one worker thread runs at once: each one waiting for a
/// nested call while the worker serves other requests, or calling another
/// item of the worker inline. A call from a handler at this depth fails
/// with [`Error::TooDeep`].
///
/// ```
/// // Deep enough for the graphs of calls services make; shallow enough for
/// // any worker's stack (each level is one handler's frames).
/// assert_eq!(shardpool::MAX_NESTED_DEPTH, 16);
/// ```
pub const MAX_NESTED_DEPTH: usize = chain::MAX_DEPTH;

/// Most calls followed up a chain of nested calls (across workers and
/// pools) to look for a cycle; a call from a handler whose chain is longer
/// fails with [`Error::TooDeep`].
///
/// ```
/// assert_eq!(shardpool::MAX_CHAIN, 64);
/// ```
pub const MAX_CHAIN: usize = chain::MAX_CHAIN;

/// Support for the code `#[pool_item]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    use crate::NewItemError;

    /// What the error type of a `#[pool_item]` constructor must be.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the error type of a pool item's constructor",
        label = "`{Self}` is not an error type or a message",
        note = "use a type implementing `std::error::Error + Send + Sync + 'static`, a `String`, a `&'static str` or `shardpool::NewItemError`; the caller gets it back whole in `Error::InitFailed`"
    )]
    pub trait ConstructorError {
        /// Converts the error, keeping it whole.
        fn into_new_item_error(self) -> NewItemError;
    }

    impl<E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>> ConstructorError for E {
        fn into_new_item_error(self) -> NewItemError {
            NewItemError::from(self)
        }
    }

    impl ConstructorError for NewItemError {
        fn into_new_item_error(self) -> NewItemError {
            self
        }
    }

    /// The conversion `#[pool_item]` applies to a constructor's error.
    pub fn new_item_error<E: ConstructorError>(error: E) -> NewItemError {
        error.into_new_item_error()
    }

    /// What the id parameter of a `#[pool_item]` constructor must be: the
    /// id itself, a `u64` (under any alias).
    #[diagnostic::on_unimplemented(
        message = "the constructor's first parameter is the item's id, a `u64`, but it is `{Self}`",
        label = "expected `u64`, the item's id",
        note = "if `{Self}` is the data the item is created from, say so: `#[pool_item(init = {Self})]` with `fn new(init: {Self})`, or take the id first: `fn new(id: u64, init: {Self})`"
    )]
    pub trait ItemId {
        /// The id, as the constructor takes it.
        fn from_id(id: u64) -> Self;
    }

    impl ItemId for u64 {
        #[inline(always)]
        fn from_id(id: u64) -> Self {
            id
        }
    }

    /// What a `#[pool_item]` constructor that cannot fail returns: the item.
    #[diagnostic::on_unimplemented(
        message = "the constructor returns `{Self}`, which is neither the item nor a `Result` of it",
        label = "expected `Self` or `Result<Self, E>`",
        note = "for an `Option<Self>`, return a `Result` whose error says why there is no item: `.ok_or(\"no such item\")`; a `Result` under another name (an alias) must be written `Result<Self, E>` for the macro to see it"
    )]
    pub trait Constructed<P> {
        /// The item.
        fn item(self) -> P;
    }

    impl<P> Constructed<P> for P {
        #[inline(always)]
        fn item(self) -> P {
            self
        }
    }
}

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
