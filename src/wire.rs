//! The types both sides of the transport use: what comes back for a request
//! (an [`Outcome`]), how a caller's rings reach a worker (a
//! [`Registration`]), the part of a caller its workers see
//! ([`CallerShared`]), and the lane ids that name callers in the doorbells
//! ([`LaneIds`]). Requests travel as [`Envelope`]s: a
//! [`Message`](crate::Message) and where its reply goes.

use crate::chain::FrameRef;
use crate::error::Error;
use crate::gate::Presence;
use crate::item::{Message, PoolItem, Reply};
use crate::reply::{ReplyWriter, Sleeper};
use crate::slot::{Slab, SlotRef};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::ring::Consumer;
use crate::sync::{Arc, Mutex};

/// What a worker sends back for a request: the reply, or why there is none.
/// The error is boxed: errors are the rare case, and unboxed they would
/// more than double the size of every reply on the ring (an `Error` is 40
/// bytes; an [`Answer`] of a `u64` response 16, and so is the whole
/// outcome).
pub(crate) type Outcome<P> = Result<Answer<P>, Box<Error>>;

/// A [`Reply`] as it travels, with a removal's answer told by its variant
/// rather than by a `bool` beside the tag: every variant of ours carries a
/// word (a response type with fields below a word's alignment may still be
/// copied in pieces; that is the item's layout, not ours). With the
/// `bool`, at byte 1, each move of an outcome copied bytes 1 to 7 in two
/// overlapping 4-byte pieces, and the caller, taking a reply off its lane
/// and handing it on, reloaded them split the other way, which stalls the
/// load until the stores drain (a failed store-to-load forward), twice per
/// reply. Turned into a [`Reply`] by whoever decodes it.
// NB: `perf/ab_medians.sh` on `batch`, 6 rounds, fast phase: 1024
// requests, 1 worker, 54.9 -> 45.8 µs. (The 2-worker figure is bimodal
// between processes on the 2-core VM, 62 or 81 µs for one binary, so it
// is not quoted.)
pub(crate) enum Answer<P: PoolItem> {
    /// [`Reply::Response`].
    Response(P::Response),
    /// [`Reply::Added`].
    Added(u64),
    /// [`Reply::Removed`] of an item that existed.
    Removed(u64),
    /// [`Reply::Removed`] of an id with no item.
    Absent(u64),
}

impl<P: PoolItem> From<Answer<P>> for Reply<P> {
    #[inline]
    fn from(answer: Answer<P>) -> Self {
        match answer {
            Answer::Response(r) => Reply::Response(r),
            Answer::Added(id) => Reply::Added { id },
            Answer::Removed(id) => Reply::Removed { id, existed: true },
            Answer::Absent(id) => Reply::Removed { id, existed: false },
        }
    }
}

/// A request on its way: the message (or a question for the worker
/// itself), and where its reply goes. In the ring a request whose reply goes
/// into the lane's next reply cell (every blocking call) is its payload
/// alone; any other is preceded by a [`Payload::Redirect`] naming where its
/// reply goes, both published at once (`CallerHandle::push`). So the ring's
/// element, and the blocking paths' cost, is the size of a message: no word
/// is spent on the destination of every request for the few that need one.
pub(crate) struct Envelope<P: PoolItem> {
    pub(crate) payload: Payload<P>,
    pub(crate) to: ReplyTo<Outcome<P>>,
    /// The frame of the handler this request is sent from, if it is sent
    /// from one (`chain.rs`): travels before it in the ring, as a
    /// [`Payload::Chain`] entry.
    pub(crate) chain: Option<FrameRef>,
}

impl<P: PoolItem> Envelope<P> {
    /// The user's message, to hand back when it is refused. Only for an
    /// envelope made by [`new`](Self::new) (the question-asking path,
    /// `CallerHandle::query`, never hands one back).
    pub(crate) fn into_message(self) -> Message<P> {
        match self.payload {
            Payload::Message(m) => m,
            Payload::Query(_) | Payload::Redirect(_) | Payload::Chain(_) => {
                unreachable!("only a message is handed back")
            }
        }
    }
}

/// What a request carries, and the element of the request ring.
pub(crate) enum Payload<P: PoolItem> {
    /// A message for an item.
    Message(Message<P>),
    /// A question about the worker's items, answered into a reply cell by
    /// the caller's blocking wait (`CallerHandle::query`).
    Query(Query),
    /// In the ring only: the reply to the next entry goes here rather than
    /// into the lane's next reply cell.
    Redirect(ReplyTo<Outcome<P>>),
    /// In the ring only: the next entry is sent from the handler whose
    /// frame this is (`chain.rs`).
    Chain(FrameRef),
}

impl<P: PoolItem> Payload<P> {
    /// The item the request is about (0 for a question about all of them).
    pub(crate) fn id(&self) -> u64 {
        match self {
            Payload::Message(m) => m.id(),
            Payload::Query(Query::Contains(id)) => *id,
            Payload::Query(Query::Ids(_)) | Payload::Redirect(_) | Payload::Chain(_) => 0,
        }
    }
}

/// A question about a worker's items.
pub(crate) enum Query {
    /// Whether item `id` lives here: answered `Answer::Removed(id)` if it
    /// does, `Answer::Absent(id)` if not (nothing is removed).
    Contains(u64),
    /// Append the ids of the items that live here to the caller's vector,
    /// then answer `Answer::Added(0)`.
    Ids(IdSink),
}

