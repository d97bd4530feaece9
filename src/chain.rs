//! Call chains: which item's handler waits on which call, so that a call
//! whose target already waits on it fails at once with
//! [`Error::Cycle`](crate::Error::Cycle) instead of waiting for ever.
//!
//! # Frames
//!
//! A handler that makes a nested call publishes a *frame*: its pool, its
//! item and the frame of the call it is answering (its parent), and sends
//! a [`FrameRef`] to it with the request. The worker that takes the request
//! keeps that reference as the parent of the frame its handler may publish
//! in turn. So a chain is a list of frames linked across threads, and a
//! caller asks whether its target is on it by walking up from its own
//! frame, at no allocation per request.
//!
//! A frame lives in a slot of a per-thread [`Stack`], one slot per level of
//! nesting on that thread (`worker/nest.rs`). A request may outlive the
//! frame that sent it (its caller timed out, or forgot a batch), so a
//! [`FrameRef`] names a slot *and a generation*: the slot's generation
//! changes whenever the frame in it is replaced or popped, and a reader
//! that finds another generation treats the chain as ending there. Stacks
//! are never freed (a thread's goes back to a free list when it exits, for
//! the next thread), so a stale reference always points at live memory:
//! at most one stack per thread alive at once is ever allocated.
//!
//! # The protocol of a slot (a sequence lock)
//!
//! ```text
//!   owner, publishing a frame            reader, following a FrameRef (g)
//!   W1 gen = g0 + 1 (Relaxed)            R1 load gen (Acquire): != g? stale
//!   W2 fence(Release)                    R2 load the fields (Relaxed)
//!   W3 store the fields (Relaxed)        R3 fence(Acquire)
//!   W4 gen = g0 + 2 = g (Release)        R4 load gen (Relaxed): != g? stale
//!   owner, popping: gen = g + 1 (Release)
//! ```
//!
//! Only the owning thread writes a slot. A reader that passes R1 has
//! synchronized with W4 (Acquire on the value W4 stored), so it sees the
//! fields of that publication or later ones. If any field it read at R2 was
//! written by a later publication (W3'), that publication's W1' (a store
//! of a generation other than g) precedes its W2' fence, and the reader's
//! R3 fence follows the load that saw W3': the fences synchronize, so R4
//! reads W1' or later, never g again (generations only grow), and the read
//! is discarded. So a reader that passes R4 read exactly the fields stored
//! with generation g. Every field is an atomic: a torn or stale read is a
//! discarded value, never a data race. A pop (another generation) makes
//! every reference to the frame stale, so a chain never names a handler
//! that has returned. Generations go 0, then 1 and 2 for a publication,
//! 3 for its pop, 4 and 5 for the next, and so on: a frame is in use when
//! its generation is 2 modulo 3.
//!
//! # Waits
//!
//! A frame also records what its handler waits for, the item and the stack
//! of the worker thread that hosts it (`Stack::set_wait`), under a second
//! sequence lock: a worker that finds a request stalled behind a busy item
//! follows these records from thread to thread to find whether the item
//! waits, at any remove, on the request's own chain (`worker/nest.rs`).
//! Records read one at a time may be of different moments; the search
//! reads every record of a cycle it found a second time, and reports it
//! only if none changed in between: then all of them held at once, at the
//! moment the first reading ended and the second began, and a cycle of
//! waits, once there, stays.

use crate::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

/// Most levels of nesting on one thread: handlers running on a worker at
/// once, each one waiting for a nested call (while the worker serves other
/// requests), or called inline by the one below it. A nested call made by
/// a handler at this depth fails with [`Error::TooDeep`](crate::Error::TooDeep).
pub(crate) const MAX_DEPTH: usize = if cfg!(shardpool_loom) { 3 } else { 16 };

/// Most frames followed up a chain (across threads); a longer chain fails
/// with [`Error::TooDeep`](crate::Error::TooDeep) too.
pub(crate) const MAX_CHAIN: usize = 64;

