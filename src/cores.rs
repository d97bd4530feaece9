//! The process-wide core allocator: which core each pinned worker gets.
//!
//! Every pool of the process draws its workers' cores from one table of how
//! many live pinned workers each core already has. A worker takes the
//! least-loaded core of its candidates (the process's cores, in ascending
//! order; ties go to the lower core), so a second pool, a child pool built
//! by the first one's items say, lands on the cores the first left free
//! instead of stacking on core 0. A core list given to the builder wins
//! (worker `i` on `cores[i % len]`) and is counted like any other claim.
//! A worker's claim ends when the worker exits (a worker left running by a
//! timed-out shutdown keeps its core counted), the rest when the pool's
//! shared state is dropped.
//!
//! This is bookkeeping, not a protocol: one lock taken at build and at drop,
//! never on a request path.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Live pinned workers per core, over every pool of the process.
static LOADS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

fn loads() -> std::sync::MutexGuard<'static, BTreeMap<usize, usize>> {
    // The table holds plain counts, consistent after every statement: a
    // panic elsewhere while it was held cannot have torn it.
    LOADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cores of one pool's workers, by worker index. Each is given back
/// when its worker exits ([`release`](Self::release)), the rest on drop.
#[derive(Debug)]
pub(crate) struct CoreClaim {
    cores: Mutex<Vec<Option<usize>>>,
}

fn give_back(table: &mut BTreeMap<usize, usize>, core: usize) {
    if let Some(n) = table.get_mut(&core) {
        *n -= 1;
        if *n == 0 {
            table.remove(&core);
        }
    }
}

impl CoreClaim {
    /// No claim: for pools that do not pin.
    pub(crate) fn none() -> Self {
        CoreClaim { cores: Mutex::new(Vec::new()) }
    }

    /// Claims a core for each of `workers` workers among `candidates`
    /// (non-empty), least-loaded first.
    pub(crate) fn least_loaded(workers: usize, candidates: &[usize]) -> Self {
        let mut table = loads();
        let cores = (0..workers)
            .map(|_| {
                let load = |c: &usize| table.get(c).copied().unwrap_or(0);
                // `min_by_key` keeps the first of equal keys: the lower core.
                let core = *candidates.iter().min_by_key(|c| load(c)).expect("candidates are not empty");
                *table.entry(core).or_insert(0) += 1;
                Some(core)
            })
            .collect();
        CoreClaim { cores: Mutex::new(cores) }
    }

    /// Claims `cores[i % cores.len()]` (non-empty) for worker `i`: the
    /// builder's explicit list.
    pub(crate) fn exactly(workers: usize, cores: &[usize]) -> Self {
        let mut table = loads();
        let cores: Vec<Option<usize>> = (0..workers).map(|i| Some(cores[i % cores.len()])).collect();
        for c in cores.iter().flatten() {
            *table.entry(*c).or_insert(0) += 1;
        }
        CoreClaim { cores: Mutex::new(cores) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Option<usize>>> {
        // Plain data, consistent after every statement.
        self.cores.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The core claimed for worker `index`, if any (and not given back).
    pub(crate) fn core(&self, index: usize) -> Option<usize> {
        self.entries().get(index).copied().flatten()
    }

    /// Gives back worker `index`'s core: the worker has exited. (A worker
    /// left running by a timed-out shutdown keeps its core counted until it
    /// does.)
    pub(crate) fn release(&self, index: usize) {
        let taken = self.entries().get_mut(index).and_then(Option::take);
        if let Some(core) = taken {
            give_back(&mut loads(), core);
        }
    }
}

impl Drop for CoreClaim {
    fn drop(&mut self) {
        let left: Vec<usize> = self.entries().drain(..).flatten().collect();
        if !left.is_empty() {
            let mut table = loads();
            for core in left {
                give_back(&mut table, core);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is process-wide, so the unit tests use cores no real pool
    /// of this test binary can have (far above any machine's count).
    const BASE: usize = 1 << 20;

    fn held(claim: &CoreClaim) -> Vec<usize> {
        claim.entries().iter().flatten().copied().collect()
    }

    #[test]
    fn least_loaded_spreads_pools_and_releases_on_drop() {
        let cands = [BASE, BASE + 1, BASE + 2];
        let a = CoreClaim::least_loaded(2, &cands);
        assert_eq!(held(&a), [BASE, BASE + 1]);
        // A second pool starts on the core the first left free.
        let b = CoreClaim::least_loaded(2, &cands);
        assert_eq!(held(&b), [BASE + 2, BASE]);
        drop(a);
        let c = CoreClaim::least_loaded(1, &cands);
        assert_eq!(held(&c), [BASE + 1]);
        // A worker that exits gives its core back at once.
        b.release(0);
        assert_eq!(held(&b), [BASE]);
        let d = CoreClaim::least_loaded(1, &cands);
        assert_eq!(held(&d), [BASE + 2]);
        drop(d);
        drop((b, c));
        assert!(loads().range(BASE..BASE + 3).next().is_none(), "every claim was given back");
    }

    #[test]
    fn an_explicit_list_is_counted() {
        let cands = [BASE + 10, BASE + 11];
        let fixed = CoreClaim::exactly(3, &[BASE + 10]);
        assert_eq!(held(&fixed), [BASE + 10; 3]);
        let next = CoreClaim::least_loaded(1, &cands);
        assert_eq!(held(&next), [BASE + 11]);
        drop((fixed, next));
        assert!(loads().range(BASE + 10..BASE + 12).next().is_none());
    }
}
