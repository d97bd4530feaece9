//! Hosting the items: the item table, the dispatch of each message to its
//! item, and the `catch_unwind` around every piece of user code and the drop
//! of every user value (`mod.rs` moves the messages; this runs them).

use super::lane::Lane;
use super::nest::{Deferrals, Levels};
use crate::chain::FrameRef;
use crate::error::{take_panic_message, Error};
use crate::item::{Message, PoolItem, Processing};
use crate::shared::{ErrorHandler, PanicHandler, PanicReport};
use crate::slot;
use crate::slot::Slab;
use crate::stats::WorkerCounters;
use crate::sync::atomic::{bump, Ordering};
use crate::sync::barrier::Barrier;
use crate::sync::Backoff;
use crate::trace::{event, span};
use crate::wire::{Answer, Destination, IdSink, Outcome, Payload, Query, ReplyTo};
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

/// The item table. Ids may come from outside the process (a network peer
/// naming a session), so the hasher is seeded: foldhash's `RandomState`
/// draws a fresh seed per table (per worker), so colliding ids cannot be
/// precomputed. foldhash is not a cryptographic hash; it resists flooding by
/// ids chosen without seeing the table, which is the threat here.
// NB: `cargo bench --bench item_table` (1,000 items, 2-core VM, medians):
// 3.0 ns a lookup for foldhash, 2.7 ns for rustc-hash's unseeded FxHasher,
// 21 ns (dense ids) and 16 ns (sparse) for std's SipHash. The seed costs
// about 0.3 ns a request, next to a round trip of about 400 ns.
///
/// Each item is in its own `RefCell` behind an `Rc`: the worker may serve
/// other requests while an item's handler waits for a nested call
/// (`nest.rs`), and those may add or remove items, so the table is only
/// borrowed for a lookup, an insert or a remove, never across user code,
/// and an item being processed stays where it is, borrowed mutably (which
/// is also how a request for it is seen to have to wait).
pub(super) type Items<P> = HashMap<u64, Rc<RefCell<P>>, foldhash::fast::RandomState>;

/// What processes messages: the items and the thread state, reached
/// through a shared reference (the worker may be re-entered from a handler
/// that waits, `nest.rs`): every part that changes is in a `RefCell`,
/// borrowed only while no user code runs, but for the item being processed
/// and, while a hook runs, the thread state.
pub(super) struct Core<P: PoolItem> {
    pub(super) index: usize,
    pub(super) items: RefCell<Items<P>>,
    pub(super) state: RefCell<P::ThreadState>,
    pub(super) panic_handler: Option<PanicHandler>,
    pub(super) error_handler: Option<ErrorHandler>,
    /// The handlers under way on this thread (`nest.rs`).
    pub(super) levels: Levels,
    /// Requests for busy items, taken off their rings by a nested pass.
    pub(super) deferred: RefCell<Deferrals<P>>,
    /// The ids whose constructor is under way.
    pub(super) constructing: RefCell<Vec<u64>>,
}

impl<P: PoolItem> Core<P> {
    /// Handles one entry of a lane's ring: a redirection is noted for the
    /// next; a request is handled and its outcome sent where it goes:
    /// into the lane's next reply cell, waking the caller if it sleeps
    /// (`reply.rs`); into an async slot, waking its task (`slot.rs`); or,
    /// for a request sent without a reply, nowhere (an error is counted and
    /// reported). The statistics a caller may read once it has the reply
    /// are updated before the reply is published.
    #[inline]
    pub(super) fn process(
        &self,
        payload: Payload<P>,
        lane: &Lane<P>,
        counters: &WorkerCounters,
        barrier: &Barrier,
    ) {
        let msg = match payload {
            Payload::Message(msg) => msg,
            Payload::Redirect(to) => {
                // The next entry's reply goes there (the pair was published
                // together; a pass may still split it between two passes).
                lane.next_to.set(to);
                return;
            }
            Payload::Chain(frame) => {
                // The next entry is sent from a handler (`chain.rs`).
                lane.next_chain.set(Some(frame));
                return;
            }
            Payload::Query(q) => {
                // Questions come from a caller waiting in a reply cell.
                debug_assert!(lane.next_to.get().is_cell());
                let answer = self.answer(q);
                self.reply_to_cell(Ok(answer), lane, barrier);
                return;
            }
        };
        let to = lane.next_to.replace(ReplyTo::CELL);
        let parent = lane.next_chain.take();
        if to.is_cell() {
            // The blocking paths' case, kept apart so that it stays short.
            // The lane's cells are awaited by this request until its reply
            // is in (`nest.rs`).
            lane.open.set(true);
            let result = self.handle(msg, parent, counters);
            bump(&counters.requests, 1);
            self.reply_to_cell(result.map_err(Box::new), lane, barrier);
            lane.open.set(false);
            self.after_reply(counters);
            return;
        }
        self.process_to(msg, to, &lane.slots, parent, counters);
    }