/// The address of a caller's `Vec<u64>`, which the caller does not touch
/// until the answer to the question is in: it waits for it, with no
/// deadline, before it looks at or drops the vector.
pub(crate) struct IdSink(pub(crate) *mut Vec<u64>);

// SAFETY: the vector is written by the worker only, while its caller waits
// for the reply that the worker publishes after the writes (Release), and
// read by the caller only after it took that reply (Acquire): never by both
// at once, and `Vec<u64>` is `Send`.
unsafe impl Send for IdSink {}

/// Where a reply goes, in one word: the lane's next reply cell (the
/// blocking paths, `reply.rs`), nowhere (a request sent without waiting for
/// its reply), or a slot of the caller's slab (an async request,
/// `slot.rs`).
pub(crate) struct ReplyTo<T> {
    /// `CELL`, `FORGET`, or a slot's address (aligned, so neither).
    word: usize,
    _slot: std::marker::PhantomData<SlotRef<T>>,
}

const CELL: usize = 0;
const FORGET: usize = 1;

impl<T> Clone for ReplyTo<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ReplyTo<T> {}

/// A reply's destination, unpacked.
pub(crate) enum Destination<T> {
    Cell,
    Forget,
    Slot(SlotRef<T>),
}

impl<T> ReplyTo<T> {
    pub(crate) const CELL: Self = Self { word: CELL, _slot: std::marker::PhantomData };
    pub(crate) const FORGET: Self = Self { word: FORGET, _slot: std::marker::PhantomData };

    pub(crate) fn slot(slot: SlotRef<T>) -> Self {
        const { assert!(std::mem::align_of::<crate::slot::Slot<()>>() > FORGET) };
        Self { word: slot.addr(), _slot: std::marker::PhantomData }
    }

    /// Whether the reply goes into the lane's next reply cell.
    pub(crate) fn is_cell(&self) -> bool {
        self.word == CELL
    }

    /// Where the reply goes.
    ///
    /// # Safety
    ///
    /// For a slot: the slab it came from is still alive (the worker's lane
    /// holds it while the request is in its ring).
    #[inline]
    pub(crate) unsafe fn destination(&self) -> Destination<T> {
        match self.word {
            CELL => Destination::Cell,
            FORGET => Destination::Forget,
            // SAFETY: made by `slot` from a live slot's address; the
            // caller's promise keeps it alive.
            addr => Destination::Slot(unsafe { SlotRef::from_addr(addr) }),
        }
    }
}

/// The worker's ends of a new caller's two rings.
pub(crate) struct Registration<P: PoolItem> {
    pub(crate) caller: Arc<CallerShared>,
    /// Requests from the caller.
    pub(crate) requests: Consumer<Payload<P>>,
    /// Outcomes to the caller, in request order (`reply.rs`).
    pub(crate) replies: ReplyWriter<Outcome<P>>,
    /// The caller's slab of async reply slots (`slot.rs`), kept alive while
    /// requests naming its slots may be in the ring.
    pub(crate) slots: Arc<Slab<Outcome<P>>>,
    /// Async callers waiting for room in the ring (`room.rs`).
    pub(crate) room: Arc<crate::room::Room>,
}

/// Hands out lane ids, reusing those of retired callers so hint bits stay
/// dense.
pub(crate) struct LaneIds {
    free: Mutex<(Vec<u32>, u32)>,
    live: AtomicUsize,
}

impl LaneIds {
    pub(crate) fn new() -> Self {
        Self { free: Mutex::new((Vec::new(), 0)), live: AtomicUsize::new(0) }
    }

    pub(crate) fn acquire(&self) -> u32 {
        self.live.fetch_add(1, Ordering::Relaxed);
        let mut g = self.free.lock().unwrap_or_else(|e| e.into_inner());
        match g.0.pop() {
            Some(id) => id,
            None => {
                g.1 += 1;
                g.1 - 1
            }
        }
    }

    fn release(&self, id: u32) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).0.push(id);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Caller threads currently registered (not yet fully reclaimed).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// The part of a caller that its workers see.
pub(crate) struct CallerShared {
    pub(crate) lane: u32,
    /// Whether the caller sleeps waiting for a reply, and its thread
    /// (`reply.rs`).
    pub(crate) sleeper: Sleeper,
    /// Whether the caller is inside the shutdown gate (`src/gate/`).
    pub(crate) presence: Presence,
    /// Set when the caller thread has gone; its lanes are dropped once empty.
    pub(crate) retired: AtomicBool,
    pub(crate) lane_ids: Arc<LaneIds>,
}

impl CallerShared {
    pub(crate) fn new(lane_ids: Arc<LaneIds>, sleeper: Sleeper) -> Self {
        Self {
            lane: lane_ids.acquire(),
            sleeper,
            presence: Presence::new(),
            retired: AtomicBool::new(false),
            lane_ids,
        }
    }
}

impl Drop for CallerShared {
    fn drop(&mut self) {
        self.lane_ids.release(self.lane);
    }
}

#[cfg(all(test, not(shardpool_loom)))]
mod tests {
    use super::*;
    use crate::testing::Sleepy;

    /// A request in the ring costs its message: the questions and the
    /// redirections add no tag of their own.
    #[test]
    fn a_ring_element_is_the_size_of_a_message() {
        let message = std::mem::size_of::<Message<Sleepy>>();
        assert_eq!(message, 24);
        assert_eq!(std::mem::size_of::<Payload<Sleepy>>(), message);
    }
}
