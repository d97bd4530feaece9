//! Awaitable batches: [`AsyncResponses`], a `Send` stream of a batch's
//! responses in request order, whose replies come back in slots
//! (`slot.rs`) as the single future's do (`future.rs`).
//!
//! Like the blocking batch (`batch.rs`) it takes requests from the user's
//! iterator as it is polled, a window of them ahead of the response it
//! waits for. Requests leave through the ring of the thread that polls; a
//! task the runtime moves to another thread sends nothing from there until
//! every request it sent from the first has been answered, so that two of
//! its requests to one item are never in two rings at once: per item, a
//! batch's requests are processed in order, wherever it runs.

use super::future::ASYNC_SPIN;
use super::{decode, handle};
use crate::error::Error;
use crate::item::{Message, PoolItem, Request};
use crate::shared::Shared;
use crate::slot::{self, Slab, SlotRef};
use crate::sync::Arc;
use crate::wire::{CallerShared, Outcome};
use std::collections::VecDeque;
use std::iter::Fuse;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One request of the window: sent, with its reply's slot, or answered on
/// the spot (its request never left).
enum Entry<P: PoolItem> {
    /// Its slot is in the slab of `AsyncResponses::origin`.
    Sent {
        slot: SlotRef<Outcome<P>>,
        id: u64,
    },
    Failed(Error),
}

/// A calling thread's lanes, and its slab.
type Origin<P> = (Arc<CallerShared>, Arc<Slab<Outcome<P>>>);

/// The responses to a batch, in request order, as a stream; see
/// [`ThreadPool::send_and_receive_async`](crate::ThreadPool::send_and_receive_async).
///
/// `Send` when the request iterator is, allocation-free per request once
/// warm (its window is allocated when it is made). It implements
/// [`futures_core::Stream`]; [`next`](Self::next) awaits one response
/// without any stream combinator crate.
///
/// Nothing is sent before the first poll. Dropping it early takes no
/// further request from the iterator; requests already sent are processed
/// and their responses dropped when they come (dropping does not wait).
#[must_use = "requests are sent only as the responses are polled"]
pub struct AsyncResponses<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> {
    pool: &'a Arc<Shared<P>>,
    requests: Fuse<I>,
    window: VecDeque<Entry<P>>,
    /// A request taken from the iterator whose lane was full.
    stalled: Option<(usize, Message<P>)>,
    /// The lanes (calling thread) the sent requests of `window` left by,
    /// and the slab their slots are in; `Some` exactly while `sent` > 0.
    origin: Option<Origin<P>>,
    /// How many entries of `window` are sent requests.
    sent: usize,
    _request: PhantomData<fn() -> R>,
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> std::fmt::Debug for AsyncResponses<'_, P, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResponses")
            .field("in_flight", &self.window.len())
            .field("stalled", &self.stalled.is_some())
            .finish_non_exhaustive()
    }
}

// No field is ever pinned.
impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Unpin for AsyncResponses<'_, P, R, I> {}

