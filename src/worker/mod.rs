//! The worker's transport loop: drains its callers' rings in batches, and
//! sleeps when idle. The items themselves are hosted by `host.rs` (the item
//! table, the dispatch, the `catch_unwind` around user code).
//!
//! # The loop
//!
//! 1. Take the doorbell's bits (plus lanes left over from the last pass);
//!    in a pool with lazy announcements (`doorbell.rs`), add every lane
//!    whose ring holds requests (on a busy pass, but for the pass right
//!    after an idle spin's look found work, which is that look's; an idle
//!    worker looks at every ring before it spins, and on every spin).
//! 2. CONTROL: accept new callers; if shutdown has sealed the gate (not
//!    merely closed it: see `src/gate/README.md`), go to shutdown.
//!    A new lane is served in the same pass (a request may have been
//!    pushed before the lane was adopted; its caller rang the lane's bit
//!    too, so this only saves a round of the loop).
//! 3. For each hinted lane, round-robin from the one after the last served:
//!    take up to `max_batch` requests, one at a time, process them and
//!    publish each reply into the lane's reply cells (`reply.rs`), waking
//!    the caller if it sleeps. A lane still non-empty is carried to the
//!    next pass, so one busy caller gets at most `max_batch` per pass and
//!    cannot starve the others.
//! 4. With nothing to do: spin (bounded, yielding; with lazy announcements,
//!    looking at every ring on every spin), then sleep on the doorbell (see
//!    `doorbell.rs` for why no wake-up is lost). In a pool with lazy
//!    announcements, announcing the sleep is followed by the heavy barrier
//!    and a poll of every ring; work found there cancels the sleep.
//!
//! Taking the hint bits (a `swap`) comes *before* the drain: a caller that
//! pushes after our drain looked at its ring sets its bit again, and a
//! caller whose `fetch_or` came before our `swap` had its push acquired by
//! it, so the drain sees it.
//!
//! Every piece of user code (constructor, hooks, `process_message`) and the
//! drop of every user value the worker holds (items, requests, init data,
//! responses, panic payloads, the thread state) runs under `catch_unwind`:
//! a panic costs at most the request and the item, never the worker, and
//! each one reaches the panic handler.

use crate::doorbell::{set_bits, CONTROL, LANE_BITS, LANE_MASK};
use crate::error::take_panic_message;
use crate::idle::{Gaps, Idle, Plan};
use crate::item::{PoolItem, Processing};
use crate::shared::Shared;
use crate::stats::WorkerCounters;
use crate::sync::atomic::{bump, Ordering};
use crate::sync::{Arc, Backoff, Spin, Spinner, Started};
use crate::trace::event;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

mod host;
mod lane;
mod nest;
pub(crate) use host::report;
use host::{drop_user, Core, Items};
use lane::{Lane, Lanes};
pub(crate) use nest::{inline, may_inline};

/// The set bits of `hints`, in round-robin order from bit `next`: those at
/// and above it, ascending, then those below.
fn round_robin(hints: u64, next: u32) -> impl Iterator<Item = usize> {
    let low = (1u64 << next) - 1;
    [hints & !low, hints & low].into_iter().flat_map(set_bits)
}

/// Where the pass after one over `hints` that started from bit `next`
/// starts: one past the first lane that pass served, so that each pass
/// starts one busy lane later than the one before.
fn next_start(hints: u64, next: u32) -> u32 {
    round_robin(hints, next).next().map_or(next, |b| (b as u32 + 1) % LANE_BITS)
}

/// What the worker's passes over its lanes touch: reached through a shared
/// reference, so that user code the worker runs may come back to it.
pub(crate) struct Host<P: PoolItem> {
    pool: Arc<Shared<P>>,
    core: Core<P>,
    lanes: Lanes<P>,
    /// Hint bits of lanes left non-empty by the last pass.
    carry: Cell<u64>,
    /// The hint bit the next busy pass starts from (round-robin).
    next_bit: Cell<u32>,
    /// A nested pass took the doorbell's CONTROL bit (`nest.rs`): the loop
    /// looks at the pool's state when it is back.
    control_seen: Cell<bool>,
    /// `carry` holds what a look at every lane found just now: the next
    /// pass need not look again. Set by `Looper::spin_timed` when its look
    /// finds work (it then returns, and the loop's next pass follows at
    /// once), taken by that pass in `Worker::run`.
    looked: Cell<bool>,
}

