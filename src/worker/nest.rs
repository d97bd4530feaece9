//! A worker whose handler waits for a nested call keeps serving, and runs
//! calls to its own items inline.
//!
//! # Levels
//!
//! Every handler the worker runs (`process_message` with its hooks, or a
//! constructor) is a *level* of its thread: level 1 for one started by the
//! worker's loop, one more for each started by a pass made while the level
//! below waits for a nested call (`serve_nested`), or called inline by it
//! (`inline`). A level records its item, the frame of the call it answers
//! (`chain.rs`), its own frame once published, and the item it waits for.
//! There are at most [`MAX_DEPTH`] levels: a handler at that depth may not
//! call out ([`Error::TooDeep`]), so no pass starts a handler beyond it and
//! the stack stays bounded.
//!
//! # What a waiting worker takes
//!
//! Items on the thread's levels are *busy*: each one's handler is under
//! way, and none can finish before the wait at the top of the stack has
//! (they are below it). A nested pass takes requests off the rings in
//! order, lane by lane, as the loop does, except:
//!
//! - **A request for a busy item** (or one being constructed, or one with
//!   deferred requests) is not run. If its reply goes to an async slot or
//!   nowhere, it is taken off the ring and *deferred*: queued for its item,
//!   and run, in order, as soon as the item's handler returns (`Core::
//!   run_deferred`). If its reply goes into the lane's reply cells, which
//!   are answered in order, it stays at the head of its ring, and the lane
//!   is *stalled* until the wait ends: its later requests wait behind it.
//!   Either way, per caller and per item, requests are run in the order
//!   they were sent.
//! - **A lane whose reply cells are awaited by a request under way** lower
//!   on the stack (`Lane::open`) runs no further request that replies into
//!   them: its reply would overtake the one under way. It stalls at the
//!   next such request; requests that reply elsewhere are still taken.
//!
//! A stalled request that would wait for ever is refused instead, with
//! [`Error::Cycle`]: one whose chain names an item on this thread's levels
//! from its target's level up, or an item one of those levels waits for
//! (the target cannot finish before those levels do, and they wait on the
//! request's own chain). So are calls whose target is on the caller's own
//! chain, before they leave (`nest.rs`).
//!
//! A nested pass adopts new callers (a caller may be born of the wait) but
//! drops no lane, leaves the shutdown to the loop (it notes that the pool
//! closed), and frees no item's queue but the one whose handler returned.
//!
//! # Inline calls
//!
//! A blocking call from a handler to another item of the same worker runs
//! that item's handler at once, on the same stack (a level more), with its
//! hooks and under `catch_unwind` as usual, and no message or slot. A call
//! to a busy item is a cycle (it waits, lower on this stack, on the
//! caller), refused at once.

use super::host::Core;
use super::lane::Lane;
use super::{round_robin, Host};
use crate::chain::{ChainLink, FrameRef, Lease, Node, Seen, Stack, Wait, MAX_CHAIN, MAX_DEPTH};
use crate::doorbell::{CONTROL, LANE_MASK};
use crate::error::Error;
use crate::item::{Message, PoolItem};
use crate::shared::{current_worker, Shared};
use crate::slot::Slab;
use crate::sync::barrier::Barrier;
use crate::sync::Arc;
use crate::wire::{Outcome, Payload, Query, ReplyTo};
use std::any::Any;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};

/// One level of the thread (module docs).
#[derive(Clone, Copy)]
struct Level {
    id: u64,
    /// The frame of the call this handler answers.
    parent: Option<FrameRef>,
    /// Its own frame, once a call it made published it.
    frame: Option<FrameRef>,
    /// Whether it is in its handler proper (not in a hook, which holds the
    /// thread state): only then may it serve while it waits, or call inline.
    in_handler: bool,
}

