//! `Randoms`: an item holding seeded random numbers, answering sum and mean
//! requests (the sample of the crate we replace, in shardpool's form).

use shardpool::{Message, NewItemError, PoolItem, Reply, Request};

/// An item holding `count` pseudo-random numbers seeded by its id.
///
/// ```
/// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
/// use shardpool::{AddRequest, ThreadPool};
///
/// let pool = ThreadPool::<Randoms>::new(2)?;
/// pool.send_and_receive_once(AddRequest::new(5, RandomsInit { count: 8 }))?;
/// let sum = pool.send_and_receive_once(SumRequest(5))?;
/// // The same id always yields the same numbers.
/// assert_eq!(sum.sum, Randoms::new(5, 8).sum());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Randoms {
    /// The item's id (also its seed).
    pub id: u64,
    /// The numbers.
    pub numbers: Vec<u64>,
}

impl Randoms {
    /// The item `id` with `count` numbers, as a pool would build it.
    pub fn new(id: u64, count: usize) -> Self {
        let mut state = id ^ 0x5DEE_CE66_D1CE_4E5B;
        let numbers = (0..count)
            .map(|_| {
                // splitmix64, kept to 32 bits so sums cannot overflow.
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) >> 32
            })
            .collect();
        Self { id, numbers }
    }

    /// The sum of the numbers.
    pub fn sum(&self) -> u128 {
        self.numbers.iter().map(|&n| u128::from(n)).sum()
    }

    /// The mean of the numbers (0 when there are none).
    pub fn mean(&self) -> u128 {
        match self.numbers.len() {
            0 => 0,
            n => self.sum() / n as u128,
        }
    }
}

/// What a [`Randoms`] is created from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomsInit {
    /// How many numbers to generate.
    pub count: usize,
}

/// Ask item `.0` for the mean of its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeanRequest(pub u64);

/// The mean of an item's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeanResponse {
    /// The item's id.
    pub id: u64,
    /// The mean.
    pub mean: u128,
}

/// Ask item `.0` for the sum of its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SumRequest(pub u64);

/// The sum of an item's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SumResponse {
    /// The item's id.
    pub id: u64,
    /// The sum.
    pub sum: u128,
}

/// The requests a [`Randoms`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomsApi {
    /// See [`MeanRequest`].
    Mean(MeanRequest),
    /// See [`SumRequest`].
    Sum(SumRequest),
}

/// The responses of a [`Randoms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomsResponse {
    /// See [`MeanResponse`].
    Mean(MeanResponse),
    /// See [`SumResponse`].
    Sum(SumResponse),
}

impl PoolItem for Randoms {
    type Init = RandomsInit;
    type Api = RandomsApi;
    type Response = RandomsResponse;
    type ThreadState = ();

    fn new_pool_item(id: u64, init: RandomsInit) -> Result<Self, NewItemError> {
        Ok(Randoms::new(id, init.count))
    }

    fn process_message(&mut self, request: RandomsApi) -> RandomsResponse {
        match request {
            RandomsApi::Mean(MeanRequest(id)) => {
                RandomsResponse::Mean(MeanResponse { id, mean: self.mean() })
            }
            RandomsApi::Sum(SumRequest(id)) => RandomsResponse::Sum(SumResponse { id, sum: self.sum() }),
        }
    }
}

impl Request<Randoms> for MeanRequest {
    type Response = MeanResponse;

    fn into_message(self) -> Message<Randoms> {
        Message::Call { id: self.0, request: RandomsApi::Mean(self) }
    }

    fn from_reply(reply: Reply<Randoms>) -> Option<MeanResponse> {
        match reply {
            Reply::Response(RandomsResponse::Mean(r)) => Some(r),
            _ => None,
        }
    }
}

impl Request<Randoms> for SumRequest {
    type Response = SumResponse;

    fn into_message(self) -> Message<Randoms> {
        Message::Call { id: self.0, request: RandomsApi::Sum(self) }
    }

    fn from_reply(reply: Reply<Randoms>) -> Option<SumResponse> {
        match reply {
            Reply::Response(RandomsResponse::Sum(r)) => Some(r),
            _ => None,
        }
    }
}

/// A canned answer for a mock pool of [`Randoms`].
///
/// ```
/// use shardpool_samples::{MeanResponse, Randoms, RandomsResponse};
/// use shardpool::Reply;
///
/// let reply = Reply::<Randoms>::from(MeanResponse { id: 1, mean: 2 });
/// assert!(matches!(reply, Reply::Response(RandomsResponse::Mean(MeanResponse { id: 1, mean: 2 }))));
/// ```
impl From<MeanResponse> for Reply<Randoms> {
    fn from(r: MeanResponse) -> Self {
        Reply::Response(RandomsResponse::Mean(r))
    }
}

/// A canned answer for a mock pool of [`Randoms`].
///
/// ```
/// use shardpool_samples::{Randoms, RandomsResponse, SumResponse};
/// use shardpool::Reply;
///
/// let reply = Reply::<Randoms>::from(SumResponse { id: 1, sum: 2 });
/// assert!(matches!(reply, Reply::Response(RandomsResponse::Sum(SumResponse { id: 1, sum: 2 }))));
/// ```
impl From<SumResponse> for Reply<Randoms> {
    fn from(r: SumResponse) -> Self {
        Reply::Response(RandomsResponse::Sum(r))
    }
}
