//! The same bench items in messaging_thread_pool 5's terms: `MtpEcho`
//! (ping and burn, like [`Echo`](super::echo::Echo)) and `MtpRandoms` (the
//! very same numbers and arithmetic as shardpool's `shardpool_samples::Randoms`).

use super::echo::ITEMS;
use super::place;
use super::work::burn;
use messaging_thread_pool::request_response::RequestResponse;
use messaging_thread_pool::{
    pool_item, AddResponse, IdTargeted, RequestWithResponse, ThreadPool, ThreadRequestResponse,
};
use shardpool_samples::Randoms;

/// The trivial item.
#[derive(Debug)]
pub struct MtpEcho {
    id: u64,
}

impl IdTargeted for MtpEcho {
    fn id(&self) -> u64 {
        self.id
    }
}

#[pool_item]
impl MtpEcho {
    /// The item `id`.
    pub fn new(id: u64) -> Self {
        Self { id }
    }

    /// Answers with the item's id.
    #[messaging(MtpPing, MtpPingResponse)]
    pub fn ping(&self) -> u64 {
        self.id
    }

    /// Burns `rounds` rounds of work.
    #[messaging(MtpBurn, MtpBurnResponse)]
    pub fn burn(&self, rounds: u64) -> u64 {
        burn(rounds) ^ self.id
    }
}

/// A messaging_thread_pool pool of `workers` threads holding the items
/// `0..ITEMS`. Built from an unpinned thread so its threads may run anywhere.
pub fn mtp_echo_pool(workers: usize) -> ThreadPool<MtpEcho> {
    place::unpinned(|| {
        let pool = ThreadPool::<MtpEcho>::new(workers as u64);
        let added = pool
            .send_and_receive((0..ITEMS).map(MtpEchoInit))
            .expect("add MtpEcho items")
            .filter(|r: &AddResponse| r.result().is_ok())
            .count();
        assert_eq!(added as u64, ITEMS);
        pool
    })
}

/// One round trip: ping item `id`.
#[inline]
pub fn mtp_ping(pool: &ThreadPool<MtpEcho>, id: u64) -> u64 {
    pool.send_and_receive_once(MtpPing(id)).expect("ping an MtpEcho").result
}

/// One batch of `n` pings to the items `first..first + n` (mod [`ITEMS`]);
/// returns the xor of the answers (which arrive in any order).
#[inline]
pub fn mtp_ping_batch(pool: &ThreadPool<MtpEcho>, first: u64, n: u64) -> u64 {
    pool.send_and_receive((first..first + n).map(|i| MtpPing(i % ITEMS)))
        .expect("send a batch of pings")
        .fold(0, |acc, r| acc ^ r.result)
}

/// One batch of `n` burns of `rounds` each, to the items `0..n` (mod
/// [`ITEMS`]).
#[inline]
pub fn mtp_burn_batch(pool: &ThreadPool<MtpEcho>, n: u64, rounds: u64) -> u64 {
    pool.send_and_receive((0..n).map(|i| MtpBurn(i % ITEMS, rounds)))
        .expect("send a batch of burns")
        .fold(0, |acc, r| acc ^ r.result)
}

/// What an [`MtpRandoms`] is created from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtpRandomsInit {
    /// The item's id (also its seed).
    pub id: u64,
    /// How many numbers it holds.
    pub count: usize,
}

impl IdTargeted for MtpRandomsInit {
    fn id(&self) -> u64 {
        self.id
    }
}

impl RequestWithResponse<MtpRandoms> for MtpRandomsInit {
    type Response = AddResponse;
}

impl From<MtpRandomsInit> for ThreadRequestResponse<MtpRandoms> {
    fn from(request: MtpRandomsInit) -> Self {
        ThreadRequestResponse::AddPoolItem(RequestResponse::Request(request))
    }
}

/// shardpool's `Randoms` sample hosted by messaging_thread_pool: same
/// numbers, same sum and mean.
#[derive(Debug)]
pub struct MtpRandoms {
    inner: Randoms,
}

impl IdTargeted for MtpRandoms {
    fn id(&self) -> u64 {
        self.inner.id
    }
}

#[pool_item(Init = "MtpRandomsInit")]
impl MtpRandoms {
    /// The item described by `init`.
    pub fn new(init: MtpRandomsInit) -> Self {
        Self { inner: Randoms::new(init.id, init.count) }
    }

    /// The sum of the numbers.
    #[messaging(MtpSum, MtpSumResponse)]
    pub fn sum(&self) -> u128 {
        self.inner.sum()
    }

    /// The mean of the numbers.
    #[messaging(MtpMean, MtpMeanResponse)]
    pub fn mean(&self) -> u128 {
        self.inner.mean()
    }
}

/// A messaging_thread_pool pool of `workers` threads holding `items` Randoms
/// of `count` numbers each.
pub fn mtp_randoms_pool(workers: usize, items: u64, count: usize) -> ThreadPool<MtpRandoms> {
    place::unpinned(|| {
        let pool = ThreadPool::<MtpRandoms>::new(workers as u64);
        let added = pool
            .send_and_receive((0..items).map(|id| MtpRandomsInit { id, count }))
            .expect("add MtpRandoms items")
            .filter(|r: &AddResponse| r.result().is_ok())
            .count();
        assert_eq!(added as u64, items);
        pool
    })
}