/// The thread's levels, innermost last: each field a `Cell` per level, so
/// that the worker's path through a request (enter a level, mark its
/// handler proper, leave) writes a few words and copies no `Level`.
pub(super) struct Levels {
    pool: u64,
    name: &'static str,
    ids: [Cell<u64>; MAX_DEPTH],
    parents: [Cell<Option<FrameRef>>; MAX_DEPTH],
    frames: [Cell<Option<FrameRef>>; MAX_DEPTH],
    waits: [Cell<Option<Wait>>; MAX_DEPTH],
    in_handler: [Cell<bool>; MAX_DEPTH],
    depth: Cell<usize>,
    /// This thread's stack of frames.
    lease: Lease,
    /// The innermost wait's mark (0: none), and the last one handed out.
    wait_mark: Cell<u64>,
    marks: Cell<u64>,
}

impl Levels {
    pub(super) fn new(pool: u64, name: &'static str, lease: Lease) -> Self {
        Self {
            pool,
            name,
            ids: std::array::from_fn(|_| Cell::new(0)),
            parents: std::array::from_fn(|_| Cell::new(None)),
            frames: std::array::from_fn(|_| Cell::new(None)),
            waits: std::array::from_fn(|_| Cell::new(None)),
            in_handler: std::array::from_fn(|_| Cell::new(false)),
            depth: Cell::new(0),
            lease,
            wait_mark: Cell::new(0),
            marks: Cell::new(0),
        }
    }

    fn node(&self, id: u64) -> Node {
        Node { pool: self.pool, id, name: self.name }
    }

    /// Enters a level for item `id`, answering the call of frame `parent`.
    /// `None` past the bound (not reached: no pass serves at the bound, and
    /// no call leaves a level at it).
    #[inline]
    pub(super) fn enter(&self, id: u64, parent: Option<FrameRef>) -> Option<LevelGuard<'_>> {
        let d = self.depth.get();
        if d == MAX_DEPTH {
            return None;
        }
        self.ids[d].set(id);
        self.parents[d].set(parent);
        self.frames[d].set(None);
        self.waits[d].set(None);
        self.in_handler[d].set(false);
        self.depth.set(d + 1);
        Some(LevelGuard(self, d))
    }

    /// The innermost level: its index and a copy of it.
    fn top(&self) -> Option<(usize, Level)> {
        let d = self.depth.get().checked_sub(1)?;
        let level = Level {
            id: self.ids[d].get(),
            parent: self.parents[d].get(),
            frame: self.frames[d].get(),
            in_handler: self.in_handler[d].get(),
        };
        Some((d, level))
    }

    /// A mark no wait had before.
    fn fresh_mark(&self) -> u64 {
        let mark = self.marks.get() + 1;
        self.marks.set(mark);
        mark
    }

    /// Whether the innermost level is in its handler proper.
    #[inline]
    fn top_in_handler(&self) -> Option<usize> {
        let d = self.depth.get().checked_sub(1)?;
        self.in_handler[d].get().then_some(d)
    }

    /// Records what the handler of level `d` waits for (`None`: nothing),
    /// in the level and, if published, in its frame.
    fn set_wait(&self, d: usize, wait: Option<Wait>) {
        let same = match (self.waits[d].get(), wait) {
            (None, None) => true,
            (Some(a), Some(b)) => a.target.same(&b.target),
            _ => false,
        };
        if same {
            // The frame says so already (a call's wait, after its departure).
            return;
        }
        self.waits[d].set(wait);
        if self.frames[d].get().is_some() {
            self.lease.stack().set_wait(d, wait);
        }
    }

    /// Runs `f`, user code the worker runs outside any handler (a `Drop`, a
    /// waker, the panic or error handler), as such: while a handler waits
    /// lower on the stack, `f` is not taken for it (it neither serves, nor
    /// calls inline, nor carries its chain, and its calls use lanes of
    /// their own: `lane_level`).
    #[inline]
    pub(super) fn outside<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(d) = self.top_in_handler() else { return f() };
        self.in_handler[d].set(false);
        let _back = Restore(self, d);
        f()
    }

    /// The current handler's frame, published on first use.
    fn frame(&self, d: usize, level: Level) -> FrameRef {
        if let Some(f) = level.frame {
            return f;
        }
        let f = self.lease.stack().publish(d, &self.node(level.id), level.parent);
        self.frames[d].set(Some(f));
        f
    }

    /// The chain of the current handler, outermost first, for an error.
    fn chain(&self, level: &Level) -> Vec<ChainLink> {
        let mut links = level.parent.map(FrameRef::links).unwrap_or_default();
        links.reverse();
        links.push(self.node(level.id).link());
        links
    }
}

