//! Hosting the items: the item table, the dispatch of each message to its
//! item, and the `catch_unwind` around every piece of user code and the drop
//! of every user value (`mod.rs` moves the messages; this runs them).

use crate::error::{take_panic_message, Error};
use crate::item::{Message, PoolItem, Processing, Reply};
use crate::reply::ReplyWriter;
use crate::shared::{ErrorHandler, PanicHandler, PanicReport};
use crate::slot::{self, Slab};
use crate::stats::WorkerCounters;
use crate::sync::atomic::{bump, Ordering};
use crate::sync::barrier::Barrier;
use crate::sync::Backoff;
use crate::trace::{event, span};
use crate::wire::{CallerShared, Destination, IdSink, Outcome, Payload, Query, ReplyTo};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The item table. Ids may come from outside the process (a network peer
/// naming a session), so the hasher is seeded: foldhash's `RandomState`
/// draws a fresh seed per table (per worker), so colliding ids cannot be
/// precomputed. foldhash is not a cryptographic hash; it resists flooding by
/// ids chosen without seeing the table, which is the threat here.
// NB: `cargo bench --bench item_table` (1,000 items, 2-core VM, medians):
// 3.0 ns a lookup for foldhash, 2.7 ns for rustc-hash's unseeded FxHasher,
// 21 ns (dense ids) and 16 ns (sparse) for std's SipHash. The seed costs
// about 0.3 ns a request, next to a round trip of about 400 ns.
pub(super) type Items<P> = HashMap<u64, P, foldhash::fast::RandomState>;

/// What processes messages: the items and the thread state.
pub(super) struct Core<P: PoolItem> {
    pub(super) index: usize,
    pub(super) items: Items<P>,
    pub(super) state: P::ThreadState,
    pub(super) panic_handler: Option<PanicHandler>,
    pub(super) error_handler: Option<ErrorHandler>,
}

/// One caller's way back, as the worker sees it: the lane's reply cells,
/// its slab of async slots, the caller's sleeper, and where the reply to
/// the next message goes if a redirection said (`wire.rs`).
pub(super) struct Back<'a, P: PoolItem> {
    pub(super) replies: &'a mut ReplyWriter<Outcome<P>>,
    pub(super) slots: &'a Slab<Outcome<P>>,
    pub(super) caller: &'a CallerShared,
    pub(super) next_to: &'a mut ReplyTo<Outcome<P>>,
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
        &mut self,
        payload: Payload<P>,
        back: &mut Back<'_, P>,
        counters: &WorkerCounters,
        barrier: &Barrier,
    ) {
        let msg = match payload {
            Payload::Message(msg) => msg,
            Payload::Redirect(to) => {
                // The next entry's reply goes there (the pair was published
                // together; a drain may still split it between two passes).
                *back.next_to = to;
                return;
            }
            Payload::Query(q) => {
                // Questions come from a caller waiting in a reply cell.
                debug_assert!(back.next_to.is_cell());
                let answer = self.answer(q);
                self.reply_to_cell(Ok(answer), back, barrier);
                return;
            }
        };
        let to = std::mem::replace(back.next_to, ReplyTo::CELL);
        if to.is_cell() {
            // The blocking paths' case, kept apart so that it stays short.
            let result = self.handle(msg, counters);
            bump(&counters.requests, 1);
            self.reply_to_cell(result.map_err(Box::new), back, barrier);
            return;
        }
        self.process_elsewhere(msg, to, back, counters);
    }

    /// [`process`](Self::process) for a request whose reply goes into an
    /// async slot, or nowhere.
    #[inline(never)]
    fn process_elsewhere(
        &mut self,
        msg: Message<P>,
        to: ReplyTo<Outcome<P>>,
        back: &mut Back<'_, P>,
        counters: &WorkerCounters,
    ) {
        let id = msg.id();
        let result = self.handle(msg, counters);
        bump(&counters.requests, 1);
        // SAFETY: a slot named by a request in this lane's ring belongs to
        // the slab the lane holds (`back.slots`), alive as long as the lane.
        match unsafe { to.destination() } {
            // Not reached: `process` handles the cells.
            Destination::Cell => {}
            Destination::Slot(s) => {
                // SAFETY: the caller named this slot, handed out by its slab,
                // in this one request, and this is its one reply.
                let left = unsafe { slot::publish(back.slots, s, result.map_err(Box::new)) };
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
    }

    /// Answers a question about the items here.
    fn answer(&self, query: Query) -> Reply<P> {
        match query {
            Query::Contains(id) => Reply::Removed { id, existed: self.items.contains_key(&id) },
            Query::Ids(IdSink(sink)) => {
                // SAFETY: the caller waits, with no deadline, for the reply
                // published after this write, and does not touch the vector
                // until it has it (`IdSink`).
                unsafe { (*sink).extend(self.items.keys()) };
                Reply::Added { id: 0 }
            }
        }
    }

    /// Publishes into the lane's next reply cell.
    #[inline]
    fn reply_to_cell(&mut self, mut outcome: Outcome<P>, back: &mut Back<'_, P>, barrier: &Barrier) {
        // The caller never has more requests pending on a lane than it has
        // reply cells (`Local::room`), so the cell is free. Were it not (a
        // broken count), the worker waits for the caller to take a reply,
        // or drops the reply if the caller has gone.
        let mut backoff = Backoff::new();
        while let Err(back_value) = back.caller.sleeper.publish_to(back.replies, outcome, barrier) {
            debug_assert!(false, "a reply cell not yet emptied");
            // Acquire: pairs with the caller's Release store of `retired`.
            if back.caller.retired.load(Ordering::Acquire) {
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
    fn unanswered(&mut self, error: Error, counters: &WorkerCounters) {
        bump(&counters.unanswered_errors, 1);
        event!(warn, worker = self.index, id = ?error.id(), "a request sent with `send` failed");
        match &self.error_handler {
            Some(h) => {
                let h = h.clone();
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| h(error))) {
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
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
                self.report(None, format!("a task's waker panicked: {}", take_panic_message(payload)));
            }
        }
    }

    fn report(&self, id: Option<u64>, message: String) {
        event!(error, worker = self.index, ?id, panic = %message, "a panic in user code");
        report(&self.panic_handler, self.index, id, message);
    }

    pub(super) fn handle(&mut self, msg: Message<P>, counters: &WorkerCounters) -> Result<Reply<P>, Error> {
        span!(TRACE, "process", worker = self.index, id = msg.id());
        match msg {
            Message::Call { id, request } => {
                let Some(item) = self.items.get_mut(&id) else {
                    event!(debug, worker = self.index, id, "request for an unknown id");
                    self.drop_user(request, Some(id), "dropping a request for an unknown id");
                    return Err(Error::UnknownId { id });
                };
                let state = &mut self.state;
                // The request and the response live outside the closure, so
                // that a panicking hook does not drop them while unwinding
                // (a second panic there would abort the process).
                let mut request = Some(request);
                let mut response = None;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let _p = Processing::enter(id);
                    item.pre_process(state);
                    if let Some(request) = request.take() {
                        response = Some(item.process_message(request));
                    }
                    item.post_process(state);
                }));
                match (result, response) {
                    (Ok(()), Some(response)) => Ok(Reply::Response(response)),
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
                        Err(self.item_panicked(id, payload, counters))
                    }
                }
            }
            Message::Add { id, init } => {
                if self.items.contains_key(&id) {
                    event!(debug, worker = self.index, id, "add refused: duplicate id");
                    self.drop_user(init, Some(id), "dropping the init data of a duplicate add");
                    return Err(Error::DuplicateId { id });
                }
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let _p = Processing::enter(id);
                    P::new_pool_item(id, init)
                }));
                match result {
                    Ok(Ok(item)) => {
                        self.items.insert(id, item);
                        WorkerCounters::set(&counters.items, self.items.len() as u64);
                        event!(debug, worker = self.index, id, "item added");
                        Ok(Reply::Added { id })
                    }
                    Ok(Err(e)) => {
                        // The error's `Display` is user code: it is not run here,
                        // on the worker, but by whoever formats the caller's error.
                        event!(warn, worker = self.index, id, "item constructor failed");
                        Err(Error::InitFailed { id, error: e })
                    }
                    Err(payload) => Err(self.item_panicked(id, payload, counters)),
                }
            }
            Message::Remove { id } => match self.items.remove(&id) {
                None => Ok(Reply::Removed { id, existed: false }),
                Some(item) => {
                    WorkerCounters::set(&counters.items, self.items.len() as u64);
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        let _p = Processing::enter(id);
                        drop(item);
                    }));
                    event!(debug, worker = self.index, id, "item removed");
                    match result {
                        Ok(()) => Ok(Reply::Removed { id, existed: true }),
                        Err(payload) => Err(self.item_panicked(id, payload, counters)),
                    }
                }
            },
        }
    }

    /// An item panicked: drop it (its state may be torn), tell the panic
    /// handler, and build the caller's error. A panic from the item's drop
    /// is reported too.
    #[cold]
    pub(super) fn item_panicked(
        &mut self,
        id: u64,
        payload: Box<dyn std::any::Any + Send>,
        counters: &WorkerCounters,
    ) -> Error {
        let message = take_panic_message(payload);
        event!(error, worker = self.index, id, panic = %message, "item panicked and was removed");
        report(&self.panic_handler, self.index, Some(id), message.clone());
        if let Some(item) = self.items.remove(&id) {
            WorkerCounters::set(&counters.items, self.items.len() as u64);
            let _p = Processing::enter(id);
            self.drop_user(item, Some(id), "dropping the item after it panicked");
        }
        Error::Panicked { id, message }
    }

    pub(super) fn drop_user<T>(&self, value: T, id: Option<u64>, what: &str) {
        drop_user(&self.panic_handler, self.index, value, id, what);
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