/// One link of a call chain, as reported by [`Error::Cycle`](crate::Error::Cycle).
///
/// ```
/// use shardpool::{pool_item, Error, ThreadPool};
/// use std::sync::{Arc, OnceLock, Weak};
///
/// struct Echo(Arc<OnceLock<Weak<ThreadPool<Echo>>>>);
///
/// #[pool_item]
/// impl Echo {
///     fn new(_id: u64, pool: Arc<OnceLock<Weak<ThreadPool<Echo>>>>) -> Self {
///         Echo(pool)
///     }
///
///     /// Calls the first item of `path`, asking it to go on with the rest.
///     #[messaging(RelayRequest, RelayResponse)]
///     fn relay(&self, path: Vec<u64>) -> Result<(), Error> {
///         let pool = self.0.get().and_then(Weak::upgrade).expect("the pool");
///         match path.split_first() {
///             Some((&next, rest)) => pool.send_and_receive_once(RelayRequest(next, rest.to_vec()))?.result,
///             None => Ok(()),
///         }
///     }
/// }
///
/// let pool = Arc::new(ThreadPool::<Echo>::new(2)?);
/// let cell = Arc::new(OnceLock::new());
/// cell.set(Arc::downgrade(&pool)).unwrap();
/// for id in 0..2 {
///     pool.send_and_receive_once(shardpool::AddRequest::new(id, cell.clone()))?;
/// }
/// // 0 calls 1, which calls 0: 0 waits on that very call.
/// match pool.send_and_receive_once(RelayRequest(0, vec![1, 0]))?.result {
///     Err(Error::Cycle { id: 0, chain }) => {
///         let ids: Vec<u64> = chain.iter().map(|l| l.id).collect();
///         assert_eq!(ids, [0, 1, 0]);
///         assert_eq!(chain[0].to_string(), "Echo#0");
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainLink {
    /// The item's type (its pool's [`PoolItem`](crate::PoolItem)), as
    /// `std::any::type_name` spells it.
    pub pool: &'static str,
    /// The item's id.
    pub id: u64,
}

impl std::fmt::Display for ChainLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = self.pool.rsplit("::").next().unwrap_or(self.pool);
        write!(f, "{short}#{}", self.id)
    }
}

/// What identifies an item across pools: its pool's id, its own id, and
/// its type's name (for errors).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub(crate) pool: u64,
    pub(crate) id: u64,
    pub(crate) name: &'static str,
}

impl Node {
    pub(crate) fn same(&self, other: &Node) -> bool {
        self.pool == other.pool && self.id == other.id
    }

    pub(crate) fn link(&self) -> ChainLink {
        ChainLink { pool: self.name, id: self.id }
    }
}

/// One slot of a thread's stack of frames.
struct Frame {
    gen: AtomicU64,
    pool: AtomicU64,
    id: AtomicU64,
    name_ptr: AtomicUsize,
    name_len: AtomicUsize,
    /// The parent frame's address (0: none) and generation.
    parent: AtomicUsize,
    parent_gen: AtomicU64,
    /// What the frame's handler waits for (`Wait`), under a sequence lock
    /// of its own (`wait_gen`, written as `gen` is), so that a frame keeps
    /// its generation (and the references to it stay good) while its
    /// handler makes one call after another.
    wait_gen: AtomicU64,
    target_pool: AtomicU64,
    target_id: AtomicU64,
    /// The stack of the worker that hosts the target (0: not known).
    target_host: AtomicUsize,
}

impl Frame {
    fn new() -> Self {
        Self {
            gen: AtomicU64::new(0),
            pool: AtomicU64::new(0),
            id: AtomicU64::new(0),
            name_ptr: AtomicUsize::new(0),
            name_len: AtomicUsize::new(0),
            parent: AtomicUsize::new(0),
            parent_gen: AtomicU64::new(0),
            wait_gen: AtomicU64::new(0),
            target_pool: AtomicU64::new(0),
            target_id: AtomicU64::new(0),
            target_host: AtomicUsize::new(0),
        }
    }
}

/// What a handler waits for: an item, and the stack of the worker thread
/// that hosts it, if known.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait {
    pub(crate) target: Node,
    pub(crate) host: Option<&'static Stack>,
}

/// A frame as a request carries it: a slot and the generation the frame
/// had when it was published.
#[derive(Clone, Copy)]
pub(crate) struct FrameRef {
    frame: &'static Frame,
    gen: u64,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stack({:p})", self)
    }
}

impl std::fmt::Debug for FrameRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameRef({:p}, {})", self.frame, self.gen)
    }
}

impl FrameRef {
    /// The frame's item and its parent, if the frame is still the one this
    /// reference names (R1..R4 of the module docs).
    fn read(&self) -> Option<(Node, Option<FrameRef>)> {
        let f = self.frame;
        // R1. Acquire: pairs with the owner's Release store of this
        // generation (W4).
        if f.gen.load(Ordering::Acquire) != self.gen {
            return None;
        }
        // R2.
        let pool = f.pool.load(Ordering::Relaxed);
        let id = f.id.load(Ordering::Relaxed);
        let name_ptr = f.name_ptr.load(Ordering::Relaxed);
        let name_len = f.name_len.load(Ordering::Relaxed);
        let parent = f.parent.load(Ordering::Relaxed);
        let parent_gen = f.parent_gen.load(Ordering::Relaxed);
        // R3. Acquire fence: pairs with the owner's Release fence (W2) of
        // any publication whose fields R2 saw.
        fence(Ordering::Acquire);
        // R4.
        if f.gen.load(Ordering::Relaxed) != self.gen {
            return None;
        }
        // SAFETY: R1..R4 showed both words are of one publication.
        let name = unsafe { name_of(name_ptr, name_len) };
        let parent = (parent != 0).then(|| FrameRef {
            // SAFETY: a parent address is only ever that of a `Frame` of a
            // stack, and stacks are never freed (module docs).
            frame: unsafe { &*(parent as *const Frame) },
            gen: parent_gen,
        });
        Some((Node { pool, id, name }, parent))
    }

