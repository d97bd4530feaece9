//! Sample [shardpool] items, used by shardpool's docs, tests,
//! examples, benchmarks and perf harness. They live in their own crate so
//! that the library ships none of them.
//!
//! - [`Randoms`]: seeded numbers answering sum and mean requests, written by
//!   hand against [`PoolItem`](shardpool::PoolItem) and [`Request`](shardpool::Request).
//! - [`ChatRoom`]: the smallest readable item, written with
//!   [`pool_item`](shardpool::pool_item).
//! - [`UserSession`]: an item holding `Rc<RefCell<..>>` state, so not `Send`.
//! - [`RandomsBatch`]: items that own children in a second pool and fan work
//!   out to them, removing and reporting them at shutdown.

mod chat_room;
mod randoms;
mod randoms_batch;
mod user_session;

pub use chat_room::{
    ChatRoom, ChatRoomApi, ChatRoomInit, ChatRoomResponse, HistoryRequest, HistoryResponse, PostRequest,
    PostResponse,
};
pub use randoms::{
    MeanRequest, MeanResponse, Randoms, RandomsApi, RandomsInit, RandomsResponse, SumRequest, SumResponse,
};
pub use randoms_batch::{
    BatchShutdown, ChildrenRequest, ChildrenResponse, RandomsBatch, RandomsBatchApi, RandomsBatchInit,
    RandomsBatchResponse, SumOfSumsRequest, SumOfSumsResponse,
};
pub use user_session::{
    HistoryTracker, LogActionRequest, LogActionResponse, LogRequest, LogResponse, UserSession,
    UserSessionApi, UserSessionInit, UserSessionResponse,
};

/// The old crate's name for the request that creates a [`Randoms`]: here an
/// alias of [`AddRequest<Randoms>`](shardpool::AddRequest), which carries the
/// init data beside the id.
///
/// ```
/// use shardpool::ThreadPool;
/// use shardpool_samples::{Randoms, RandomsAddRequest, RandomsInit};
///
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// let added = pool.send_and_receive_once(RandomsAddRequest::new(1, RandomsInit { count: 10 }))?;
/// assert_eq!(added.id, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type RandomsAddRequest = shardpool::AddRequest<Randoms>;
