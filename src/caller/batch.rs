//! A batch: the [`Responses`] iterator, which sends a batch's requests as
//! it is driven, a window ahead of the response it yields, and answers in
//! request order. It works on the calling thread's handle (`mod.rs`).

use super::{decode, handle, CallerHandle, Link, NIL};
use crate::chain::FrameRef;
use crate::error::{take_panic_message, BatchError, Error};
use crate::item::{Message, PoolItem, Request};
use crate::nest;
use crate::shared::Shared;
use crate::sync::{Arc, Backoff};
use crate::wire::{Envelope, Payload, ReplyTo};
use std::iter::Fuse;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;

/// A batch's requests in flight, in request order: a list threaded through
/// the caller's per-slot links (`Local::links`), so it allocates nothing.
struct InFlight {
    head: u32,
    tail: u32,
    len: usize,
}

impl InFlight {
    /// Links slot `idx` (a request for `id`, sent to `worker`) at the tail.
    fn link(&mut self, links: &mut [Link], idx: u32, id: u64, worker: usize) {
        links[idx as usize] = Link { next: NIL, worker: worker as u32, id, abandoned: false };
        if self.tail == NIL {
            self.head = idx;
        } else {
            links[self.tail as usize].next = idx;
        }
        self.tail = idx;
        self.len += 1;
    }
}

/// A request taken from the caller's iterator, not yet in its ring (the
/// lane was full).
struct Stalled<P: PoolItem> {
    worker: usize,
    msg: Message<P>,
    id: u64,
    /// The frame of the handler the batch is sent from, if any (`chain.rs`).
    chain: Option<FrameRef>,
}

/// The responses to a batch, in request order; see
/// [`ThreadPool::send_and_receive`](crate::ThreadPool::send_and_receive).
///
/// Requests are taken from the request iterator and sent as this iterator is
/// driven, up to a window of them ahead of the response being waited for,
/// so a batch of any size streams through bounded rings and a bounded number
/// of slots.
///
/// # What is sent
///
/// Exactly the requests taken from the request iterator; [`sent`](Self::sent)
/// counts them. Nothing is sent before the first call to `next`, so a
/// `Responses` that is never driven sends nothing (hence `#[must_use]`).
///
/// Dropping it early takes no further request from the iterator. Every
/// request already taken is still delivered (one waiting for room in a full
/// ring is pushed first), the drop waits until all of them are answered, and
/// their responses are dropped. So a short-circuiting
/// `collect::<Result<Vec<_>, _>>()` on a batch with side effects stops
/// *sending* at the first error, after an unknown number of later requests
/// were already applied. To send the whole batch whatever errors come back,
/// use [`collect_all`](Self::collect_all), or collect into
/// `Vec<Result<_, _>>`.
///
/// A panic in user code while the batch is being sent (the request
/// iterator, `into_message`, `placement`) unwinds out of `next`; the drop
/// then waits for the requests already sent, which were announced to the
/// workers before that code ran.
///
/// Forgetting to drive it is a warning (an error here, under
/// `deny(unused_must_use)`):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use shardpool_samples::{Randoms, RandomsInit};
/// use shardpool::{AddRequest, ThreadPool};
///
/// fn add_all(pool: &ThreadPool<Randoms>) -> Result<(), shardpool::Error> {
///     pool.send_and_receive((0..10).map(|id| AddRequest::new(id, RandomsInit { count: 1 })))?;
///     Ok(())
/// }
/// ```
///
/// `Responses` belongs to the thread that made it:
///
/// ```compile_fail
/// use shardpool_samples::{Randoms, SumRequest};
/// use shardpool::ThreadPool;
///
/// fn assert_send<T: Send>(_: &T) {}
/// let pool = ThreadPool::<Randoms>::new(1).unwrap();
/// let responses = pool.send_and_receive((0..3).map(SumRequest)).unwrap();
/// assert_send(&responses);
/// ```
#[must_use = "requests are sent only as the responses are iterated; an iterator dropped unused sends nothing"]
pub struct Responses<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> {
    pool: &'a Shared<P>,
    handle: Rc<CallerHandle<P>>,
    requests: Fuse<I>,
    list: InFlight,
    sent: usize,
    stalled: Option<Stalled<P>>,
    _marker: PhantomData<fn() -> R>,
}

impl<'a, P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Responses<'a, P, R, I> {
    pub(crate) fn new(pool: &'a Arc<Shared<P>>, requests: I) -> Result<Self, Error> {
        if pool.gate.is_closed() {
            return Err(Error::Shutdown);
        }
        let handle = handle(pool)?;
        Ok(Self {
            pool,
            handle,
            requests: requests.fuse(),
            list: InFlight { head: NIL, tail: NIL, len: 0 },
            sent: 0,
            stalled: None,
            _marker: PhantomData,
        })
    }

