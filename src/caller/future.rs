//! Awaitable calls: [`AsyncResponse`], a `Send` future whose reply comes
//! back in a slot of the sending thread's slab (`slot.rs`), so that the
//! task may be polled on any thread once the request is out.
//!
//! The request leaves on the first poll, through the ring of the thread
//! that polls (its handle, `mod.rs`), and is announced before the poll
//! returns. A full ring is not waited for on the executor's thread: the
//! future leaves its waker with the lane (`room.rs`), looks once more, and
//! returns `Pending`; the worker wakes it when it frees room.
//!
//! Dropped at any point, it leaves no reply behind: before the first poll
//! nothing was sent; after, the slot is closed and the reply, whenever it
//! comes, is dropped by whoever holds it then. (A waker it left for room is
//! woken once more, for nothing.)

use super::{decode, handle};
use crate::error::Error;
use crate::item::{Message, PoolItem, Request};
use crate::shared::Shared;
use crate::slot::{self, Slab, SlotRef};
use crate::sync::{Arc, Spin};
use crate::wire::Outcome;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The response to one request, as a future; see
/// [`ThreadPool::send_and_receive_once_async`](crate::ThreadPool::send_and_receive_once_async).
///
/// It is `Send` (whatever the item), so a task holding it may move between
/// threads, and it allocates nothing per request once the thread's slab of
/// slots has grown to the number of calls it has in flight at once.
/// Nothing is sent until it is first polled; dropping it afterwards
/// (cancelling it, or a timeout around it) discards the response when it
/// comes, and the request may or may not have been processed.
#[must_use = "nothing is sent until the future is polled"]
pub struct AsyncResponse<'a, P: PoolItem, R: Request<P>> {
    pool: &'a Arc<Shared<P>>,
    state: State<P>,
    _request: PhantomData<fn() -> R>,
}

enum State<P: PoolItem> {
    /// Not sent yet.
    Unsent(Message<P>),
    /// Sent: its reply will be in `slot`.
    Sent { slab: Arc<Slab<Outcome<P>>>, slot: SlotRef<Outcome<P>>, id: u64 },
    /// The response was returned (or the request panicked in user code on
    /// its way out).
    Done,
}

impl<P: PoolItem, R: Request<P>> std::fmt::Debug for AsyncResponse<'_, P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Unsent(msg) => format!("unsent, to item {}", msg.id()),
            State::Sent { id, .. } => format!("sent to item {id}"),
            State::Done => "done".to_owned(),
        };
        f.debug_struct("AsyncResponse").field("state", &state).finish_non_exhaustive()
    }
}

/// Done once it has returned its response: `select!`-style combinators
/// then leave it alone.
impl<P: PoolItem, R: Request<P>> futures_core::FusedFuture for AsyncResponse<'_, P, R> {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

/// How long a poll spins for a reply before it leaves its waker and
/// returns `Pending`: about a round trip or a few, so that a reply that is
/// on its way costs neither a wake-up through the runtime nor a park of its
/// thread, while the executor's thread is never held for long.
pub(super) const ASYNC_SPIN: Spin = Spin::alone(std::time::Duration::from_micros(2));

// No field is ever pinned: the future moves its state freely.
impl<P: PoolItem, R: Request<P>> Unpin for AsyncResponse<'_, P, R> {}

impl<'a, P: PoolItem, R: Request<P>> AsyncResponse<'a, P, R> {
    /// Makes the message (user code: `into_message`) on the calling
    /// thread, now.
    pub(crate) fn new(pool: &'a Arc<Shared<P>>, request: R) -> Self {
        Self { pool, state: State::Unsent(request.into_message()), _request: PhantomData }
    }

    /// Sends the request from the polling thread, then looks for its reply.
    fn send(&mut self, cx: &Context<'_>) -> Poll<Result<R::Response, Error>> {
        let State::Unsent(msg) = std::mem::replace(&mut self.state, State::Done) else {
            unreachable!("send is called on an unsent request only")
        };
        let id = msg.id();
        // Routed here, on the thread it leaves from (user code: `placement`;
        // and a worker of this pool may not send to itself).
        let worker = match self.pool.route::<P>(id) {
            Ok(w) => w,
            Err(e) => {
                drop(msg);
                return Poll::Ready(Err(e));
            }
        };
        let handle = match handle(self.pool) {
            Ok(h) => h,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let mut msg = msg;
        let mut waiting = false;
        loop {
            match handle.send_to_slot(worker, msg) {
                Ok(slot) => {
                    self.state = State::Sent { slab: handle.slab(), slot, id };
                    return self.wait(cx);
                }
                Err((Error::Full { .. }, back)) => {
                    if waiting {
                        // Still full after our waker was left: the worker
                        // wakes us when it frees room (`room.rs`).
                        self.state = State::Unsent(back);
                        return Poll::Pending;
                    }
                    if !handle.wait_for_room(worker, cx.waker()) {
                        // Without the barrier a wake-up could be missed: try
                        // again on the task's next turn.
                        self.state = State::Unsent(back);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    // Q: look again, now that our waker is there.
                    waiting = true;
                    msg = back;
                }
                Err((e, msg)) => {
                    drop(msg);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Takes the reply if it is in, or leaves the task's waker for it.
    fn wait(&mut self, cx: &Context<'_>) -> Poll<Result<R::Response, Error>> {
        let State::Sent { slab, slot, id } = &self.state else {
            unreachable!("wait is called on a sent request only")
        };
        // SAFETY: the slot was handed out for this request (`send_to_slot`)
        // and has not yet given `Ready` or been closed (the state would be
        // `Done`); `slab` is its slab.
        unsafe { slot::spin_for(*slot, ASYNC_SPIN) };
        // SAFETY: as above.
        match unsafe { slot::poll(slab, *slot, cx) } {
            Poll::Ready(outcome) => {
                let id = *id;
                self.state = State::Done;
                Poll::Ready(decode::<P, R>(id, outcome))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<P: PoolItem, R: Request<P>> Future for AsyncResponse<'_, P, R> {
    type Output = Result<R::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &this.state {
            State::Unsent(_) => this.send(cx),
            State::Sent { .. } => this.wait(cx),
            // As `Future` allows; `is_terminated` says so beforehand.
            State::Done => panic!("`AsyncResponse` polled after it returned its response"),
        }
    }
}

impl<P: PoolItem, R: Request<P>> Drop for AsyncResponse<'_, P, R> {
    fn drop(&mut self) {
        if let State::Sent { slab, slot, .. } = std::mem::replace(&mut self.state, State::Done) {
            // SAFETY: as in `wait`: the slot is still ours.
            let late = unsafe { slot::close(&slab, slot) };
            // The response came before we gave up: a user value, dropped
            // after the slot is released.
            drop(late);
        }
    }
}
