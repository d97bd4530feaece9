//! `item_table`: the worker's id → item lookup, under the hashers a worker
//! could use. Decides the item table's hasher (`src/worker/host.rs`).
//!
//! Subjects: foldhash's seeded `fast::RandomState` (the choice), rustc-hash's
//! `FxBuildHasher` (unseeded), the standard library's SipHash `RandomState`
//! (seeded, slow), all over a `HashMap<u64, u64>` of 1,000 items, looked up
//! with dense ids (0..1000, the common case) and with sparse random ids.
//!
//! ```sh
//! cargo bench --bench item_table
//! ```

use criterion::{BenchmarkId, Criterion, Throughput};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hint::black_box;

const ITEMS: u64 = 1000;

fn ids(sparse: bool) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..ITEMS)
        .map(|i| {
            if sparse {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            } else {
                i
            }
        })
        .collect()
}

fn lookups<S: BuildHasher + Default>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
) {
    for sparse in [false, true] {
        let keys = ids(sparse);
        let map: HashMap<u64, u64, S> = keys.iter().map(|&k| (k, k)).collect();
        let label = if sparse { "sparse" } else { "dense" };
        c.bench_with_input(BenchmarkId::new(name, label), &keys, |b, keys| {
            b.iter(|| {
                let mut sum = 0u64;
                for k in keys {
                    sum = sum.wrapping_add(*map.get(black_box(k)).unwrap());
                }
                sum
            })
        });
    }
}

fn item_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("item_table");
    g.throughput(Throughput::Elements(ITEMS));
    lookups::<foldhash::fast::RandomState>(&mut g, "foldhash");
    lookups::<rustc_hash::FxBuildHasher>(&mut g, "fxhash");
    lookups::<std::collections::hash_map::RandomState>(&mut g, "siphash");
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    item_table(&mut c);
    c.final_summary();
}