    /// How many requests have been sent to workers so far: taken from the
    /// request iterator and pushed, or bound to be (one waiting for room in
    /// a full ring is pushed before this `Responses` is dropped). Requests
    /// answered on the spot, such as one with a bad placement or one refused
    /// because the pool shut down, are not counted.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// let mut responses = pool.send_and_receive((0..10).map(|id| AddRequest::new(id, RandomsInit { count: 1 })))?;
    /// assert_eq!(responses.sent(), 0); // nothing leaves before the first `next`
    /// responses.next();
    /// assert!(responses.sent() >= 1);
    /// drop(responses); // what was sent is answered; the rest is never sent
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Sends every request and waits for every response, then returns the
    /// successful responses collected into `C`, or, if any request failed,
    /// the first failure (with its index and the number of failures).
    ///
    /// Unlike `collect::<Result<C, _>>()`, it does not stop at the first
    /// error: every request of the batch is sent, whatever comes back, which
    /// is what a batch with side effects (adds, updates) usually wants.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit};
    /// use shardpool::{AddRequest, Error, ThreadPool};
    ///
    /// let pool = ThreadPool::<Randoms>::new(2)?;
    /// let init = || RandomsInit { count: 1 };
    /// // Id 1 twice: the second add fails, and every other add is still made.
    /// let ids = [0, 1, 1, 2, 3];
    /// let err = pool
    ///     .send_and_receive(ids.map(|id| AddRequest::new(id, init())))?
    ///     .collect_all::<Vec<_>>()
    ///     .unwrap_err();
    /// assert_eq!((err.index, err.failed), (2, 1));
    /// assert_eq!(err.error, Error::DuplicateId { id: 1 });
    /// assert_eq!(pool.stats().items(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn collect_all<C: FromIterator<R::Response>>(mut self) -> Result<C, BatchError> {
        let mut first: Option<(usize, Error)> = None;
        let mut failed = 0;
        let mut index = 0;
        let mut record = |r: Result<R::Response, Error>| {
            let i = index;
            index += 1;
            match r {
                Ok(v) => Some(v),
                Err(e) => {
                    failed += 1;
                    first.get_or_insert((i, e));
                    None
                }
            }
        };
        let collected: C = self.by_ref().filter_map(&mut record).collect();
        // `C` may stop early; the rest of the batch is sent all the same.
        self.by_ref().for_each(|r| drop(record(r)));
        match first {
            None => Ok(collected),
            Some((index, error)) => Err(BatchError { index, error, failed }),
        }
    }

    /// Pushes one request inside the gate and announces it at once, or
    /// answers it on the spot if the pool shut down. Returns `false` if its
    /// lane is full: it is kept in `stalled`. Calls no user code while our
    /// state is borrowed; a refused request is dropped after.
    fn push(&mut self, s: Stalled<P>) -> bool {
        let handle = &self.handle;
        let mut local = handle.local.borrow_mut();
        if local.in_flight == 0 {
            local.choose_sleep(handle.spin(None), &handle.shared.sleeper);
        }
        if !local.room(s.worker) {
            // Everything in that lane was announced when it was pushed.
            self.stalled = Some(s);
            return false;
        }
        if let Err(e) = self.pool.gate.enter(&handle.shared.presence) {
            let idx = local.answered(e);
            self.list.link(&mut local.links, idx, s.id, 0);
            // Counted as sent when it was taken: it was not.
            self.sent -= 1;
            drop(local);
            drop(s.msg);
            return true;
        }
        let Stalled { worker, msg, id, chain } = s;
        let producer = &mut local.producers[worker];
        let pushed = match chain {
            None => producer.push(Payload::Message(msg)),
            // Behind its handler's frame, published together (`wire.rs`).
            Some(f) => producer.push_run([Payload::Chain(f), Payload::Message(msg)]).map_err(|[_, p]| p),
        }
        .map_err(|p| Envelope { payload: p, to: ReplyTo::CELL, chain: None }.into_message());
        self.pool.gate.leave(&handle.shared.presence);
        match pushed {
            Ok(()) => {
                let idx = local.alloc();
                local.sent(worker, idx);
                self.list.link(&mut local.links, idx, id, worker);
                // Announced before control goes back to user code.
                handle.announce(worker);
                true
            }
            Err(msg) => {
                // A full ring (of requests announced to the worker and not
                // yet taken: sends, or another batch's of this thread):
                // kept like a request for a full lane.
                self.stalled = Some(Stalled { worker, msg, id, chain });
                false
            }
        }
    }

    /// Sends requests until the window is full, the requests run out or a
    /// lane is full.
    fn fill(&mut self) {
        // Refill only once half the window has drained, so requests leave in
        // bursts rather than one per response.
        if self.list.len > self.pool.config.window / 2 {
            return;
        }
        if let Some(s) = self.stalled.take() {
            if !self.push(s) {
                return;
            }
        }
        while self.list.len < self.pool.config.window {
            // User code (the iterator, `into_message`, `placement`): every
            // request pushed so far has been announced, and no state of ours
            // is borrowed.
            let Some(request) = self.requests.next() else { break };
            let msg = request.into_message();
            let id = msg.id();
            let routed = self
                .pool
                .route::<P>(id)
                .and_then(|w| Ok((w, nest::departing(|| self.pool.wait_for(w, id), false)?)));
            match routed {
                Ok((worker, chain)) => {
                    // Sent from here on: pushed now, or, if its lane is full,
                    // later (even if this `Responses` is dropped first).
                    self.sent += 1;
                    if !self.push(Stalled { worker, msg, id, chain }) {
                        break;
                    }
                }
                Err(Error::SameWorker { .. }) if crate::worker::may_inline(self.pool.id) => {
                    // An item of this worker, from a handler: run inline now,
                    // in its place in the batch (user code: nothing of ours
                    // is borrowed).
                    let outcome = crate::worker::inline::<P>(self.pool, msg);
                    let mut local = self.handle.local.borrow_mut();
                    let idx = local.answered_with(outcome);
                    self.list.link(&mut local.links, idx, id, 0);
                }
                Err(e) => {
                    let mut local = self.handle.local.borrow_mut();
                    let idx = local.answered(e);
                    self.list.link(&mut local.links, idx, id, 0);
                    drop(local);
                    drop(msg);
                }
            }
        }
    }
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Iterator for Responses<'_, P, R, I> {
    type Item = Result<R::Response, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fill();
        let mut backoff = Backoff::new();
        // Nothing of ours in flight but a request stuck behind a full ring:
        // the ring holds another batch's requests (same thread, nested), which
        // the worker is draining. Wait for room.
        while self.list.head == NIL && self.stalled.is_some() {
            nest::pause(&mut backoff);
            self.fill();
        }
        if self.list.head == NIL {
            return None;
        }
        let idx = self.list.head;
        let (outcome, id, slept, discard) = {
            let mut local = self.handle.local.borrow_mut();
            let Link { next, worker, id, .. } = local.links[idx as usize];
            // The reply is usually in already (the worker keeps up with a
            // batch's caller): take it without the wait's machinery.
            let (mut local, outcome, slept) = match local.take(worker as usize, idx) {
                Some(outcome) => (local, Some(outcome), false),
                None => self.handle.wait_for(
                    local,
                    worker as usize,
                    idx,
                    Some(id),
                    || self.handle.spin(None),
                    None,
                ),
            };
            self.list.head = next;
            if next == NIL {
                self.list.tail = NIL;
            }
            (outcome, id, slept, local.take_discarded())
        };
        drop(discard);
        self.handle.after_wait(slept);
        // A wait with no deadline ends with its reply.
        let outcome = outcome.unwrap_or_else(|| Err(Box::new(Error::Timeout { id })));
        self.list.len -= 1;
        Some(decode::<P, R>(id, outcome))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.requests.size_hint();
        let extra = self.list.len + usize::from(self.stalled.is_some());
        (lo.saturating_add(extra), hi.and_then(|h| h.checked_add(extra)))
    }
}