    /// A reply is out: requests deferred for items now free run
    /// (`nest.rs`), after it, so that it never waits on them.
    #[inline]
    fn after_reply(&self, counters: &WorkerCounters) {
        if !self.deferred.borrow().is_empty() {
            self.run_ready_deferred(counters);
        }
    }

    /// Refuses the request at the head of `lane`'s reply order with `error`.
    #[cold]
    pub(super) fn refuse(&self, error: Error, lane: &Lane<P>, barrier: &Barrier) {
        self.reply_to_cell(Err(Box::new(error)), lane, barrier);
    }

    /// [`process`](Self::process) for a request whose reply goes into an
    /// async slot of `slots`, or nowhere (also for a deferred request).
    #[inline(never)]
    pub(super) fn process_to(
        &self,
        msg: Message<P>,
        to: ReplyTo<Outcome<P>>,
        slots: &Slab<Outcome<P>>,
        parent: Option<FrameRef>,
        counters: &WorkerCounters,
    ) {
        let id = msg.id();
        let result = self.handle(msg, parent, counters);
        bump(&counters.requests, 1);
        // SAFETY: a slot named by a request belongs to the slab of the lane
        // it came on, which that lane holds as long as it lives, and a
        // deferred request holds while it waits (`slots`).
        match unsafe { to.destination() } {
            // Not reached: `process` handles the cells.
            Destination::Cell => {}
            Destination::Slot(s) => {
                // SAFETY: the caller named this slot, handed out by its slab,
                // in this one request, and this is its one reply.
                // The task's waker runs in there: code outside any handler.
                let left =
                    self.levels.outside(|| unsafe { slot::publish(slots, s, result.map_err(Box::new)) });
                if let Some(payload) = left.panic {
                    self.report(
                        Some(id),
                        format!("a task's waker panicked: {}", take_panic_message(payload)),
                    );
                }
                self.drop_user(left.reply, Some(id), "dropping a reply whose future was dropped");
                self.drop_user(left.waker, Some(id), "dropping a task's waker");
            }
            Destination::Forget => match result {
                Ok(reply) => {
                    self.drop_user(reply, Some(id), "dropping the response to a request sent with `send`")
                }
                Err(error) => self.unanswered(error, counters),
            },
        }
        self.after_reply(counters);
    }

    /// Answers a question about the items here.
    fn answer(&self, query: Query) -> Answer<P> {
        match query {
            Query::Contains(id) if self.items.borrow().contains_key(&id) => Answer::Removed(id),
            Query::Contains(id) => Answer::Absent(id),
            Query::Ids(IdSink(sink)) => {
                // SAFETY: the caller waits, with no deadline, for the reply
                // published after this write, and does not touch the vector
                // until it has it (`IdSink`).
                unsafe { (*sink).extend(self.items.borrow().keys()) };
                Answer::Added(0)
            }
        }
    }

    /// Publishes into the lane's next reply cell.
    #[inline]
    fn reply_to_cell(&self, mut outcome: Outcome<P>, lane: &Lane<P>, barrier: &Barrier) {
        // The caller never has more requests pending on a lane than it has
        // reply cells (`Local::room`), so the cell is free. Were it not (a
        // broken count), the worker waits for the caller to take a reply,
        // or drops the reply if the caller has gone.
        let mut backoff = Backoff::new();
        loop {
            let Err(back_value) = lane.publish(outcome, barrier) else { return };
            debug_assert!(false, "a reply cell not yet emptied");
            // Acquire: pairs with the caller's Release store of `retired`.
            if lane.caller.retired.load(Ordering::Acquire) {
                self.drop_user(back_value, None, "dropping a reply its caller never took");
                return;
            }
            outcome = back_value;
            backoff.wait();
        }
    }

