//! `Echo`: the trivial bench item, in shardpool's terms. It answers
//! [`Ping`] with its own id and [`Burn`] with the result of some calibrated
//! work (see [`work`](super::work)).

use super::work::burn;
use shardpool::{
    AddRequest, Message, NewItemError, Pinning, PoolItem, Reply, Request, ThreadPool, ThreadPoolBuilder,
};

/// How many `Echo` items the bench pools hold (ids `0..ITEMS`).
pub const ITEMS: u64 = 1024;

/// The trivial item: it only knows its id.
pub struct Echo {
    id: u64,
}

/// What an [`Echo`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoApi {
    /// Answer with the item's id.
    Ping,
    /// Run this many rounds of [`burn`] and answer with its result.
    Burn(u64),
}

/// Ask item `.0` for its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping(pub u64);

/// Ask item `id` to burn `rounds` rounds of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burn {
    /// The addressed item.
    pub id: u64,
    /// Rounds of [`burn`].
    pub rounds: u64,
}

impl PoolItem for Echo {
    type Init = ();
    type Api = EchoApi;
    type Response = u64;
    type ThreadState = ();

    fn new_pool_item(id: u64, _init: ()) -> Result<Self, NewItemError> {
        Ok(Echo { id })
    }

    fn process_message(&mut self, request: EchoApi) -> u64 {
        match request {
            EchoApi::Ping => self.id,
            EchoApi::Burn(rounds) => burn(rounds) ^ self.id,
        }
    }
}

fn response(reply: Reply<Echo>) -> Option<u64> {
    match reply {
        Reply::Response(v) => Some(v),
        _ => None,
    }
}

impl Request<Echo> for Ping {
    type Response = u64;

    fn into_message(self) -> Message<Echo> {
        Message::Call { id: self.0, request: EchoApi::Ping }
    }

    fn from_reply(reply: Reply<Echo>) -> Option<u64> {
        response(reply)
    }
}

impl Request<Echo> for Burn {
    type Response = u64;

    fn into_message(self) -> Message<Echo> {
        Message::Call { id: self.id, request: EchoApi::Burn(self.rounds) }
    }

    fn from_reply(reply: Reply<Echo>) -> Option<u64> {
        response(reply)
    }
}

/// A pool of `workers` pinned workers (named `echo-{i}`) holding the items
/// `0..ITEMS`, with the default settings.
pub fn echo_pool(workers: usize) -> ThreadPool<Echo> {
    echo_pool_with(workers, |b| b)
}

/// [`echo_pool`] with some settings changed by `configure`.
pub fn echo_pool_with(
    workers: usize,
    configure: impl FnOnce(ThreadPoolBuilder<Echo>) -> ThreadPoolBuilder<Echo>,
) -> ThreadPool<Echo> {
    let builder = ThreadPool::<Echo>::builder()
        .workers(workers)
        .pinning(Pinning::BestEffort)
        .thread_name(|i| format!("echo-{i}"));
    let pool = configure(builder).build().expect("build the Echo pool");
    let added = pool
        .send_and_receive((0..ITEMS).map(|id| AddRequest::new(id, ())))
        .expect("register with the Echo pool")
        .filter(Result::is_ok)
        .count();
    assert_eq!(added as u64, ITEMS);
    pool
}

/// One round trip: ping item `id`.
#[inline]
pub fn ping(pool: &ThreadPool<Echo>, id: u64) -> u64 {
    pool.send_and_receive_once(Ping(id)).expect("ping an Echo")
}

/// One batch of `n` pings to the items `first..first + n` (mod [`ITEMS`]);
/// returns the xor of the answers.
#[inline]
pub fn ping_batch(pool: &ThreadPool<Echo>, first: u64, n: u64) -> u64 {
    pool.send_and_receive((first..first + n).map(|i| Ping(i % ITEMS)))
        .expect("send a batch of pings")
        .fold(0, |acc, r| acc ^ r.expect("a ping's answer"))
}

/// One batch of `n` burns of `rounds` each, to the items `0..n` (mod
/// [`ITEMS`]); returns the xor of the answers.
#[inline]
pub fn burn_batch(pool: &ThreadPool<Echo>, n: u64, rounds: u64) -> u64 {
    pool.send_and_receive((0..n).map(|i| Burn { id: i % ITEMS, rounds }))
        .expect("send a batch of burns")
        .fold(0, |acc, r| acc ^ r.expect("a burn's answer"))
}

/// One call: item `id` burns `rounds` rounds.
#[inline]
pub fn burn_once(pool: &ThreadPool<Echo>, id: u64, rounds: u64) -> u64 {
    pool.send_and_receive_once(Burn { id, rounds }).expect("a burn's answer")
}
