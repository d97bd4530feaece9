//! `ChatRoom`: the smallest useful item, written with `#[pool_item]`.

use shardpool::pool_item;

/// A chat room: people post lines, and anyone can read the history.
///
/// The whole item is this struct and one annotated `impl` block; the
/// macro generates [`ChatRoomInit`], [`PostRequest`] / [`PostResponse`],
/// [`HistoryRequest`] / [`HistoryResponse`], the enums [`ChatRoomApi`] and
/// [`ChatRoomResponse`], and the `PoolItem` implementation.
///
/// ```
/// use shardpool_samples::{ChatRoom, ChatRoomInit, HistoryRequest, PostRequest};
/// use shardpool::ThreadPool;
///
/// let pool = ThreadPool::<ChatRoom>::new(2)?;
/// pool.send_and_receive_once(ChatRoomInit(1))?;
/// pool.send_and_receive_once(PostRequest(1, "ann".into(), "hello".into()))?;
/// let reply = pool.send_and_receive_once(PostRequest(1, "bob".into(), "hi ann".into()))?;
/// assert_eq!(reply.result, 2); // the room's second line
/// let history = pool.send_and_receive_once(HistoryRequest(1))?.result;
/// assert_eq!(history, ["ann: hello", "bob: hi ann"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ChatRoom {
    history: Vec<String>,
}

#[pool_item]
impl ChatRoom {
    /// An empty room.
    pub fn new(_id: u64) -> Self {
        Self::default()
    }

    /// Adds a line by `user`; returns how many lines the room now has.
    #[messaging(PostRequest, PostResponse)]
    pub fn post(&mut self, user: String, text: String) -> usize {
        self.history.push(format!("{user}: {text}"));
        self.history.len()
    }

    /// Every line posted so far, oldest first.
    #[messaging(HistoryRequest, HistoryResponse)]
    pub fn history(&self) -> Vec<String> {
        self.history.clone()
    }
}