impl<P: PoolItem, R: Request<P>, I: Iterator<Item = R>> Drop for Responses<'_, P, R, I> {
    fn drop(&mut self) {
        // Every request taken from the iterator is delivered: a stalled one
        // is pushed once its ring has room (the worker is draining it).
        // A refused one (the pool shut down) is dropped by `push`: user code,
        // whose panic must not stop us from taking the rest.
        let mut first_panic = None;
        let mut backoff = Backoff::new();
        while let Some(s) = self.stalled.take() {
            match catch_unwind(AssertUnwindSafe(|| self.push(s))) {
                Ok(true) => {}
                Ok(false) => nest::pause(&mut backoff),
                Err(payload) => first_panic = Some(payload),
            }
        }
        // Responses are user values: a `Drop` that panics must not stop us
        // from taking the rest (they would be left to this thread's exit).
        // The first panic is raised again once all are in.
        while self.list.head != NIL {
            let idx = self.list.head;
            let Ok(local) = self.handle.local.try_borrow_mut() else { return };
            let Link { next, worker, id, .. } = local.links[idx as usize];
            let (mut local, outcome, _) =
                self.handle.wait_for(local, worker as usize, idx, Some(id), || self.handle.spin(None), None);
            self.list.head = next;
            let discard = local.take_discarded();
            // The response may run user code when dropped: not under a borrow.
            drop(local);
            drop(discard);
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(outcome))) {
                match first_panic {
                    None => first_panic = Some(payload),
                    Some(_) => drop(take_panic_message(payload)),
                }
            }
        }
        if let Some(payload) = first_panic {
            if std::thread::panicking() {
                // Raising it now would abort the process.
                drop(take_panic_message(payload));
            } else {
                resume_unwind(payload);
            }
        }
    }
}