/// Marks level `.1` as in its handler again when dropped (`Levels::outside`,
/// unwinding included).
struct Restore<'a>(&'a Levels, usize);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.0.in_handler[self.1].set(true);
    }
}

/// A level entered; left when dropped (its frame, if published, goes).
pub(super) struct LevelGuard<'a>(&'a Levels, usize);

impl LevelGuard<'_> {
    /// Marks the level as in its handler proper (or not, in a hook).
    #[inline]
    pub(super) fn in_handler(&self, yes: bool) {
        self.0.in_handler[self.1].set(yes);
    }
}

impl Drop for LevelGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let Self(levels, d) = *self;
        if let Some(f) = levels.frames[d].get() {
            if levels.waits[d].get().is_some() {
                levels.lease.stack().set_wait(d, None);
            }
            levels.lease.stack().pop(d, f);
        }
        levels.depth.set(d);
    }
}

/// A node of a deadlock search: an item, the node it was reached from,
/// and the stack of the worker that hosts it.
type SearchNode = (Node, Option<usize>, Option<&'static Stack>);

/// Adds `node`, reached from node `from`, to a deadlock search (unless it
/// is there, or the search is as long as a chain may be); returns its index.
fn visit(nodes: &mut Vec<SearchNode>, node: Node, from: usize, host: Option<&'static Stack>) -> usize {
    if let Some(k) = nodes.iter().position(|(n, ..)| n.same(&node)) {
        return k;
    }
    if nodes.len() >= MAX_CHAIN {
        return from;
    }
    nodes.push((node, Some(from), host));
    nodes.len() - 1
}

/// What heads a ring, for a nested pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Head {
    Message,
    Contains,
    Ids,
}

/// What a deadlock search found.
enum Search {
    /// No cycle through the request: it waits.
    Clear,
    /// A cycle, whose records changed while they were read: look again.
    Retry,
    /// A cycle: refuse the request.
    Cycle(Error),
}

/// A request taken off its ring but not run yet: its item was busy.
pub(super) struct Deferred<P: PoolItem> {
    msg: Message<P>,
    to: ReplyTo<Outcome<P>>,
    /// The slab its slot (if any) belongs to, kept alive while it waits.
    slots: Arc<Slab<Outcome<P>>>,
    parent: Option<FrameRef>,
    /// The lane it came on.
    from: u32,
}

/// The deferred requests, by item, and the items whose queue is being run.
pub(super) struct Deferrals<P: PoolItem> {
    queues: HashMap<u64, VecDeque<Deferred<P>>, foldhash::fast::RandomState>,
    running: Vec<u64>,
}

impl<P: PoolItem> Default for Deferrals<P> {
    fn default() -> Self {
        Self { queues: HashMap::default(), running: Vec::new() }
    }
}

impl<P: PoolItem> Deferrals<P> {
    pub(super) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

impl<P: PoolItem> Core<P> {
    /// Whether a request for `id` must wait: its item is busy (its handler
    /// is under way, lower on this thread), being constructed, or has
    /// requests deferred before it.
    fn blocked(&self, id: u64) -> bool {
        self.busy(id) || self.deferred.borrow().queues.contains_key(&id)
    }

    /// Whether a request from lane `lane` (for item `id`, or any) is
    /// deferred.
    fn deferred_from(&self, lane: u32, id: Option<u64>) -> bool {
        let d = self.deferred.borrow();
        let mut queues = d.queues.iter().filter(|(i, _)| id.is_none_or(|id| **i == id));
        queues.any(|(_, q)| q.iter().any(|e| e.from == lane))
    }

    fn defer(&self, id: u64, d: Deferred<P>) {
        self.deferred.borrow_mut().queues.entry(id).or_default().push_back(d);
    }