    /// A request sent without a reply failed: count it, and hand the error
    /// to the error handler (a panic also reached the panic handler).
    #[cold]
    fn unanswered(&self, error: Error, counters: &WorkerCounters) {
        bump(&counters.unanswered_errors, 1);
        event!(warn, worker = self.index, id = ?error.id(), "a request sent with `send` failed");
        match &self.error_handler {
            Some(h) => {
                let h = h.clone();
                let handled = self.levels.outside(|| catch_unwind(AssertUnwindSafe(|| h(error))));
                if let Err(payload) = handled {
                    self.report(None, format!("the error handler panicked: {}", take_panic_message(payload)));
                }
            }
            None => self.drop_user(error, None, "dropping the error of a request sent with `send`"),
        }
    }

    /// Wakes async callers that waited for room: the runtime's code, each
    /// under `catch_unwind` (a panic is reported), and each waker dropped
    /// the same way.
    #[cold]
    pub(super) fn wake_all(&self, wakers: &mut Vec<std::task::Waker>) {
        for waker in wakers.drain(..) {
            let woken = self.levels.outside(|| catch_unwind(AssertUnwindSafe(|| waker.wake())));
            if let Err(payload) = woken {
                self.report(None, format!("a task's waker panicked: {}", take_panic_message(payload)));
            }
        }
    }

    fn report(&self, id: Option<u64>, message: String) {
        event!(error, worker = self.index, ?id, panic = %message, "a panic in user code");
        self.levels.outside(|| report(&self.panic_handler, self.index, id, message));
    }