pub(crate) struct Worker<P: PoolItem> {
    host: Host<P>,
}

/// The loop's own state, beside the host it serves (reached by a shared
/// reference only, so that nothing here retags it).
struct Looper<'a, P: PoolItem> {
    host: &'a Host<P>,
    /// The `queued` hint last published.
    queued: usize,
    /// The gaps between going idle and the next request (`idle.rs`);
    /// nothing is learned under loom, which has no clock.
    gaps: Gaps,
}

impl<P: PoolItem> Host<P> {
    #[inline]
    fn counters(&self) -> &WorkerCounters {
        &self.pool.workers[self.core.index].counters
    }

    #[inline]
    fn doorbell(&self) -> &crate::doorbell::Doorbell {
        &self.pool.workers[self.core.index].doorbell
    }

    #[inline]
    fn add_carry(&self, bits: u64) {
        self.carry.set(self.carry.get() | bits);
    }

    /// Adopts the rings of newly registered callers.
    fn accept(&self) {
        let new = std::mem::take(
            &mut *self.pool.workers[self.core.index].registrations.lock().unwrap_or_else(|e| e.into_inner()),
        );
        for registration in new {
            // A request may have been pushed before we adopted the lane.
            self.add_carry(self.lanes.adopt(registration));
        }
        WorkerCounters::set(&self.counters().callers, self.lanes.count() as u64);
    }

    /// One busy pass over the lanes of `hints`, round-robin: from the lane
    /// after the first one served last pass (the bits at and above
    /// `next_bit` first, then those below), so no caller is always served
    /// first or last. A lane still non-empty is carried to the next pass,
    /// so one busy caller gets at most `max_batch` per pass and cannot
    /// starve the others. Returns how many lanes had requests.
    fn pass(&self, hints: u64) -> usize {
        let start = self.next_bit.get();
        self.next_bit.set(next_start(hints, start));
        let mut served = 0;
        for b in round_robin(hints, start) {
            let (more, lanes) = self.serve_bucket(b, self.pool.config.max_batch);
            if more {
                self.add_carry(1 << b);
            }
            served += lanes;
        }
        served
    }

    /// Serves every lane of hint bit `b`, at most `max` requests each.
    /// Returns whether some lane still has work, and how many lanes had
    /// requests. Drops the lanes of callers that have gone, once their
    /// rings are empty.
    fn serve_bucket(&self, b: usize, max: usize) -> (bool, usize) {
        let counters = self.counters();
        let mut more = false;
        let mut busy = 0;
        let mut i = 0;
        while let Some(lane) = self.lanes.get(b, i) {
            if self.serve_lane(&lane, max) > 0 {
                bump(&counters.batches, 1);
                busy += 1;
            }
            if !lane.is_empty() {
                more = true;
            } else if lane.caller.retired.load(Ordering::Acquire) && lane.is_empty() {
                // Acquire: pairs with the Release store of `retired`; every
                // push the caller made is visible, and the ring is empty.
                drop(lane);
                let gone = self.lanes.remove(b, i);
                self.wake_room(&gone);
                drop(gone);
                WorkerCounters::set(&counters.callers, self.lanes.count() as u64);
                continue;
            }
            i += 1;
        }
        (more, busy)
    }

    /// Takes up to `max` requests off `lane`'s ring, one at a time (each
    /// one's cell is free as it is taken), and processes each, publishing
    /// its reply. Returns how many it took.
    #[inline]
    fn serve_lane(&self, lane: &Lane<P>, max: usize) -> usize {
        let counters = self.counters();
        let barrier = &self.pool.barrier;
        let mut n = 0;
        while n < max {
            let Some(payload) = lane.pop() else { break };
            self.core.process(payload, lane, counters, barrier);
            n += 1;
        }
        // The cells taken are free: wake async callers waiting for room
        // (`room.rs`).
        if n > 0 {
            self.wake_room_after_drain(lane);
        }
        n
    }

