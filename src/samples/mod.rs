//! Sample pool items, used by the docs, the tests, the examples and the
//! benchmarks.

mod randoms;

pub use randoms::{
    MeanRequest, MeanResponse, Randoms, RandomsApi, RandomsInit, RandomsResponse, SumRequest, SumResponse,
};