    /// Runs `msg`, sent on behalf of the handler whose frame is `parent`.
    /// Requests deferred for its item meanwhile are run once its reply is
    /// out (`after_reply`).
    pub(super) fn handle(
        &self,
        msg: Message<P>,
        parent: Option<FrameRef>,
        counters: &WorkerCounters,
    ) -> Result<Answer<P>, Error> {
        span!(TRACE, "process", worker = self.index, id = msg.id());
        match msg {
            Message::Call { id, request } => {
                let found = self.items.borrow().get(&id).cloned();
                let Some(cell) = found else {
                    event!(debug, worker = self.index, id, "request for an unknown id");
                    self.drop_user(request, Some(id), "dropping a request for an unknown id");
                    return Err(Error::UnknownId { id });
                };
                // Not borrowed: only this item's own handler borrows it, and
                // a request for an item whose handler is under way is not
                // taken off its ring (`nest.rs`).
                let mut item = cell.borrow_mut();
                // The request and the response live outside the closure, so
                // that a panicking hook does not drop them while unwinding
                // (a second panic there would abort the process).
                let mut request = Some(request);
                let mut response = None;
                let level = self.levels.enter(id, parent);
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let _p = Processing::enter(id);
                    // The thread state is borrowed for each hook alone; the
                    // handler proper may serve while it waits.
                    item.pre_process(&mut self.state.borrow_mut());
                    if let Some(request) = request.take() {
                        level.as_ref().inspect(|l| l.in_handler(true));
                        response = Some(item.process_message(request));
                        level.as_ref().inspect(|l| l.in_handler(false));
                    }
                    item.post_process(&mut self.state.borrow_mut());
                }));
                drop(level);
                drop(item);
                match (result, response) {
                    (Ok(()), Some(response)) => Ok(Answer::Response(response)),
                    // Cannot happen (the closure took the request and, having
                    // returned, answered it); an error rather than a panic.
                    (Ok(()), None) => Err(Error::UnexpectedResponse { id }),
                    (Err(payload), response) => {
                        let _p = Processing::enter(id);
                        self.drop_user(
                            request,
                            Some(id),
                            "dropping a request after its pre_process hook panicked",
                        );
                        self.drop_user(
                            response,
                            Some(id),
                            "dropping a response after its post_process hook panicked",
                        );
                        Err(self.item_panicked(id, Some(cell), payload, counters))
                    }
                }
            }
            Message::Add { id, init } => {
                if self.items.borrow().contains_key(&id) || self.constructing.borrow().contains(&id) {
                    event!(debug, worker = self.index, id, "add refused: duplicate id");
                    self.drop_user(init, Some(id), "dropping the init data of a duplicate add");
                    return Err(Error::DuplicateId { id });
                }
                // Requests for it wait while it is being made (`nest.rs`).
                self.constructing.borrow_mut().push(id);
                let level = self.levels.enter(id, parent);
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let _p = Processing::enter(id);
                    level.as_ref().inspect(|l| l.in_handler(true));
                    P::new_pool_item(id, init)
                }));
                drop(level);
                self.constructing.borrow_mut().retain(|&c| c != id);
                match result {
                    Ok(Ok(item)) => {
                        let len = {
                            let mut items = self.items.borrow_mut();
                            items.insert(id, Rc::new(RefCell::new(item)));
                            items.len()
                        };
                        WorkerCounters::set(&counters.items, len as u64);
                        event!(debug, worker = self.index, id, "item added");
                        Ok(Answer::Added(id))
                    }
                    Ok(Err(e)) => {
                        // The error's `Display` is user code: it is not run here,
                        // on the worker, but by whoever formats the caller's error.
                        event!(warn, worker = self.index, id, "item constructor failed");
                        Err(Error::InitFailed { id, error: e })
                    }
                    Err(payload) => Err(self.item_panicked(id, None, payload, counters)),
                }
            }
            Message::Remove { id } => {
                let removed = {
                    let mut items = self.items.borrow_mut();
                    items.remove(&id).map(|item| (item, items.len()))
                };
                match removed {
                    None => Ok(Answer::Absent(id)),
                    Some((item, len)) => {
                        WorkerCounters::set(&counters.items, len as u64);
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            let _p = Processing::enter(id);
                            drop(item);
                        }));
                        event!(debug, worker = self.index, id, "item removed");
                        match result {
                            Ok(()) => Ok(Answer::Removed(id)),
                            Err(payload) => Err(self.item_panicked(id, None, payload, counters)),
                        }
                    }
                }
            }
        }
    }

    /// An item panicked: drop it (its state may be torn), tell the panic
    /// handler, and build the caller's error. `cell` is the item that
    /// panicked, if it is in the table (not for a constructor or a `Drop`,
    /// whose item is not); it is removed only if the table still holds that
    /// very item. A panic from the item's drop is reported too.
    #[cold]
    pub(super) fn item_panicked(
        &self,
        id: u64,
        cell: Option<Rc<RefCell<P>>>,
        payload: Box<dyn std::any::Any + Send>,
        counters: &WorkerCounters,
    ) -> Error {
        let message = take_panic_message(payload);
        event!(error, worker = self.index, id, panic = %message, "item panicked and was removed");
        report(&self.panic_handler, self.index, Some(id), message.clone());
        let Some(cell) = cell else { return Error::Panicked { id, message } };
        let len = {
            let mut items = self.items.borrow_mut();
            if items.get(&id).is_some_and(|c| Rc::ptr_eq(c, &cell)) {
                // Not the last reference (`cell` is): no user code runs here.
                items.remove(&id);
            }
            items.len()
        };
        WorkerCounters::set(&counters.items, len as u64);
        let _p = Processing::enter(id);
        // The last reference: the item itself is dropped here.
        self.drop_user(cell, Some(id), "dropping the item after it panicked");
        Error::Panicked { id, message }
    }

    /// Drops a user value (`drop_user`), as code outside any handler
    /// (`Levels::outside`).
    pub(super) fn drop_user<T>(&self, value: T, id: Option<u64>, what: &str) {
        self.levels.outside(|| drop_user(&self.panic_handler, self.index, value, id, what));
    }
}

/// Drops a user value under `catch_unwind`; a panic from its `Drop` reaches
/// the panic handler as "`what`: message".
pub(super) fn drop_user<T>(
    handler: &Option<PanicHandler>,
    worker: usize,
    value: T,
    id: Option<u64>,
    what: &str,
) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        let message = format!("{what}: {}", take_panic_message(payload));
        event!(error, worker, ?id, panic = %message, "a user value's drop panicked");
        report(handler, worker, id, message);
    }
}

/// Hands a caught panic to the pool's panic handler, if any. A panic in the
/// handler itself is swallowed (its payload dropped under `catch_unwind`).
pub(crate) fn report(handler: &Option<PanicHandler>, worker: usize, id: Option<u64>, message: String) {
    if let Some(h) = handler {
        let report = PanicReport { worker, id, message };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| h(report))) {
            drop(take_panic_message(payload));
        }
    }
}
