//! Sample pool items, used by the docs, the tests, the examples and the
//! benchmarks.
//!
//! - [`Randoms`]: seeded numbers answering sum and mean requests, written by
//!   hand against [`PoolItem`](crate::PoolItem) and [`Request`](crate::Request).
//! - [`ChatRoom`]: the smallest readable item, written with
//!   [`pool_item`](crate::pool_item).
//! - [`UserSession`]: an item holding `Rc<RefCell<..>>` state, so not `Send`.
//! - [`RandomsBatch`]: items that own children in a second pool and fan work
//!   out to them, removing and reporting them at shutdown.

#[cfg(feature = "macros")]
mod chat_room;
mod randoms;
#[cfg(feature = "macros")]
mod randoms_batch;
#[cfg(feature = "macros")]
mod user_session;

#[cfg(feature = "macros")]
pub use chat_room::{
    ChatRoom, ChatRoomApi, ChatRoomInit, ChatRoomResponse, HistoryRequest, HistoryResponse, PostRequest,
    PostResponse,
};
pub use randoms::{
    MeanRequest, MeanResponse, Randoms, RandomsApi, RandomsInit, RandomsResponse, SumRequest, SumResponse,
};
#[cfg(feature = "macros")]
pub use randoms_batch::{
    BatchShutdown, ChildrenRequest, ChildrenResponse, RandomsBatch, RandomsBatchApi, RandomsBatchInit,
    RandomsBatchResponse, SumOfSumsRequest, SumOfSumsResponse,
};
#[cfg(feature = "macros")]
pub use user_session::{
    HistoryTracker, LogActionRequest, LogActionResponse, LogRequest, LogResponse, UserSession,
    UserSessionApi, UserSessionInit, UserSessionResponse,
};
