//! Nested calls, as the calling side sees them: a handler that calls an
//! item (of any pool) from a worker thread. Three things happen here:
//!
//! 1. **Before the request leaves** ([`departing`]): if its target is on
//!    the calling handler's chain (`chain.rs`), the call fails at once with
//!    [`Error::Cycle`]; past [`MAX_DEPTH`](crate::chain::MAX_DEPTH) levels of
//!    nesting on this thread, or a chain too long to follow, with
//!    [`Error::TooDeep`]. Otherwise the request carries the handler's frame.
//! 2. **While it waits** ([`wait`], [`pause`]): the worker keeps serving
//!    its own lanes, so that whatever the call waits on may reach this
//!    worker's other items (`worker/nest.rs` says which requests a waiting
//!    worker takes and which it defers).
//! 3. **A call to an item of the same worker** does not go through a ring:
//!    the worker runs it inline (`worker/nest.rs`).
//!
//! The worker's side is reached through a thread-local pointer to its
//! [`Host`], set for as long as the worker runs. Nothing here runs unless
//! the calling thread is a worker in the middle of a handler; a call from
//! any other thread costs one thread-local read.
//!
//! # Sleeping while serving
//!
//! A waiting worker that finds nothing to serve spins, then sleeps until
//! either its reply comes or a caller rings it. It announces both sleeps,
//! each as its own protocol asks, and checks both after one heavy barrier:
//!
//! ```text
//!   S1  doorbell: compare_exchange(0, SLEEPING)   (doorbell.rs, S)
//!   S2  reply: store sleeping / mark the cell     (reply.rs, S)
//!   H   the heavy barrier(s) of both pools
//!   Q   reply there? a ring with requests it may take? then cancel both
//!   Z   park until the doorbell's SLEEPING is cleared or the reply is in
//! ```
//!
//! Each protocol's proof holds unchanged, since each side sees exactly the
//! steps it expects (S, H, Q, park): a caller of this worker that pushes
//! after Q rings it (the doorbell's argument), and the worker that
//! publishes the reply after Q unparks it (the reply cell's argument).
//! Both wake the same thread, and the park loop ends on either condition;
//! a wake-up meant for one side only ends a park early, which every park
//! loop here tolerates. A request the waiting worker may not take (its
//! item is in a call lower on this thread's stack) does not count as work
//! at Q: no caller will ring for it again, and it becomes takeable only
//! when this wait has ended.

use crate::chain::{FrameRef, Wait};
use crate::error::Error;
use crate::sync::barrier::Barrier;
use crate::sync::{thread, Spin, Spinner};
use std::any::Any;
use std::cell::Cell;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// How long a waiting worker spins, serving and looking for its reply,
/// before it sleeps.
const SERVE_SPIN: Duration = Duration::from_micros(50);

/// A worker, as the nested calls made on its thread see it.
pub(crate) trait Host {
    /// The worker's pool.
    fn pool_id(&self) -> u64;
    /// A call of the current handler leaves to wait for `wait`: its frame
    /// (published on first use, with what it waits for), or why it may not
    /// leave.
    fn departing(&self, wait: Wait) -> Result<Option<FrameRef>, Error>;
    /// The call is over (or never left): the handler waits for nothing.
    fn arrived(&self);
    /// Whether the calling handler may serve while it waits (not from a
    /// hook, which holds the thread state).
    fn may_serve(&self) -> bool;
    /// How many handlers are under way on this thread.
    fn depth(&self) -> usize;
    /// Starts a wait of the current handler for `wait`: requests stalled
    /// from here on are stalled until it ends. Returns the previous wait's
    /// mark, for [`end_wait`](Self::end_wait).
    fn begin_wait(&self, wait: Wait) -> u64;
    fn end_wait(&self, previous: u64);
    /// One pass over the worker's lanes; whether it processed anything.
    fn serve(&self) -> bool;
    /// Whether a ring holds requests a pass could take now.
    fn has_work(&self) -> bool;
    /// Whether a caller rang the doorbell (a cheap look while spinning).
    fn pending(&self) -> bool;
    /// The doorbell's S (`false`: a bit is pending, do not sleep), its
    /// cancel, and whether the sleep still stands (nobody rang since).
    fn try_sleep(&self) -> bool;
    fn cancel_sleep(&self);
    fn asleep(&self) -> bool;
    fn barrier(&self) -> Barrier;
    /// For inline calls: the worker itself, to downcast.
    fn as_any(&self) -> &dyn Any;
}

crate::sync::thread_local! {
    /// This thread's worker, while it runs.
    static HOST: Cell<Option<NonNull<dyn Host>>> = Cell::new(None);
}

/// Marks the calling thread as running `host` until the guard drops.
///
/// # Safety
///
/// `host` must stay where it is, alive, until the guard drops.
pub(crate) unsafe fn enter(host: &dyn Host) -> HostGuard {
    let ptr = NonNull::from(host);
    // SAFETY: erasing the lifetime: the caller's promise keeps `host` alive
    // while the pointer is set, and the guard clears it.
    let ptr: NonNull<dyn Host> = unsafe { std::mem::transmute(ptr) };
    HOST.with(|h| h.set(Some(ptr)));
    HostGuard(())
}

/// Clears the thread's worker when dropped.
pub(crate) struct HostGuard(());