    /// Runs the deferred requests of every item that is free again (its
    /// handler returned), each item's in order, those deferred meanwhile
    /// too; not those of an item whose queue an outer call of this runs.
    /// (Only busy items get deferred requests, so at most
    /// [`MAX_DEPTH`] queues exist, and this recurses at most that deep.)
    pub(super) fn run_ready_deferred(&self, counters: &crate::stats::WorkerCounters) {
        loop {
            let ready = {
                let d = self.deferred.borrow();
                d.queues.keys().copied().find(|id| !d.running.contains(id) && !self.busy(*id))
            };
            let Some(id) = ready else { break };
            self.run_deferred(id, counters);
        }
    }

    /// Whether item `id`'s handler or constructor is under way.
    fn busy(&self, id: u64) -> bool {
        self.items.borrow().get(&id).is_some_and(|c| c.try_borrow_mut().is_err())
            || self.constructing.borrow().contains(&id)
    }

    /// Runs item `id`'s deferred requests, in order (those deferred
    /// meanwhile too).
    fn run_deferred(&self, id: u64, counters: &crate::stats::WorkerCounters) {
        {
            let mut d = self.deferred.borrow_mut();
            if !d.queues.contains_key(&id) || d.running.contains(&id) {
                return;
            }
            d.running.push(id);
        }
        loop {
            let next = {
                let mut d = self.deferred.borrow_mut();
                let next = d.queues.get_mut(&id).and_then(VecDeque::pop_front);
                if d.queues.get(&id).is_some_and(VecDeque::is_empty) {
                    d.queues.remove(&id);
                }
                if next.is_none() {
                    d.running.retain(|&r| r != id);
                }
                next
            };
            let Some(Deferred { msg, to, slots, parent, .. }) = next else { break };
            self.process_to(msg, to, &slots, parent, counters);
        }
    }
}

impl<P: PoolItem> Host<P> {
    /// Wakes the async callers waiting for room in the rings that passes
    /// lower on the stack took cells from: such a pass wakes its lane's
    /// waiters only once it ends, after the handler now waiting has
    /// returned, and the request a waiter would send may be what this wait
    /// needs. A lane with no cell taken since its last look has nothing to
    /// announce (`room.rs`). (Lanes are fetched one at a time: the wakers
    /// are runtime code, which may come back to this worker.)
    fn wake_rooms(&self) {
        for b in crate::doorbell::set_bits(self.lanes.occupied()) {
            let mut i = 0;
            while let Some(lane) = self.lanes.get(b, i) {
                if lane.unwoken.get() {
                    self.wake_room_after_drain(&lane);
                }
                i += 1;
            }
        }
    }

    /// A pass made while a handler waits (module docs): returns whether it
    /// took any request.
    fn serve_nested(&self) -> bool {
        let bits = self.doorbell().take();
        if bits & CONTROL != 0 {
            self.accept();
            // The loop looks at the pool's state once the waits are over.
            self.control_seen.set(true);
        }
        let mut hints = (bits | self.carry.take()) & LANE_MASK;
        if self.pool.barrier.lazy_announcements() {
            hints |= self.lanes.with_work();
        }
        let mark = self.core.levels.wait_mark.get();
        let start = self.next_bit.get();
        let mut progressed = false;
        for b in round_robin(hints, start) {
            let mut i = 0;
            while let Some(lane) = self.lanes.get(b, i) {
                if lane.stalled.get() != mark {
                    progressed |= self.serve_lane_nested(&lane, self.pool.config.max_batch, mark) > 0;
                }
                if !lane.is_empty() {
                    self.add_carry(1 << b);
                }
                i += 1;
            }
        }
        progressed
    }

