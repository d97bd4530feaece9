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
//!   Z   park (once: any wake-up goes back to S1)
//! ```
//!
//! Each protocol's proof holds unchanged, since each side sees exactly the
//! steps it expects (S, H, Q, park): a caller of this worker that pushes
//! after Q rings it (the doorbell's argument), and the worker that
//! publishes the reply after Q unparks it (the reply cell's argument).
//! Both wake the same thread. Every park follows its own S1 S2 H Q: a
//! wake-up, whichever side it came from and whether or not it found what
//! it was for, ends the sleep, and the wait announces both again before it
//! parks again. (Parking again on the same announcement would lose a
//! reply: a publisher on another of this caller's lanes may have cleared
//! `sleeping` and woken us for its own reply, and the publisher of ours then
//! finds it cleared and wakes nobody.) A request the waiting worker may not
//! take (its item is in a call lower on this thread's stack) does not count
//! as work at Q: no caller will ring for it again, and it becomes takeable
//! only when this wait has ended.

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

/// How soon, then at most how rarely, a sleeping worker with a stalled
/// request looks again for a cycle through it.
#[cfg(not(shardpool_loom))]
const RECHECK_MIN: Duration = Duration::from_micros(500);
#[cfg(not(shardpool_loom))]
const RECHECK_MAX: Duration = Duration::from_millis(50);

/// A worker, as the nested calls made on its thread see it.
pub(crate) trait Host {
    /// The worker's pool.
    fn pool_id(&self) -> u64;
    /// A call of the current handler leaves to wait for `wait`: its frame
    /// (published on first use, with what it waits for), or why it may not
    /// leave.
    /// (`record`: note the wait in the frame now, for a call waited for at
    /// once; a batch's waits are noted as it waits.)
    fn departing(&self, wait: Wait, record: bool) -> Result<Option<FrameRef>, Error>;
    /// The call is over (or never left): the handler waits for nothing.
    fn arrived(&self);
    /// Whether the calling handler may serve while it waits (not from a
    /// hook, which holds the thread state; not at the bound of depth).
    fn may_serve(&self) -> bool;
    /// Whether code of a handler proper is running (not a hook, nor code
    /// run between handlers): it may call its worker's items inline.
    fn in_handler(&self) -> bool;
    /// The level whose caller handles (lanes) calls made now use
    /// (`caller::handle`): that of the handler making them, one past it
    /// for code run between handlers or in a hook.
    fn lane_level(&self) -> usize;
    /// Starts a wait of the current handler (for `wait`, noted in its
    /// frame, if given): requests stalled from here on are stalled until it
    /// ends. Returns the previous wait's mark, for
    /// [`end_wait`](Self::end_wait), which clears the note if there was one.
    fn begin_wait(&self, wait: Option<Wait>) -> u64;
    fn end_wait(&self, previous: u64, waited: bool);
    /// One pass over the worker's lanes; whether it processed anything.
    fn serve(&self) -> bool;
    /// Whether a ring holds requests a pass could take now.
    fn has_work(&self) -> bool;
    /// Whether a request is stalled in this wait.
    #[cfg(not(shardpool_loom))]
    fn stalled(&self) -> bool;
    /// Looks at every stalled request again on the next pass (a new mark
    /// for the wait under way).
    #[cfg(not(shardpool_loom))]
    fn restall(&self);
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
    static HOST: Cell<Option<NonNull<dyn Host>>> = const { Cell::new(None) };
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
/// `record`: the handler waits for it at once (a single call).
#[inline]
pub(crate) fn departing(wait: impl FnOnce() -> Wait, record: bool) -> Result<Option<FrameRef>, Error> {
    with_host(|h| h.departing(wait(), record)).unwrap_or(Ok(None))
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
    with_host(|h| h.lane_level()).unwrap_or(0)
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

/// Waits for a reply (or `deadline`) while serving this thread's worker, if
/// the calling thread is a worker in a handler that may serve; `None`
/// otherwise (the caller waits its own way). Returns whether it slept (the
/// caller looks for its reply, and at the clock, itself).
pub(crate) fn wait(sleep: &dyn ReplySleep, target: Option<Wait>, deadline: Option<Instant>) -> Option<bool> {
    with_host(|h| h.may_serve().then(|| serve_until(h, sleep, target, deadline))).flatten()
}

fn serve_until(
    host: &dyn Host,
    sleep: &dyn ReplySleep,
    target: Option<Wait>,
    deadline: Option<Instant>,
) -> bool {
    let waited = target.is_some();
    let mark = host.begin_wait(target);
    let mut slept = false;
    #[cfg(not(shardpool_loom))]
    let mut recheck = RECHECK_MIN;
    let past = |d: &Option<Instant>| d.is_some_and(|d| Instant::now() >= d);
    loop {
        if sleep.ready() || past(&deadline) {
            break;
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
        // A stalled request's cycle may close after it was looked at, with
        // records another thread had not yet seen: look again, less and
        // less often, while it stays stalled (`worker/nest.rs`).
        #[cfg(not(shardpool_loom))]
        if host.stalled() {
            let again = Instant::now() + recheck;
            sleep_both(host, sleep, Some(deadline.map_or(again, |d| d.min(again))));
            if Instant::now() >= again {
                host.restall();
                recheck = (recheck * 2).min(RECHECK_MAX);
            }
            continue;
        }
        sleep_both(host, sleep, deadline);
    }
    host.end_wait(mark, waited);
    slept
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
    if ok && !sleep.ready() && !host.has_work() && host.asleep() {
        // Z: one park. Any wake-up, even one that finds neither condition
        // (a token left by an earlier wake-up, or a reply on another lane
        // of the same caller, whose publisher cleared `sleeping`), goes
        // back round the wait, which announces again before it parks
        // again: parking twice on one announcement could sleep through a
        // publisher that found `sleeping` already cleared.
        thread::park_until(deadline);
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
    let serve = |h: &dyn Host| {
        if !h.may_serve() {
            return false;
        }
        // A wait of its own (what it stalls, it stalls until this step
        // ends), waiting for no item.
        let mark = h.begin_wait(None);
        let served = h.serve();
        h.end_wait(mark, false);
        served
    };
    let served = with_host(serve).unwrap_or(false);
    if !served {
        backoff.wait();
    }
}