impl Drop for HostGuard {
    fn drop(&mut self) {
        let _ = HOST.try_with(|h| h.set(None));
    }
}

/// Calls `f` with this thread's worker, if it is one.
#[inline]
pub(crate) fn with_host<R>(f: impl FnOnce(&dyn Host) -> R) -> Option<R> {
    let ptr = HOST.try_with(Cell::get).ok().flatten()?;
    // SAFETY: set by `enter` from a host that stays alive and in place until
    // its guard clears the pointer (its promise); only this thread reads it.
    Some(f(unsafe { ptr.as_ref() }))
}

/// Before a request leaves this thread, for `wait.target`: the frame it
/// carries (`None` unless sent from a handler), or why it may not leave.
#[inline]
pub(crate) fn departing(wait: impl FnOnce() -> Wait) -> Result<Option<FrameRef>, Error> {
    with_host(|h| h.departing(wait())).unwrap_or(Ok(None))
}

/// The current handler's call is over, or never left.
#[inline]
pub(crate) fn arrived() {
    with_host(|h| h.arrived());
}

/// The level of nesting of the calling thread: how many handlers are under
/// way on it (0 off a worker, or on one between handlers).
#[inline]
pub(crate) fn level() -> usize {
    with_host(|h| h.depth()).unwrap_or(0)
}

/// Whether the calling thread is a worker in a handler that may serve
/// while it waits.
#[inline]
pub(crate) fn may_serve() -> bool {
    with_host(|h| h.may_serve()).unwrap_or(false)
}

/// The reply side of a wait: how the caller of the other pool sleeps for
/// its reply (`reply.rs`).
pub(crate) trait ReplySleep {
    /// Whether the reply is there.
    fn ready(&self) -> bool;
    /// S: announces the sleep; `false` if the reply is already there.
    fn announce(&self) -> bool;
    /// Takes the announcement back.
    fn withdraw(&self);
    fn barrier(&self) -> Barrier;
}

/// What ended a [`wait`].
pub(crate) enum Waited {
    /// The reply is there (or, for `pause`, the condition holds).
    Ready,
    /// The deadline passed first.
    TimedOut,
}

/// Waits for a reply while serving this thread's worker, if the calling
/// thread is a worker in a handler that may serve; `None` otherwise (the
/// caller waits its own way). Returns whether it slept, with the outcome.
pub(crate) fn wait(
    sleep: &dyn ReplySleep,
    target: Wait,
    deadline: Option<Instant>,
) -> Option<(Waited, bool)> {
    with_host(|h| h.may_serve().then(|| serve_until(h, sleep, target, deadline))).flatten()
}

fn serve_until(
    host: &dyn Host,
    sleep: &dyn ReplySleep,
    target: Wait,
    deadline: Option<Instant>,
) -> (Waited, bool) {
    let mark = host.begin_wait(target);
    let mut slept = false;
    let past = |d: &Option<Instant>| d.is_some_and(|d| Instant::now() >= d);
    let out = loop {
        if sleep.ready() {
            break Waited::Ready;
        }
        if past(&deadline) {
            break Waited::TimedOut;
        }
        if host.serve() {
            continue;
        }
        // Nothing to serve: spin a while, looking for the reply and for
        // requests (yielding now and then: workers are on cores of their
        // own unless pinning is off, when the scheduler moves them anyway).
        let mut spinner = Spinner::new(Spin::alone(SERVE_SPIN));
        let mut found = false;
        while spinner.spin() {
            if sleep.ready() || host.pending() || host.has_work() || past(&deadline) {
                found = true;
                break;
            }
        }
        if found {
            continue;
        }
        slept = true;
        sleep_both(host, sleep, deadline);
    };
    host.end_wait(mark);
    (out, slept)
}

/// S1 S2 H Q Z of the module docs.
#[cold]
fn sleep_both(host: &dyn Host, sleep: &dyn ReplySleep, deadline: Option<Instant>) {
    // S1.
    if !host.try_sleep() {
        return;
    }
    // S2.
    if !sleep.announce() {
        host.cancel_sleep();
        return;
    }
    // H: both pools' heavy barriers (one `membarrier` serves both when
    // both use it: it is process-wide).
    let (mine, theirs) = (host.barrier(), sleep.barrier());
    let mut ok = mine.heavy().is_ok();
    if ok && !(mine.lazy_announcements() && theirs.lazy_announcements()) {
        ok = theirs.heavy().is_ok();
    }
    // Q.
    if ok && !sleep.ready() && !host.has_work() {
        // Z. Spurious wake-ups, and tokens left by earlier wake-ups, loop.
        while host.asleep() && !sleep.ready() {
            if !thread::park_until(deadline) {
                break;
            }
        }
    } else if !ok {
        // Without the barriers a wake-up could be missed: poll instead.
        #[cfg(not(shardpool_loom))]
        std::thread::sleep(Duration::from_millis(1));
    }
    host.cancel_sleep();
    sleep.withdraw();
}

/// One step of a wait for a condition other than a reply (room in a full
/// ring, a stalled batch): serves this thread's worker once if it is one
/// in a handler; otherwise, or if that found nothing, backs off.
pub(crate) fn pause(backoff: &mut crate::sync::Backoff) {
    let served = with_host(|h| h.may_serve() && h.serve()).unwrap_or(false);
    if !served {
        backoff.wait();
    }
}
