//! The worker: owns its items, drains its callers' rings in batches, and
//! sleeps when idle.
//!
//! # The loop
//!
//! 1. Take the doorbell's bits (plus lanes left over from the last pass).
//! 2. CONTROL: accept new callers; if the pool is closed, go to shutdown.
//!    A new lane is served in the same pass (a request may have been
//!    pushed before the lane was adopted; its caller rang the lane's bit
//!    too, so this only saves a round of the loop).
//! 3. For each hinted lane: drain up to `max_batch` requests in one chunk,
//!    process them and publish each reply. A lane still non-empty is carried to the next pass, so one busy
//!    caller gets at most `max_batch` per pass and cannot starve the others.
//! 4. With nothing to do: spin (bounded, yielding), then sleep on the
//!    doorbell (see `doorbell.rs` for why no wake-up is lost).
//!
//! Taking the hint bits (a `swap`) comes *before* the drain: a caller that
//! pushes after our drain looked at its ring sets its bit again, and a
//! caller whose `fetch_or` came before our `swap` had its push acquired by
//! it, so the drain sees it.
//!
//! Every piece of user code (constructor, hooks, `process_message`, drop)
//! runs under `catch_unwind`: a panic costs the request and the item, never
//! the worker.

use crate::caller::{CallerShared, Envelope, Outcome, Registration};
use crate::doorbell::{CONTROL, LANE_BITS, LANE_MASK};
use crate::error::{panic_message, Error};
use crate::item::{Message, PoolItem, Processing, Reply};
use crate::pool::{PanicReport, Shared};
use crate::stats::WorkerCounters;
use crate::sync::atomic::Ordering;
use crate::sync::barrier;
use crate::sync::ring::Consumer;
use crate::sync::{Arc, Backoff, Spin, Spinner};
use crate::trace::{event, span};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A fast hasher for `u64` ids (a multiply and a fold, good in the high and
/// the low bits, which hashbrown uses for tags and buckets).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type Items<P> = HashMap<u64, P, BuildHasherDefault<IdHasher>>;

/// One caller's ring, as its worker sees it.
struct Lane<P: PoolItem> {
    caller: Arc<CallerShared<P>>,
    consumer: Consumer<Envelope<P>>,
}

/// What processes messages: the items and the thread state.
struct Core<P: PoolItem> {
    index: usize,
    items: Items<P>,
    state: P::ThreadState,
    panic_handler: Option<crate::pool::PanicHandler>,
}

pub(crate) struct Worker<P: PoolItem> {
    pool: Arc<Shared<P>>,
    core: Core<P>,
    /// Lanes by hint bit: a lane with id `l` is in `buckets[l % LANE_BITS]`.
    buckets: Vec<Vec<Lane<P>>>,
    lanes: usize,
    /// Hint bits of lanes left non-empty by the last pass.
    carry: u64,
}

impl<P: PoolItem> Worker<P> {
    pub(crate) fn new(pool: Arc<Shared<P>>, index: usize, state: P::ThreadState) -> Self {
        let panic_handler = pool.config.panic_handler.clone();
        Self {
            pool,
            core: Core { index, items: Items::default(), state, panic_handler },
            buckets: (0..LANE_BITS).map(|_| Vec::new()).collect(),
            lanes: 0,
            carry: 0,
        }
    }

    fn counters(&self) -> &WorkerCounters {
        &self.pool.workers[self.core.index].counters
    }

    /// Runs until the pool closes, then drains and shuts the items down.
    pub(crate) fn run(mut self) {
        loop {
            let mut bits =
                self.pool.workers[self.core.index].doorbell.take() | std::mem::take(&mut self.carry);
            if bits & CONTROL != 0 {
                self.accept();
                // Relaxed: `take` acquired shutdown's ring, which follows its
                // store of `closed`.
                if self.pool.closed.load(Ordering::Relaxed) {
                    break;
                }
                // Serve the new lanes now rather than after a sleep.
                bits |= std::mem::take(&mut self.carry);
            }
            let hints = bits & LANE_MASK;
            if hints == 0 {
                self.idle();
                continue;
            }
            let mut bits = hints;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if self.serve_bucket(b, self.pool.config.max_batch) {
                    self.carry |= 1 << b;
                }
            }
            WorkerCounters::set(&self.counters().items, self.core.items.len() as u64);
        }
        self.shutdown();
    }

    /// Adopts the rings of newly registered callers.
    fn accept(&mut self) {
        let new = std::mem::take(
            &mut *self.pool.workers[self.core.index].registrations.lock().unwrap_or_else(|e| e.into_inner()),
        );
        for Registration { caller, consumer } in new {
            let b = (caller.lane % LANE_BITS) as usize;
            self.buckets[b].push(Lane { caller, consumer });
            self.lanes += 1;
            // A request may have been pushed before we adopted the lane.
            self.carry |= 1 << b;
        }
        WorkerCounters::set(&self.counters().callers, self.lanes as u64);
    }

    /// Serves every lane of hint bit `b`, at most `max` requests each.
    /// Returns whether some lane still has work.
    fn serve_bucket(&mut self, b: usize, max: usize) -> bool {
        let w = self.core.index;
        let mut more = false;
        let mut i = 0;
        while i < self.buckets[b].len() {
            let lane = &mut self.buckets[b][i];
            let caller = &lane.caller;
            let core = &mut self.core;
            let n = lane.consumer.drain(max, |env| core.process(env, caller));
            if n > 0 {
                self.pool.workers[w].counters.add_batch(n as u64);
            }
            if !lane.consumer.is_empty() {
                more = true;
            } else if lane.caller.retired.load(Ordering::Acquire) && lane.consumer.is_empty() {
                // Acquire: pairs with the Release store of `retired`; every
                // push the caller made is visible, and the ring is empty.
                self.buckets[b].swap_remove(i);
                self.lanes -= 1;
                WorkerCounters::set(&self.counters().callers, self.lanes as u64);
                continue;
            }
            i += 1;
        }
        more
    }

    /// Nothing to do: spin a while, then sleep until a caller rings.
    fn idle(&mut self) {
        let doorbell = &self.pool.workers[self.core.index].doorbell;
        // Yield often: a caller may share this core, and must not wait for
        // the end of our spin to get it.
        let mut spinner = Spinner::new(Spin { budget: self.pool.config.worker_spin, yield_every: 64 });
        while spinner.spin() {
            if doorbell.pending() {
                return;
            }
        }
        if doorbell.try_sleep() {
            crate::sync::atomic::bump(&self.pool.workers[self.core.index].counters.parks, 1);
            doorbell.park_until_rung();
        }
    }

    /// The pool is closed: answer everything already sent, wait for callers
    /// still inside their gate, then shut the items down.
    fn shutdown(&mut self) {
        event!(debug, worker = self.core.index, items = self.core.items.len(), "worker shutting down");
        let mut backoff = Backoff::new();
        loop {
            self.accept();
            self.drain_all();
            // The workers' side of the shutdown gate (see caller.rs): a light
            // barrier, then Acquire loads (pairing with the callers' Release
            // in `leave`, so a caller seen outside its gate has its push
            // visible).
            barrier::light();
            let busy = self.buckets.iter().flatten().any(|l| l.caller.active.load(Ordering::Acquire));
            if !busy {
                // Every gated push is complete and visible (the caller's
                // Release store of `active`): answer what is left.
                self.drain_all();
                break;
            }
            backoff.wait();
        }
        let core = &mut self.core;
        for (id, mut item) in core.items.drain() {
            let state = &mut core.state;
            let result = catch_unwind(AssertUnwindSafe(|| {
                let _p = Processing::enter(id);
                item.on_shutdown(state);
                drop(item);
            }));
            if let Err(payload) = result {
                let message = panic_message(&*payload);
                report(&core.panic_handler, core.index, Some(id), message);
            }
        }
        WorkerCounters::set(&self.counters().items, 0);
        self.buckets.clear();
        self.lanes = 0;
        WorkerCounters::set(&self.counters().callers, 0);
    }

    fn drain_all(&mut self) {
        for b in 0..self.buckets.len() {
            while self.serve_bucket(b, usize::MAX) {}
        }
    }
}