    /// After requests were taken off `lane`: wakes async callers waiting
    /// for room in its ring (`room.rs`).
    #[inline]
    fn wake_room_after_drain(&self, lane: &Lane<P>) {
        lane.unwoken.set(false);
        if lane.room.after_drain(&self.pool.barrier, &mut lane.woken.borrow_mut()) {
            // Taken out while the wakers (runtime code) run.
            let mut woken = std::mem::take(&mut *lane.woken.borrow_mut());
            self.core.wake_all(&mut woken);
            *lane.woken.borrow_mut() = woken;
        }
    }

    /// A lane goes: tasks still waiting for room in its ring are woken
    /// (their push is refused, or tried on another lane), not dropped with
    /// it (runtime code: `Core::wake_all`).
    fn wake_room(&self, lane: &Lane<P>) {
        let mut wakers = std::mem::take(&mut *lane.woken.borrow_mut());
        lane.room.take_all(&mut wakers);
        self.core.wake_all(&mut wakers);
    }

    fn drain_all(&self) {
        for b in 0..LANE_BITS as usize {
            while self.serve_bucket(b, usize::MAX).0 {}
        }
    }
}

impl<P: PoolItem> Worker<P> {
    pub(crate) fn new(
        pool: Arc<Shared<P>>,
        index: usize,
        state: P::ThreadState,
        lease: crate::chain::Lease,
    ) -> Self {
        let panic_handler = pool.config.panic_handler.clone();
        let error_handler = pool.config.error_handler.clone();
        Self {
            host: Host {
                core: Core {
                    index,
                    items: RefCell::new(Items::default()),
                    state: RefCell::new(state),
                    panic_handler,
                    error_handler,
                    levels: nest::Levels::new(pool.id, std::any::type_name::<P>(), lease),
                    deferred: RefCell::default(),
                    constructing: RefCell::new(Vec::new()),
                },
                lanes: Lanes::new(),
                carry: Cell::new(0),
                next_bit: Cell::new(0),
                control_seen: Cell::new(false),
                looked: Cell::new(false),
                pool,
            },
        }
    }

    /// Runs until the pool closes, then drains and shuts the items down.
    pub(crate) fn run(self) {
        let Worker { host } = self;
        // SAFETY: `host` stays in this frame, where it is, until the guard
        // is dropped after the loop and the shutdown, before it is taken
        // apart; it is only ever reached by shared references.
        let guard = unsafe { crate::nest::enter(&host) };
        let mut looper = Looper { host: &host, queued: 0, gaps: Gaps::default() };
        loop {
            let host = &host;
            let pool = &*host.pool;
            let mut bits = host.doorbell().take() | host.carry.take();
            if host.control_seen.take() {
                bits |= CONTROL;
            }
            if bits & CONTROL != 0 {
                host.accept();
                // Only the seal, which shutdown gives after its heavy barrier,
                // starts our shutdown: `closed` alone does not (a caller's
                // registration rings CONTROL too). See `src/gate/README.md`.
                if pool.gate.is_sealed() {
                    break;
                }
                // Serve the new lanes now rather than after a sleep.
                bits |= host.carry.take();
            }
            let mut hints = bits & LANE_MASK;
            if hints == 0 {
                looper.idle();
                continue;
            }
            // Pushes announced lazily ring nobody (`doorbell.rs`): look at
            // every lane's ring, not only the hinted ones, on every pass,
            // unless the idle spin did so just before (a lane it missed by
            // a moment is found by the next pass's look, or the next idle
            // spin's).
            if pool.barrier.lazy_announcements() && !host.looked.take() {
                hints |= host.lanes.with_work();
            }
            let served = host.pass(hints);
            // Tell callers how many of them were queued here (they wait
            // differently when callers and workers outnumber the cores): the
            // lanes that had requests, as a peak decaying by an eighth a
            // pass, so that callers queued a moment ago and parked now still
            // count for a while. Parking resets it (`sleep`).
            looper.publish_queued(served.max(looper.queued - looper.queued.div_ceil(8)));
        }
        host.shutdown();
        drop(guard);
        // Last, the thread state (its drop is user code too).
        let Host { core: Core { index, state, panic_handler, .. }, .. } = host;
        drop_user(&panic_handler, index, state.into_inner(), None, "dropping the thread state");
    }
}

