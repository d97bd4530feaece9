//! Loom models of shardpool's protocols; the models are in `tests/`, one
//! file per protocol, and `README.md` says how to run them.
//!
//! Everything here exists only with `--cfg shardpool_loom`; without it this
//! crate and its tests compile to nothing.

#[cfg(shardpool_loom)]
mod support {
    use shardpool::{NewItemError, Pinning, PoolItem, ThreadPool, ThreadPoolBuilder};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// A pool item with nothing in it: requests echo back, and an
    /// `AddRequest` answers with its id, which is all a model needs to tell
    /// responses apart.
    pub struct Echo;

    impl PoolItem for Echo {
        type Init = ();
        type Api = u64;
        type Response = u64;
        type ThreadState = ();

        fn new_pool_item(_id: u64, _init: ()) -> Result<Self, NewItemError> {
            Ok(Echo)
        }

        fn process_message(&mut self, request: u64) -> u64 {
            request
        }
    }

    /// A builder for a pool of `workers` with rings of `ring_capacity` and no
    /// spinning on either side: an idle worker goes straight to its doorbell
    /// and a caller straight to its slot's park, the paths with the most to
    /// get wrong. (Under loom pinning is a no-op and a non-zero spin is a
    /// single `yield_now`.)
    ///
    /// The pool rings its worker on every batch push (`membarrier(false)`,
    /// the fence form's behaviour). A model of the lazy announcements of the
    /// membarrier form turns them on with `.membarrier(true)` (`lazy.rs`,
    /// and the carry model): both at once multiply every model's executions
    /// past the suite's budget.
    pub fn builder(workers: usize, ring_capacity: usize) -> ThreadPoolBuilder<Echo> {
        ThreadPool::builder()
            .workers(workers)
            .ring_capacity(ring_capacity)
            .caller_spin(Duration::ZERO)
            .worker_spin(Duration::ZERO)
            .pinning(Pinning::Off)
            .membarrier(false)
    }

    /// [`builder`]`(workers, ring_capacity).build()`.
    pub fn pool(workers: usize, ring_capacity: usize) -> ThreadPool<Echo> {
        builder(workers, ring_capacity).build().expect("a pool builds under loom")
    }

    /// Outcomes seen across all of a model's executions, recorded outside
    /// loom (a std mutex, which loom neither tracks nor schedules). A model
    /// whose property is about a race records which way each execution went
    /// and asserts afterwards that every way was explored, so it cannot pass
    /// vacuously because loom never reached the schedules that matter (see
    /// the README on what loom 0.7 can miss).
    #[derive(Clone, Default)]
    pub struct Seen(std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

    impl Seen {
        /// Records one execution's outcome.
        pub fn insert(&self, outcome: impl Into<String>) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(outcome.into());
        }

        /// Panics unless every outcome in `expected` was recorded.
        pub fn assert_all<'a>(&self, expected: impl IntoIterator<Item = &'a str>) {
            let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for outcome in expected {
                assert!(seen.contains(outcome), "no execution had the outcome {outcome}; seen: {seen:?}");
            }
        }
    }

    /// How many preemptions loom explores per execution.
    #[derive(Debug, Clone, Copy)]
    pub enum Preemptions {
        /// `LOOM_MAX_PREEMPTIONS` as given (unbounded if unset).
        Env,
        /// At most this many, whatever `LOOM_MAX_PREEMPTIONS` says: heavier
        /// models cap their own bound so the suite keeps to its time budget.
        AtMost(usize),
        /// No bound: small models are explored completely.
        Unbounded,
    }

    /// Runs `f` under loom with the environment's settings
    /// (`LOOM_MAX_PREEMPTIONS`, `LOOM_MAX_BRANCHES`, ...) and the model's own
    /// preemption bound.
    pub fn check<F>(preemptions: Preemptions, f: F)
    where
        F: Fn() + Sync + Send + 'static,
    {
        let mut builder = loom::model::Builder::new();
        // A whole pool's life (build, calls, thread exits, shutdown) takes a
        // few thousand scheduling points, over loom's default of 1,000.
        if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
            builder.max_branches = 20_000;
        }
        builder.preemption_bound = match preemptions {
            Preemptions::Env => builder.preemption_bound,
            Preemptions::AtMost(cap) => Some(builder.preemption_bound.map_or(cap, |b| b.min(cap))),
            Preemptions::Unbounded => None,
        };
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let start = Instant::now();
        builder.check(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            f();
        });
        // Shown with `--nocapture`: how much of the budget each model takes.
        println!(
            "{} executions in {:.1?} (preemption bound {:?})",
            runs.load(Ordering::Relaxed),
            start.elapsed(),
            builder.preemption_bound
        );
    }
}

#[cfg(shardpool_loom)]
pub use support::*;