impl<P: PoolItem> Core<P> {
    /// Handles one request and publishes its outcome into the caller's slot.
    fn process(&mut self, env: Envelope<P>, caller: &CallerShared<P>) {
        let Envelope { msg, slot } = env;
        let outcome = self.handle(msg);
        // SAFETY: the slot's memory is owned by `caller`, which we hold an
        // `Arc` to for the whole call.
        if let Err(stale) = unsafe { slot.publish(outcome, &caller.thread) } {
            // A reply for an old use of the slot: nobody may read it.
            drop(stale);
        }
    }

    fn handle(&mut self, msg: Message<P>) -> Outcome<P> {
        span!(TRACE, "process", worker = self.index, id = msg.id());
        match msg {
            Message::Call { id, request } => {
                let Some(item) = self.items.get_mut(&id) else {
                    event!(debug, worker = self.index, id, "request for an unknown id");
                    return Err(Error::UnknownId { id });
                };
                let state = &mut self.state;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let _p = Processing::enter(id);
                    item.pre_process(state);
                    let response = item.process_message(request);
                    item.post_process(state);
                    response
                }));
                match result {
                    Ok(response) => Ok(Reply::Response(response)),
                    Err(payload) => Err(self.item_panicked(id, payload)),
                }
            }
            Message::Add { id, init } => {
                if self.items.contains_key(&id) {
                    event!(debug, worker = self.index, id, "add refused: duplicate id");
                    return Err(Error::DuplicateId { id });
                }
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let _p = Processing::enter(id);
                    P::new_pool_item(id, init)
                }));
                match result {
                    Ok(Ok(item)) => {
                        self.items.insert(id, item);
                        event!(debug, worker = self.index, id, "item added");
                        Ok(Reply::Added { id })
                    }
                    Ok(Err(e)) => {
                        event!(warn, worker = self.index, id, error = %e, "item constructor failed");
                        Err(Error::InitFailed { id, message: e.0 })
                    }
                    Err(payload) => Err(self.item_panicked(id, payload)),
                }
            }
            Message::Remove { id } => match self.items.remove(&id) {
                None => Ok(Reply::Removed { id, existed: false }),
                Some(item) => {
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        let _p = Processing::enter(id);
                        drop(item);
                    }));
                    event!(debug, worker = self.index, id, "item removed");
                    match result {
                        Ok(()) => Ok(Reply::Removed { id, existed: true }),
                        Err(payload) => Err(self.item_panicked(id, payload)),
                    }
                }
            },
        }
    }

    /// An item panicked: drop it (its state may be torn), tell the panic
    /// handler, and build the caller's error.
    #[cold]
    fn item_panicked(&mut self, id: u64, payload: Box<dyn std::any::Any + Send>) -> Error {
        let message = panic_message(&*payload);
        drop(payload);
        event!(error, worker = self.index, id, panic = %message, "item panicked and was removed");
        if let Some(item) = self.items.remove(&id) {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(item)));
        }
        report(&self.panic_handler, self.index, Some(id), message.clone());
        Error::Panicked { id, message }
    }
}

/// Hands a caught panic to the pool's panic handler, if any; a panic in the
/// handler itself is swallowed.
fn report(handler: &Option<crate::pool::PanicHandler>, worker: usize, id: Option<u64>, message: String) {
    if let Some(h) = handler {
        let report = PanicReport { worker, id, message };
        let _ = catch_unwind(AssertUnwindSafe(|| h(report)));
    }
}