    /// Takes up to `max` requests off `lane`, as the module docs say.
    fn serve_lane_nested(&self, lane: &Lane<P>, max: usize, mark: u64) -> usize {
        let counters = self.counters();
        let barrier = &self.pool.barrier;
        // Whatever stalled this lane in an outer wait may be gone from its
        // head by the end of this pass: it is looked at again there.
        lane.stalled.set(0);
        let mut n = 0;
        while n < max {
            // Entries that only say something of the next one are applied.
            let Some((id, head)) = lane.head() else { break };
            let cell = lane.next_to.get().is_cell();
            // A question waits for what this caller sent before it and is
            // deferred (its item busy); nothing else (a busy item exists).
            let asked_early = match head {
                Head::Contains => self.core.deferred_from(lane.caller.lane, Some(id)),
                Head::Ids => self.core.deferred_from(lane.caller.lane, None),
                Head::Message => false,
            };
            if (cell && lane.open.get()) || asked_early {
                lane.stalled.set(mark);
                break;
            }
            if head == Head::Message && self.core.blocked(id) {
                if !cell {
                    let Some(Payload::Message(msg)) = lane.pop() else { break };
                    let to = lane.next_to.replace(ReplyTo::CELL);
                    let parent = lane.next_chain.take();
                    let from = lane.caller.lane;
                    self.core.defer(id, Deferred { msg, to, slots: lane.slots.clone(), parent, from });
                    n += 1;
                    continue;
                }
                match self.deadlock(id, lane.next_chain.get()) {
                    Search::Retry => break,
                    Search::Clear => {
                        lane.stalled.set(mark);
                        break;
                    }
                    Search::Cycle(error) => {
                        let request = lane.pop();
                        lane.next_chain.set(None);
                        // The answer first: the request's `Drop` is user code,
                        // which may serve this lane again.
                        self.core.refuse(error, lane, barrier);
                        self.core.drop_user(request, Some(id), "dropping a request refused as a cycle");
                        n += 1;
                        continue;
                    }
                }
            }
            let Some(payload) = lane.pop() else { break };
            self.core.process(payload, lane, counters, barrier);
            n += 1;
        }
        // The cells taken are free: wake async callers waiting for room.
        if n > 0 {
            self.wake_room_after_drain(lane);
        }
        n
    }

    /// Whether a request for busy item `id`, sent on behalf of `chain`,
    /// would wait for ever: `Error::Cycle`, naming the cycle, if so.
    ///
    /// Follows what the busy item waits for, from thread to thread: an
    /// item busy on a worker waits for everything the frames at and above
    /// its own wait for (it resumes only after them). A cycle is found when
    /// an item on the request's own chain is reached (the chain waits for
    /// the request). The records it went through are read again, and the
    /// cycle reported only if none changed (`chain.rs`, "Waits").
    fn deadlock(&self, id: u64, chain: Option<FrameRef>) -> Search {
        let Some(chain) = chain else { return Search::Clear };
        let levels = &self.core.levels;
        // The request's chain, innermost first.
        let mine: Vec<Node> = chain.nodes().collect();
        // Breadth first from the busy item: each node, the node it was
        // reached from, and the host to look for it on.
        let start = levels.node(id);
        let mut nodes: Vec<SearchNode> = vec![(start, None, Some(levels.lease.stack()))];
        let mut read: Vec<Seen> = Vec::new();
        let mut i = 0;
        let found = loop {
            let Some(&(node, _, host)) = nodes.get(i) else { break None };
            if i > 0 {
                if let Some(k) = mine.iter().position(|m| m.same(&node)) {
                    break Some((i, k));
                }
            }
            if let Some(host) = host {
                let frames: Vec<Seen> = host.active().collect();
                if let Some(at) = frames.iter().position(|f| f.node.same(&node)) {
                    // The node resumes only after every handler above it on
                    // its thread has returned, and each of those only after
                    // what it waits for.
                    for f in frames.into_iter().skip(at) {
                        let mut from = i;
                        if !f.node.same(&node) {
                            from = visit(&mut nodes, f.node, i, Some(host));
                        }
                        if let Some(w) = f.waits {
                            visit(&mut nodes, w.target, from, w.host);
                        }
                        read.push(f);
                    }
                }
            }
            i += 1;
        };
        let Some((i, k)) = found else { return Search::Clear };
        // All at once, or not at all: a record that changed meanwhile may
        // have been of a wait that was over; look again on the next pass
        // (a cycle, once there, stays).
        if !read.iter().all(Seen::unchanged) {
            return Search::Retry;
        }
        // The chain from the node found down to the request's sender,
        // outermost first, then the path from the busy item to that node.
        let mut links: Vec<ChainLink> = mine[..=k].iter().rev().map(Node::link).collect();
        let mut path = Vec::new();
        let mut at = Some(i);
        while let Some(j) = at {
            let (node, from, _) = nodes[j];
            // Names come from the frames read (a target's own record has
            // none), or from the request's chain.
            let named = read.iter().map(|s| s.node).chain(mine.iter().copied()).find(|n| n.same(&node));
            path.push(named.unwrap_or(node).link());
            at = from;
        }
        path.reverse();
        links.extend(path);
        Search::Cycle(Error::Cycle { id, chain: links })
    }