    /// The items on the chain from this frame up, innermost first, as far
    /// as they can be read, and at most [`MAX_CHAIN`] of them.
    pub(crate) fn nodes(self) -> impl Iterator<Item = Node> {
        let mut at = Some(self);
        std::iter::from_fn(move || {
            let (node, parent) = at?.read()?;
            at = parent;
            Some(node)
        })
        .take(MAX_CHAIN)
    }

    /// Whether `target` is on the chain that starts at this frame: the
    /// answer, or `Err` if [`MAX_CHAIN`] links were read without finding it.
    pub(crate) fn contains(self, target: &Node) -> Result<bool, usize> {
        let mut read = 0;
        for node in self.nodes() {
            if node.same(target) {
                return Ok(true);
            }
            read += 1;
        }
        if read == MAX_CHAIN {
            Err(read)
        } else {
            Ok(false)
        }
    }

    /// The chain from this frame up, innermost first (`nodes`). Allocates:
    /// for errors only.
    pub(crate) fn links(self) -> Vec<ChainLink> {
        self.nodes().map(|n| n.link()).collect()
    }
}

/// W1..W4 of the module docs on generation word `gen`, with `write` as W3
/// (Relaxed stores of the fields it guards). Only the slot's owner calls
/// this. Returns the generation published.
fn write_locked(gen: &AtomicU64, write: impl FnOnce()) -> u64 {
    let g0 = gen.load(Ordering::Relaxed);
    // W1.
    gen.store(g0 + 1, Ordering::Relaxed);
    // W2. Release fence: pairs with a reader's Acquire fence (R3), so a
    // reader that saw any field stored below sees W1 or later at R4.
    fence(Ordering::Release);
    // W3.
    write();
    // W4. Release: pairs with a reader's Acquire load (R1).
    gen.store(g0 + 2, Ordering::Release);
    g0 + 2
}

/// The name stored as a pointer and a length by [`Stack::publish`].
///
/// # Safety
///
/// Both words were read from one publication of one frame (its
/// generation unchanged around the reads), so they are the parts of one
/// `&'static str`.
unsafe fn name_of(ptr: usize, len: usize) -> &'static str {
    // SAFETY: the caller's promise: a `&'static str`'s own pointer and
    // length, so valid UTF-8, live for ever.
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr as *const u8, len)) }
}

/// A frame as a deadlock search read it (`Stack::active`).
pub(crate) struct Seen {
    frame: &'static Frame,
    gen: u64,
    wait_gen: u64,
    pub(crate) node: Node,
    pub(crate) waits: Option<Wait>,
}

impl Seen {
    /// Whether the frame is still as it was read: the same handler, waiting
    /// for the same thing.
    pub(crate) fn unchanged(&self) -> bool {
        // Acquire: as in `Stack::active`.
        self.frame.gen.load(Ordering::Acquire) == self.gen
            && self.frame.wait_gen.load(Ordering::Acquire) == self.wait_gen
    }
}

/// A thread's frames, one slot per level of nesting.
pub(crate) struct Stack {
    frames: [Frame; MAX_DEPTH],
}

impl Stack {
    /// Publishes the frame of level `level` (W1..W4): `node`, called on
    /// behalf of `parent`. Only the thread that leased the stack calls this.
    pub(crate) fn publish(&'static self, level: usize, node: &Node, parent: Option<FrameRef>) -> FrameRef {
        let f = &self.frames[level];
        let (p, pg) = parent.map_or((0, 0), |p| (p.frame as *const Frame as usize, p.gen));
        let gen = write_locked(&f.gen, || {
            f.pool.store(node.pool, Ordering::Relaxed);
            f.id.store(node.id, Ordering::Relaxed);
            f.name_ptr.store(node.name.as_ptr() as usize, Ordering::Relaxed);
            f.name_len.store(node.name.len(), Ordering::Relaxed);
            f.parent.store(p, Ordering::Relaxed);
            f.parent_gen.store(pg, Ordering::Relaxed);
        });
        FrameRef { frame: f, gen }
    }

    /// Records what the frame of level `level` (published) waits for, or
    /// that it waits for nothing; the same sequence lock as `publish`, on
    /// the frame's wait fields.
    pub(crate) fn set_wait(&self, level: usize, wait: Option<Wait>) {
        let f = &self.frames[level];
        let (pool, id, host) = match wait {
            Some(w) => (w.target.pool, w.target.id, w.host.map_or(0, |h| h as *const Stack as usize)),
            None => (0, 0, 0),
        };
        write_locked(&f.wait_gen, || {
            f.target_pool.store(pool, Ordering::Relaxed);
            f.target_id.store(id, Ordering::Relaxed);
            f.target_host.store(host, Ordering::Relaxed);
        });
    }