impl<P: PoolItem> Looper<'_, P> {
    /// Publishes the `queued` hint, if it changed.
    fn publish_queued(&mut self, queued: usize) {
        if queued != self.queued {
            self.queued = queued;
            self.host.pool.workers[self.host.core.index].queued.store(queued, Ordering::Relaxed);
        }
    }

    /// Nothing to do: spin a while, then sleep until a caller rings, as the
    /// pool's [`Idle`] policy says (`idle.rs`).
    fn idle(&mut self) {
        let policy = self.host.pool.config.idle;
        let spin = self.host.pool.config.worker_spin;
        // Lazily announced pushes ring nobody: look at the rings first, so
        // that a worker with no spin does not go through a sleep (and its
        // heavy barrier) to find one.
        if self.host.pool.barrier.lazy_announcements() {
            let found = self.host.lanes.with_work();
            if found != 0 {
                self.host.add_carry(found);
                return;
            }
        }
        if policy == Idle::Poll {
            // Spin until there is work, however long that takes.
            while !self.spin_for(Duration::MAX) {}
            return;
        }
        // The gaps are learned by the adaptive policy only, and without a
        // look at the clock when the first spin finds work quickly: two
        // clock reads cost about 8% of a round trip (`cargo bench --bench
        // round_trip`, 240 -> 224 ns without them, builds alternated).
        #[cfg(not(shardpool_loom))]
        let adaptive = matches!(policy, Idle::Adaptive { .. });
        let (found, _started) = self.spin_timed(spin);
        if found {
            // The spinner reads the clock only after a few dozen spins: a
            // gap shorter than that is learned as none.
            #[cfg(not(shardpool_loom))]
            if adaptive {
                self.gaps.record(_started.map_or(Duration::ZERO, |t| t.elapsed()));
            }
            return;
        }
        // The spin ran out, so it read the clock (unless it had no budget).
        #[cfg(not(shardpool_loom))]
        let since = adaptive.then(|| _started.unwrap_or_else(std::time::Instant::now));
        // Whether work or a ring ended the wait does not matter here: the
        // loop looks at the doorbell and `carry` next either way.
        let _woken = match self.gaps.plan(policy, spin) {
            Plan::Park => self.sleep(None),
            // Only an adaptive policy (which read the clock) plans more.
            #[cfg(not(shardpool_loom))]
            Plan::SpinUntil(end) => {
                let since = since.expect("an adaptive plan");
                self.spin_for(end.saturating_sub(since.elapsed())) || self.sleep(None)
            }
            #[cfg(not(shardpool_loom))]
            Plan::WakeAt { wake, end } => {
                let since = since.expect("an adaptive plan");
                self.sleep(Some(since + wake))
                    || self.spin_for(end.saturating_sub(since.elapsed()))
                    || self.sleep(None)
            }
            #[cfg(shardpool_loom)]
            _ => unreachable!("no clock under loom"),
        };
        // Whatever ended the wait (work, a ring, shutdown), that was the gap.
        #[cfg(not(shardpool_loom))]
        if let Some(since) = since {
            self.gaps.record(since.elapsed());
        }
    }

    /// Spins up to `budget`, looking for work. Returns whether it found
    /// some (a ring, or a lazily announced push, now in `carry`).
    fn spin_for(&mut self, budget: Duration) -> bool {
        self.spin_timed(budget).0
    }

    /// [`spin_for`](Self::spin_for), also returning when the spin first
    /// read the clock (`None` if it never did: it ended within a few dozen
    /// spins). Nothing under loom, which has no clock.
    fn spin_timed(&mut self, budget: Duration) -> (bool, Started) {
        let doorbell = &self.host.doorbell();
        // Yield often: a caller may share this core, and must not wait for
        // the end of our spin to get it.
        let lazy = self.host.pool.barrier.lazy_announcements();
        // With lazy announcements each spin looks at every ring: with many
        // callers, yield after about 256 looks rather than 64 spins, or the
        // worker keeps the core for long stretches while callers that share
        // it wait to push. `cargo bench --bench many_callers -- shardpool`,
        // builds alternated: 64 callers on 2 cores 0.58-0.61 M round
        // trips/s with a yield every 64 spins, 0.87 M/s with this (0.81-0.84
        // before lazy announcements); 8 callers 0.57-0.59 -> 0.67-0.68.
        // A caller shares our core (`WorkerShared::sharers`), or the
        // callers queued here and the workers together outnumber the cores
        // by more than one (the test callers make, `Shared::caller_spin`;
        // with two workers more than cores it holds with nobody queued;
        // callers' cores may have changed since they last looked): hand the
        // core over on every look, so that a caller takes its reply as soon
        // as it is out rather than at our next yield. 2 workers on 2 cores,
        // callers unpinned (`perf/ab_medians.sh` on `many_callers`, 5
        // rounds, medians per 64 round trips): with sharers alone, 1 caller
        // 177 -> 106 µs, 2 callers 252 -> 107 µs, 8 callers 90 -> 79 µs;
        // the crowding test then took 2 callers 108 -> 99 µs.
        let pool = &self.host.pool;
        let crowded = self.queued + pool.workers.len() > pool.config.cores + 1;
        // Not under loom: no caller knows its core there, and a load per
        // idle spin would multiply the models' executions.
        #[cfg(not(shardpool_loom))]
        let shared = pool.workers[self.host.core.index].sharers.load(Ordering::Relaxed) > 0;
        #[cfg(shardpool_loom)]
        let shared = false;
        let yield_every = if crowded || shared {
            1
        } else if lazy {
            (256 / self.host.lanes.count().max(1)).clamp(1, 64).next_power_of_two() as u32
        } else {
            64
        };
        let mut spinner = Spinner::new(Spin { budget, yield_every });
        while spinner.spin() {
            if doorbell.pending() {
                return (true, spinner.started());
            }
            // Lazily announced pushes ring nobody: look at every ring, on
            // every spin, as the caller of a single call is waiting. (A
            // batch pushes while the worker looks, and the worker may then
            // take its requests a few at a time; that costs the batch rate
            // less than the doorbell's locked instruction per call costs a
            // round trip: `cargo bench --bench round_trip --bench batch`,
            // builds alternated, fast phase: round trip 233 -> 212 ns,
            // 1024-request batch 18.4-19.3 -> 17.8-18.3 M/s.)
            if lazy {
                let found = self.host.lanes.with_work();
                if found != 0 {
                    self.host.add_carry(found);
                    self.host.looked.set(true);
                    return (true, spinner.started());
                }
            }
        }
        (false, spinner.started())
    }

    /// Announces a sleep and parks: until rung, or (`until`) until then at
    /// the latest, when the worker takes its sleep back. Returns whether it
    /// found work instead of parking, or was rung; `false` when it woke
    /// itself at `until`.
    fn sleep(&mut self, until: Option<std::time::Instant>) -> bool {
        let doorbell = &self.host.doorbell();
        if !doorbell.try_sleep() {
            return true;
        }
        if self.host.pool.barrier.lazy_announcements() {
            // S H Q of the lazy announcements (`doorbell.rs`): after the
            // heavy barrier, a push that no caller rang is in a ring we poll.
            let found = match self.host.pool.barrier.heavy() {
                Ok(()) => self.host.lanes.with_work(),
                Err(_) => {
                    // Without the barrier a lazy push could be missed: do not
                    // park; poll every lane again after a pause.
                    #[cfg(not(shardpool_loom))]
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    self.host.lanes.occupied()
                }
            };
            if found != 0 {
                doorbell.cancel_sleep();
                self.host.add_carry(found);
                return true;
            }
        }
        // Parking: nobody is queued here.
        self.publish_queued(0);
        let doorbell = &self.host.doorbell();
        bump(&self.host.counters().parks, 1);
        match until {
            None => {
                doorbell.park_until_rung();
                true
            }
            #[cfg(not(shardpool_loom))]
            Some(deadline) => {
                let rung = doorbell.park_until_rung_or(deadline);
                if !rung {
                    // How late the OS woke us sets how early to wake next.
                    self.gaps.record_lateness(deadline.elapsed());
                }
                rung
            }
            #[cfg(shardpool_loom)]
            Some(_) => unreachable!("no clock under loom"),
        }
    }
}