    /// Whether a lane has requests a nested pass could take now.
    fn has_unstalled_work(&self) -> bool {
        let mark = self.core.levels.wait_mark.get();
        self.lanes.any(|l| l.stalled.get() != mark && !l.is_empty())
    }
}

impl<P: PoolItem> crate::nest::Host for Host<P> {
    fn pool_id(&self) -> u64 {
        self.pool.id
    }

    fn departing(&self, wait: Wait, record: bool) -> Result<Option<FrameRef>, Error> {
        let target = &wait.target;
        let levels = &self.core.levels;
        // Only a handler's calls carry its chain: code the worker runs
        // between handlers, or in a hook, is not on it.
        let Some((d, level)) = levels.top().filter(|(_, l)| l.in_handler) else { return Ok(None) };
        let me = levels.node(level.id);
        let on_chain = match level.parent {
            _ if me.same(target) => Ok(true),
            Some(p) => p.contains(target),
            None => Ok(false),
        };
        match on_chain {
            Ok(true) => {
                let mut chain = levels.chain(&level);
                chain.push(target.link());
                return Err(Error::Cycle { id: target.id, chain });
            }
            Err(hops) => return Err(Error::TooDeep { id: target.id, depth: hops }),
            Ok(false) => {}
        }
        if d + 1 >= MAX_DEPTH {
            return Err(Error::TooDeep { id: target.id, depth: d + 1 });
        }
        // The frame first, then what it waits for, both before the request
        // leaves: a search that meets the request finds them (`chain.rs`).
        let frame = levels.frame(d, level);
        if record {
            levels.set_wait(d, Some(wait));
        }
        Ok(Some(frame))
    }

    fn arrived(&self) {
        let levels = &self.core.levels;
        if let Some((d, _)) = levels.top().filter(|(_, l)| l.in_handler) {
            levels.set_wait(d, None);
        }
    }

    fn may_serve(&self) -> bool {
        // At the bound no pass may start a handler a level deeper.
        self.core.levels.top_in_handler().is_some_and(|d| d + 1 < MAX_DEPTH)
    }

    fn in_handler(&self) -> bool {
        self.core.levels.top_in_handler().is_some()
    }

    fn lane_level(&self) -> usize {
        // Code run between handlers, or in a hook, above level `d` uses the
        // lanes of level `d + 1`: the handler of level `d` may have a call of
        // its own in flight on those of level `d`.
        match self.core.levels.top() {
            Some((d, l)) if l.in_handler => d + 1,
            Some((d, _)) => d + 2,
            None => 0,
        }
    }

    fn begin_wait(&self, wait: Option<Wait>) -> u64 {
        self.wake_rooms();
        let levels = &self.core.levels;
        let mark = levels.fresh_mark();
        if let (Some(wait), Some((d, level))) = (wait, levels.top()) {
            // Published already, unless the call left before (a batch's).
            levels.frame(d, level);
            levels.set_wait(d, Some(wait));
        }
        levels.wait_mark.replace(mark)
    }

    fn end_wait(&self, previous: u64, waited: bool) {
        let levels = &self.core.levels;
        levels.wait_mark.set(previous);
        if let (true, Some((d, _))) = (waited, levels.top()) {
            levels.set_wait(d, None);
        }
    }

    fn serve(&self) -> bool {
        self.serve_nested()
    }

    fn has_work(&self) -> bool {
        self.has_unstalled_work()
    }

    #[cfg(not(shardpool_loom))]
    fn stalled(&self) -> bool {
        let mark = self.core.levels.wait_mark.get();
        self.lanes.any(|l| l.stalled.get() == mark && !l.is_empty())
    }