    /// The active frames of this stack, innermost last, as far as they can
    /// be read now: each one's item, what it waits for, and the
    /// generations read (for [`unchanged`](Self::unchanged)).
    pub(crate) fn active(&'static self) -> impl Iterator<Item = Seen> {
        self.frames.iter().filter_map(|f| {
            // Acquire, both: pair with the owner's Release stores (W4 and
            // `set_wait`'s last store).
            let gen = f.gen.load(Ordering::Acquire);
            let wait_gen = f.wait_gen.load(Ordering::Acquire);
            if gen % 3 != 2 || wait_gen % 2 != 0 {
                return None;
            }
            let pool = f.pool.load(Ordering::Relaxed);
            let id = f.id.load(Ordering::Relaxed);
            let name_ptr = f.name_ptr.load(Ordering::Relaxed);
            let name_len = f.name_len.load(Ordering::Relaxed);
            let target_pool = f.target_pool.load(Ordering::Relaxed);
            let target_id = f.target_id.load(Ordering::Relaxed);
            let target_host = f.target_host.load(Ordering::Relaxed);
            // Acquire fence: pairs with the owner's Release fences.
            fence(Ordering::Acquire);
            if f.gen.load(Ordering::Relaxed) != gen || f.wait_gen.load(Ordering::Relaxed) != wait_gen {
                return None;
            }
            // SAFETY: the generations before and after showed both words are
            // of one publication.
            let name = unsafe { name_of(name_ptr, name_len) };
            let waits = (target_pool != 0).then(|| Wait {
                target: Node { pool: target_pool, id: target_id, name: "" },
                // SAFETY: only ever the address of a stack, and stacks are
                // never freed (module docs).
                host: (target_host != 0).then(|| unsafe { &*(target_host as *const Stack) }),
            });
            Some(Seen { frame: f, gen, wait_gen, node: Node { pool, id, name }, waits })
        })
    }

    /// Pops the frame published at level `level`: every reference to it
    /// is stale from now on.
    pub(crate) fn pop(&self, level: usize, published: FrameRef) {
        let f = &self.frames[level];
        debug_assert!(std::ptr::eq(f, published.frame));
        // Relaxed: a reader that sees the new generation only learns that
        // the frame is gone; one that does not reads the frame as it was,
        // which is the answer it would have had a moment earlier.
        f.gen.store(published.gen + 1, Ordering::Relaxed);
    }

    fn new() -> Self {
        Self { frames: std::array::from_fn(|_| Frame::new()) }
    }

    /// Where this stack is, as a word (for `WorkerShared::stack`).
    pub(crate) fn addr(&'static self) -> usize {
        self as *const Stack as usize
    }

    /// The stack at `addr` (0: none).
    ///
    /// # Safety
    ///
    /// `addr` is 0 or came from [`addr`](Self::addr).
    pub(crate) unsafe fn at(addr: usize) -> Option<&'static Stack> {
        // SAFETY: the caller's promise; stacks are never freed.
        (addr != 0).then(|| unsafe { &*(addr as *const Stack) })
    }
}

/// A stack for the calling thread, for as long as it holds the lease:
/// taken from the free list (or allocated and leaked, once), and given back
/// when the lease drops.
pub(crate) struct Lease(&'static Stack);

impl Lease {
    pub(crate) fn take() -> Self {
        Lease(free_list::take())
    }

    pub(crate) fn stack(&self) -> &'static Stack {
        self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        free_list::give_back(self.0);
    }
}

#[cfg(not(shardpool_loom))]
mod free_list {
    use super::Stack;
    use std::sync::Mutex;

    /// Stacks of threads that have exited, for the next ones.
    static FREE: Mutex<Vec<&'static Stack>> = Mutex::new(Vec::new());

    pub(super) fn take() -> &'static Stack {
        let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| Box::leak(Box::new(Stack::new())))
    }

    pub(super) fn give_back(stack: &'static Stack) {
        FREE.lock().unwrap_or_else(|e| e.into_inner()).push(stack);
    }
}

/// Under loom a stack's atomics belong to one execution of a model, so
/// stacks are not shared between executions: each lease allocates one,
/// leaked (a few hundred bytes per worker and execution, in the models that
/// nest calls).
#[cfg(shardpool_loom)]
mod free_list {
    use super::Stack;

    pub(super) fn take() -> &'static Stack {
        Box::leak(Box::new(Stack::new()))
    }

    pub(super) fn give_back(_: &'static Stack) {}
}