impl<P: PoolItem> Host<P> {
    /// The gate is sealed: answer everything already sent, wait for callers
    /// still inside their gate, then shut the items and the thread state
    /// down.
    fn shutdown(&self) {
        event!(
            debug,
            worker = self.core.index,
            items = self.core.items.borrow().len(),
            "worker shutting down"
        );
        let mut backoff = Backoff::new();
        loop {
            // W1..W4 of `src/gate/README.md`.
            self.accept();
            self.drain_all();
            if self.lanes.quiesced(&self.pool.gate) {
                // Every gated push is complete and visible: answer what is left.
                self.drain_all();
                break;
            }
            backoff.wait();
        }
        let core = &self.core;
        let items = std::mem::take(&mut *core.items.borrow_mut());
        for (id, item) in items {
            let hook = catch_unwind(AssertUnwindSafe(|| {
                let _p = Processing::enter(id);
                item.borrow_mut().on_shutdown(&mut core.state.borrow_mut());
            }));
            if let Err(payload) = hook {
                report(&core.panic_handler, core.index, Some(id), take_panic_message(payload));
            }
            let _p = Processing::enter(id);
            core.drop_user(item, Some(id), "dropping the item at shutdown");
        }
        WorkerCounters::set(&self.counters().items, 0);
        // Every request ring is empty; a caller still there keeps its end of
        // the reply lane and takes the replies left on it. Tasks still
        // waiting for room are woken (their push is refused now), not
        // dropped with the lanes.
        for lane in self.lanes.take_all() {
            self.wake_room(&lane);
        }
        WorkerCounters::set(&self.counters().callers, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::{next_start, round_robin};

    #[test]
    fn lanes_are_served_round_robin_from_where_the_last_pass_stopped() {
        let hints = 0b1011_0110u64;
        assert_eq!(round_robin(hints, 0).collect::<Vec<_>>(), [1, 2, 4, 5, 7]);
        assert_eq!(round_robin(hints, 3).collect::<Vec<_>>(), [4, 5, 7, 1, 2]);
        assert_eq!(round_robin(hints, 7).collect::<Vec<_>>(), [7, 1, 2, 4, 5]);
        assert_eq!(round_robin(hints, 61).collect::<Vec<_>>(), [1, 2, 4, 5, 7]);
        assert_eq!(round_robin(0, 5).count(), 0);
        let all = (1u64 << 62) - 1;
        assert_eq!(round_robin(all, 30).next(), Some(30));
        assert_eq!(round_robin(all, 30).count(), 62);
    }

    #[test]
    fn each_pass_over_the_same_busy_lanes_starts_one_lane_later() {
        let hints = (1 << 1) | (1 << 5) | (1 << 9);
        let mut next = 0;
        let mut firsts = Vec::new();
        for _ in 0..4 {
            firsts.push(round_robin(hints, next).next().unwrap());
            next = next_start(hints, next);
        }
        assert_eq!(firsts, [1, 5, 9, 1]);
        // From the highest bit it wraps round.
        assert_eq!(next_start(1 << 61, 0), 0);
    }
}