impl<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> AsyncResponses<'a, P, R, I> {
    pub(crate) fn new(pool: &'a Arc<Shared<P>>, requests: I) -> Self {
        Self {
            pool,
            requests: requests.fuse(),
            window: VecDeque::with_capacity(pool.config.window),
            stalled: None,
            origin: None,
            sent: 0,
            _request: PhantomData,
        }
    }

    /// The next response, in request order; `None` after the last.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit, SumRequest};
    /// use shardpool::{AddRequest, ThreadPool};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
    /// #         std::thread::park();
    /// #     }
    /// # }
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// let total = block_on(async {
    ///     let mut adds = pool.send_and_receive_async((0..50).map(|id| AddRequest::new(id, RandomsInit { count: 2 })));
    ///     while let Some(added) = adds.next().await {
    ///         added?;
    ///     }
    ///     let mut sums = pool.send_and_receive_async((0..50).map(SumRequest));
    ///     let mut n = 0;
    ///     while let Some(sum) = sums.next().await {
    ///         assert_eq!(sum?.id, n);
    ///         n += 1;
    ///     }
    ///     Ok::<_, shardpool::Error>(n)
    /// })?;
    /// assert_eq!(total, 50);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn next(&mut self) -> Option<Result<R::Response, Error>> {
        std::future::poll_fn(|cx| self.poll_response(cx)).await
    }

    /// Sends from the polling thread until the window is full, the
    /// requests run out or a lane is full. User code (the iterator,
    /// `into_message`, `placement`) runs here with nothing of ours
    /// borrowed; each push is announced before it returns.
    fn fill(&mut self, cx: &Context<'_>) {
        // The polling thread's handle, looked up once per fill.
        let mut here = None;
        // Whether our waker was left for room in a full ring (`room.rs`).
        let mut waiting = false;
        while self.window.len() < self.pool.config.window {
            let (worker, msg) = match self.stalled.take() {
                Some(s) => s,
                None => {
                    let Some(request) = self.requests.next() else { return };
                    let msg = request.into_message();
                    match self.pool.route::<P>(msg.id()) {
                        Ok(worker) => (worker, msg),
                        Err(e) => {
                            drop(msg);
                            self.window.push_back(Entry::Failed(e));
                            continue;
                        }
                    }
                }
            };
            let handle = match &here {
                Some(h) => h,
                None => match handle(self.pool) {
                    Ok(h) => here.insert(h),
                    Err(e) => {
                        drop(msg);
                        self.window.push_back(Entry::Failed(e));
                        continue;
                    }
                },
            };
            // Moved to another thread with requests still in flight from the
            // first: wait for them (the head's reply wakes the task) before
            // sending from here.
            if self.origin.as_ref().is_some_and(|(origin, _)| !Arc::ptr_eq(origin, handle.shared())) {
                self.stalled = Some((worker, msg));
                return;
            }
            let id = msg.id();
            match handle.send_to_slot(worker, msg) {
                Ok(slot) => {
                    if self.origin.is_none() {
                        self.origin = Some((handle.shared().clone(), handle.slab()));
                    }
                    self.sent += 1;
                    self.window.push_back(Entry::Sent { slot, id });
                }
                Err((Error::Full { .. }, msg)) => {
                    self.stalled = Some((worker, msg));
                    // With a request of ours in flight, its reply wakes us;
                    // otherwise leave our waker for room, and look again once.
                    if waiting || self.sent > 0 {
                        return;
                    }
                    if !handle.wait_for_room(worker, cx.waker()) {
                        // Without the barrier a wake-up could be missed.
                        cx.waker().wake_by_ref();
                        return;
                    }
                    waiting = true;
                }
                Err((e, msg)) => {
                    drop(msg);
                    self.window.push_back(Entry::Failed(e));
                }
            }
        }
    }

    fn poll_response(&mut self, cx: &Context<'_>) -> Poll<Option<Result<R::Response, Error>>> {
        self.fill(cx);
        if matches!(self.window.front(), Some(Entry::Failed(_))) {
            if let Some(Entry::Failed(e)) = self.window.pop_front() {
                return Poll::Ready(Some(Err(e)));
            }
        }
        let (Some(Entry::Sent { slot, id }), Some((_, slab))) = (self.window.front(), &self.origin) else {
            if self.stalled.is_some() {
                // Nothing of ours in flight, and a full ring (other requests
                // of this thread fill it): `fill` left our waker for room.
                return Poll::Pending;
            }
            return Poll::Ready(None);
        };
        // SAFETY: the slot was handed out for this request and has given no
        // `Ready` (the entry is popped when it does) and not been closed
        // (only the drop closes).
        unsafe { slot::spin_for(*slot, ASYNC_SPIN) };
        // SAFETY: as above.
        let Poll::Ready(outcome) = (unsafe { slot::poll(slab, *slot, cx) }) else {
            return Poll::Pending;
        };
        let id = *id;
        self.window.pop_front();
        self.sent -= 1;
        if self.sent == 0 {
            self.origin = None;
        }
        Poll::Ready(Some(decode::<P, R>(id, outcome)))
    }
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> futures_core::Stream for AsyncResponses<'_, P, R, I> {
    type Item = Result<R::Response, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_response(cx)
    }
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Drop for AsyncResponses<'_, P, R, I> {
    fn drop(&mut self) {
        // Every slot is given up; a reply already in is dropped here (user
        // values: a panicking `Drop` costs only itself, the rest are still
        // given up).
        let Some((_, slab)) = &self.origin else { return };
        while let Some(entry) = self.window.pop_front() {
            if let Entry::Sent { slot, .. } = entry {
                // SAFETY: as in `poll_response`: the slot is still ours, and
                // in the origin's slab.
                let late = unsafe { slot::close(slab, slot) };
                crate::error::drop_quietly(late);
            }
        }
    }
}