    #[cfg(not(shardpool_loom))]
    fn restall(&self) {
        let levels = &self.core.levels;
        levels.wait_mark.set(levels.fresh_mark());
    }

    fn pending(&self) -> bool {
        self.doorbell().pending()
    }

    fn try_sleep(&self) -> bool {
        self.doorbell().try_sleep()
    }

    fn cancel_sleep(&self) {
        self.doorbell().cancel_sleep();
    }

    fn asleep(&self) -> bool {
        self.doorbell().is_sleeping()
    }

    fn barrier(&self) -> Barrier {
        self.pool.barrier
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Whether the calling thread is a worker of pool `pool` in a handler that
/// may call one of its own items inline.
pub(crate) fn may_inline(pool: u64) -> bool {
    crate::nest::with_host(|h| h.pool_id() == pool && h.in_handler()).unwrap_or(false)
}

/// Runs `msg`, for an item of the calling worker of `pool`, inline (module
/// docs). Only where [`may_inline`] said so.
pub(crate) fn inline<P: PoolItem>(pool: &Shared<P>, msg: Message<P>) -> Outcome<P> {
    let run = |h: &dyn crate::nest::Host| {
        let host = h.as_any().downcast_ref::<Host<P>>()?;
        debug_assert_eq!(current_worker(pool.id), Some(host.core.index));
        Some(host.run_inline(msg))
    };
    match crate::nest::with_host(run).flatten() {
        Some(outcome) => outcome,
        // Not reached (`may_inline` said this thread is such a worker).
        None => Err(Box::new(Error::SameWorker { id: 0, worker: current_worker(pool.id).unwrap_or(0) })),
    }
}

impl<P: PoolItem> Host<P> {
    fn run_inline(&self, msg: Message<P>) -> Outcome<P> {
        let id = msg.id();
        let levels = &self.core.levels;
        let Some((d, level)) = levels.top() else {
            return Err(Box::new(Error::SameWorker { id, worker: self.core.index }));
        };
        if self.pool.gate.is_closed() {
            self.core.drop_user(msg, Some(id), "dropping a request refused at shutdown");
            return Err(Box::new(Error::Shutdown));
        }
        let counters = self.counters();
        if !self.core.busy(id) {
            // Owed requests deferred while it was busy (its own inline call
            // returned, its reply no lane's): they were sent first.
            self.core.run_deferred(id, counters);
        }
        if self.core.busy(id) {
            // Busy lower on this very stack: it waits on us.
            self.core.drop_user(msg, Some(id), "dropping a request refused as a cycle");
            let mut chain = levels.chain(&level);
            chain.push(levels.node(id).link());
            return Err(Box::new(Error::Cycle { id, chain }));
        }
        if d + 1 >= MAX_DEPTH {
            self.core.drop_user(msg, Some(id), "dropping a request nested too deep");
            return Err(Box::new(Error::TooDeep { id, depth: d + 1 }));
        }
        let frame = levels.frame(d, level);
        let result = self.core.handle(msg, Some(frame), counters);
        crate::sync::atomic::bump(&counters.requests, 1);
        result.map_err(Box::new)
    }
}

impl<P: PoolItem> Lane<P> {
    /// The head of the ring, for a nested pass: its item's id and what it
    /// is, after applying (and taking off) the entries that only say
    /// something of it. `None` if the ring is empty.
    fn head(&self) -> Option<(u64, Head)> {
        loop {
            match self.peek(|p| match p {
                Payload::Message(m) => Some((m.id(), Head::Message)),
                Payload::Query(Query::Contains(id)) => Some((*id, Head::Contains)),
                Payload::Query(Query::Ids(_)) => Some((0, Head::Ids)),
                Payload::Redirect(_) | Payload::Chain(_) => None,
            })? {
                Some(head) => return Some(head),
                None => match self.pop() {
                    Some(Payload::Redirect(to)) => self.next_to.set(to),
                    Some(Payload::Chain(f)) => self.next_chain.set(Some(f)),
                    _ => return None,
                },
            }
        }
    }
}
