//! The process-wide core allocator, on real pools. Its own test binary: the
//! allocator counts every pool of the process, so no other test may build
//! pools while this one runs.

mod common;

use common::core_ids;
use shardpool::{Pinning, ThreadPool};
use shardpool_samples::Randoms;

fn pinned_core(pool: &ThreadPool<Randoms>, worker: usize) -> Option<usize> {
    pool.stats().workers[worker].core
}

#[test]
fn pools_take_the_least_loaded_cores_and_give_them_back() {
    let cores = core_ids();
    if cores.len() < 2 {
        eprintln!("skipped: needs a process allowed on two cores at least");
        return;
    }
    let one = || ThreadPool::<Randoms>::builder().workers(1).build().unwrap();

    // Two one-worker pools (a parent and its child pool, say) get two cores.
    let first = one();
    let second = one();
    let (a, b) = (pinned_core(&first, 0), pinned_core(&second, 0));
    assert_eq!(a, Some(cores[0]), "the first pool takes the lowest core");
    assert_eq!(b, Some(cores[1]), "the second takes the core the first left free");

    // A dropped pool gives its core back: the next pool takes it.
    drop(first);
    let third = one();
    assert_eq!(pinned_core(&third, 0), Some(cores[0]));

    // An explicit list is counted: a pool pinned to cores[1] twice makes
    // cores[1] the busiest, so the next pool avoids it.
    let fixed = ThreadPool::<Randoms>::builder().workers(2).cores(vec![cores[1]]).build().unwrap();
    assert_eq!((pinned_core(&fixed, 0), pinned_core(&fixed, 1)), (Some(cores[1]), Some(cores[1])));
    let fourth = one();
    let expected = if cores.len() > 2 { cores[2] } else { cores[0] };
    assert_eq!(pinned_core(&fourth, 0), Some(expected));

    // Unpinned pools claim nothing: the next pool gets the core it would
    // have got without them.
    let loose = ThreadPool::<Randoms>::builder().workers(4).pinning(Pinning::Off).build().unwrap();
    assert!(loose.stats().workers.iter().all(|w| w.core.is_none()));
    drop(fourth);
    let fifth = one();
    assert_eq!(pinned_core(&fifth, 0), Some(expected), "the unpinned pool counted on no core");
}
