//! The actor toolbox: awaitable calls (cancellation at every await point,
//! tasks moving between threads), fire-and-forget sends, try-forms on a
//! full ring, calls with a deadline, mixed batches.
#![allow(missing_docs)]

mod common;

use common::{block_on, counting, eventually, poll_once, Latch};
use shardpool::{pool_item, Error, PanicReport, Request, ThreadPool};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};
use std::time::Duration;

/// A response that counts its drops.
#[derive(Debug)]
pub struct Tracked(pub u64, pub Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct Actor {
    id: u64,
    log: Vec<u64>,
}

#[pool_item]
impl Actor {
    fn new(id: u64) -> Self {
        Actor { id, log: Vec::new() }
    }

    /// Answers with its id, or panics if it is `bad`.
    #[messaging(PickyRequest, PickyResponse)]
    fn picky(&mut self, bad: u64) -> u64 {
        assert_ne!(self.id, bad, "picky");
        self.id
    }

    /// Appends `v`; answers with the whole log.
    #[messaging(PushRequest, PushResponse)]
    fn push(&mut self, v: u64) -> Vec<u64> {
        self.log.push(v);
        self.log.clone()
    }

    /// Waits on `latch`, then answers with `n`, tracked by `drops`.
    #[messaging(HoldRequest, HoldResponse)]
    fn hold(&mut self, latch: Latch, n: u64, drops: Arc<AtomicUsize>) -> Tracked {
        latch.wait();
        Tracked(n, drops)
    }

    #[messaging(BoomRequest, BoomResponse)]
    fn boom(&mut self) {
        panic!("boom")
    }

    /// Waits on `latch`, then answers with a response whose `Drop` panics.
    #[messaging(FragileRequest, FragileResponse)]
    fn fragile(&mut self, latch: Latch, n: u64) -> Fragile {
        latch.wait();
        Fragile(n)
    }
}

fn pool(workers: usize) -> ThreadPool<Actor> {
    let pool = ThreadPool::<Actor>::new(workers).unwrap();
    for id in 0..8 {
        pool.send_and_receive_once(ActorInit(id)).unwrap();
    }
    pool
}

#[test]
fn an_async_call_returns_the_typed_response() {
    let pool = pool(2);
    let log = block_on(pool.send_and_receive_once_async(PushRequest(3, 7))).unwrap();
    assert_eq!(log.result, vec![7]);
    assert_eq!(
        block_on(pool.send_and_receive_once_async(PushRequest(9, 1))),
        Err(Error::UnknownId { id: 9 })
    );
}

#[test]
fn an_async_call_is_send_and_sends_nothing_until_polled() {
    fn assert_send<T: Send>(_: &T) {}
    let pool = pool(1);
    let f = pool.send_and_receive_once_async(PushRequest(1, 5));
    assert_send(&f);
    let before = pool.stats().requests();
    drop(f);
    // Sent later, after the dropped one: the log shows only this.
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 6)).unwrap().result, vec![6]);
    assert_eq!(pool.stats().requests(), before + 1);
}

/// First polled on one thread, which then exits; completed on another,
/// whose waker the worker wakes.
#[test]
fn a_future_sent_from_one_thread_completes_on_another_after_the_first_exited() {
    let pool = Arc::new(pool(2));
    let latch = Latch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let f = {
        let (pool, latch, drops) = (pool.clone(), latch.clone(), drops.clone());
        std::thread::spawn(move || {
            // A `'static` borrow for the move: the pool outlives both threads.
            let pool: &'static Arc<ThreadPool<Actor>> = Box::leak(Box::new(pool));
            let mut f = pool.send_and_receive_once_async(HoldRequest(2, latch, 41, drops));
            let (_, waker) = counting();
            assert!(poll_once(&mut f, &waker).is_pending(), "the handler waits on the latch");
            f
        })
        .join()
        .unwrap()
    };
    latch.until_waiting(1);
    let (wakes, waker) = counting();
    let mut f = f;
    assert!(poll_once(&mut f, &waker).is_pending());
    latch.open();
    let response = loop {
        if let Poll::Ready(r) = poll_once(&mut f, &waker) {
            break r.unwrap();
        }
        std::thread::park();
    };
    assert_eq!(response.result.0, 41);
    // The worker wakes the waker after it publishes: the poll may have
    // taken the reply first.
    let w = wakes.clone();
    assert!(eventually(move || w.wakes.load(Ordering::SeqCst) >= 1), "the worker woke this thread's waker");
    drop(response);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_future_dropped_while_its_request_is_processed_has_its_response_dropped() {
    let pool = pool(1);
    let latch = Latch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut f = pool.send_and_receive_once_async(HoldRequest(1, latch.clone(), 1, drops.clone()));
    let (wakes, waker) = counting();
    assert!(poll_once(&mut f, &waker).is_pending());
    latch.until_waiting(1);
    drop(f);
    latch.open();
    // The worker drops the late response; the slot is reused after.
    let drops2 = drops.clone();
    assert!(eventually(move || drops2.load(Ordering::SeqCst) == 1));
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 0, "a dropped future's waker is not woken");
    for v in 0..40 {
        assert_eq!(
            block_on(pool.send_and_receive_once_async(PushRequest(1, v))).unwrap().result.len(),
            v as usize + 1
        );
    }
}

#[test]
fn a_future_dropped_after_its_response_arrived_drops_the_response() {
    let pool = pool(1);
    let latch = Latch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut f = pool.send_and_receive_once_async(HoldRequest(1, latch.clone(), 1, drops.clone()));
    let (_, waker) = counting();
    assert!(poll_once(&mut f, &waker).is_pending(), "the handler waits on the latch");
    latch.open();
    // A later request's answer (same thread, same item) proves this one's
    // is in its slot.
    pool.send_and_receive_once(PushRequest(1, 0)).unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(f);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn only_the_waker_of_the_latest_poll_is_woken() {
    let pool = pool(1);
    let latch = Latch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut f = pool.send_and_receive_once_async(HoldRequest(1, latch.clone(), 1, drops));
    let (first, w1) = counting();
    let (second, w2) = counting();
    assert!(poll_once(&mut f, &w1).is_pending());
    assert!(poll_once(&mut f, &w2).is_pending());
    latch.open();
    let second2 = second.clone();
    assert!(eventually(move || second2.wakes.load(Ordering::SeqCst) == 1));
    assert_eq!(first.wakes.load(Ordering::SeqCst), 0);
    assert!(poll_once(&mut f, &w2).is_ready());
}

#[test]
fn a_panicking_waker_is_reported_and_the_response_still_taken() {
    struct Bad;
    impl Wake for Bad {
        fn wake(self: Arc<Self>) {
            panic!("bad waker")
        }
    }
    let reports = Arc::new(Mutex::new(Vec::<PanicReport>::new()));
    let sink = reports.clone();
    let pool = ThreadPool::<Actor>::builder()
        .workers(1)
        .panic_handler(move |r| sink.lock().unwrap().push(r))
        .build()
        .unwrap();
    pool.send_and_receive_once(ActorInit(1)).unwrap();
    let latch = Latch::new();
    let mut f = pool.send_and_receive_once_async(HoldRequest(1, latch.clone(), 3, Arc::default()));
    let bad = Waker::from(Arc::new(Bad));
    assert!(poll_once(&mut f, &bad).is_pending());
    latch.open();
    let reports2 = reports.clone();
    assert!(eventually(move || !reports2.lock().unwrap().is_empty()));
    assert!(reports.lock().unwrap()[0].message.contains("bad waker"));
    let (_, waker) = counting();
    assert_eq!(poll_once(&mut f, &waker).map(|r| r.unwrap().result.0), Poll::Ready(3));
    // The worker goes on.
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 1)).unwrap().result, vec![1]);
}

/// Tasks that await each response before sending the next request have
/// their requests processed in order, though the runtime moves them
/// between threads (each yields between calls, and records where it ran).
#[test]
fn tasks_awaiting_each_response_keep_per_item_order_across_threads() {
    let pool = Arc::new(pool(2));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
    let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
    rt.block_on(async {
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let (pool, threads) = (pool.clone(), threads.clone());
                tokio::spawn(async move {
                    for i in 0..200u64 {
                        threads.lock().unwrap().insert(std::thread::current().id());
                        let log = pool.send_and_receive_once_async(PushRequest(t, i)).await.unwrap().result;
                        assert_eq!(log.len() as u64, i + 1);
                        assert_eq!(log.last(), Some(&i));
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for t in 0..8 {
        assert_eq!(pool.send_and_receive_once(PushRequest(t, 999)).unwrap().result.len(), 201);
    }
    assert!(threads.lock().unwrap().len() > 1, "the tasks ran on several threads");
}

/// Many futures cancelled by a runtime timeout while their requests wait:
/// every response is dropped exactly once, and none is woken into a slot
/// reused by another request.
#[test]
fn futures_cancelled_by_a_runtime_timeout_lose_no_response_and_mix_none_up() {
    let pool = Arc::new(pool(2));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let latch = Latch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let (pool, latch, drops) = (pool.clone(), latch.clone(), drops.clone());
            tasks.push(tokio::spawn(async move {
                let f = pool.send_and_receive_once_async(HoldRequest(t % 8, latch, t, drops));
                tokio::time::timeout(Duration::from_millis(1), f).await.is_err()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap(), "timed out: the latch is closed");
        }
    });
    // Right away, on the same runtime threads (whose slabs hold the
    // cancelled futures' slots), new calls while the late answers land:
    // their slots are the freed ones, and each answer reaches its own
    // future.
    latch.open();
    let answered = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..16u64)
            .map(|t| {
                let (pool, latch, answered) = (pool.clone(), latch.clone(), answered.clone());
                tokio::spawn(async move {
                    for i in 0..8u64 {
                        let n = t * 100 + i;
                        let r = pool
                            .send_and_receive_once_async(HoldRequest(
                                t % 8,
                                latch.clone(),
                                n,
                                answered.clone(),
                            ))
                            .await;
                        assert_eq!(r.unwrap().result.0, n);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(answered.load(Ordering::SeqCst), 128, "each answer taken and dropped once");
    let d = drops.clone();
    assert!(eventually(move || d.load(Ordering::SeqCst) == 16), "each late answer dropped once");
}

#[test]
fn an_async_call_after_shutdown_is_refused() {
    let pool = pool(1);
    pool.shutdown().unwrap();
    assert_eq!(block_on(pool.send_and_receive_once_async(PushRequest(1, 1))), Err(Error::Shutdown));
}

#[test]
fn sends_keep_their_place_and_their_failures_are_counted_and_reported() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let panics = Arc::new(Mutex::new(Vec::<PanicReport>::new()));
    let (e, p) = (errors.clone(), panics.clone());
    let pool = ThreadPool::<Actor>::builder()
        .workers(2)
        .error_handler(move |err| e.lock().unwrap().push(err))
        .panic_handler(move |r| p.lock().unwrap().push(r))
        .build()
        .unwrap();
    pool.send(ActorInit(1)).unwrap();
    for v in 0..100 {
        pool.send(PushRequest(1, v)).unwrap();
    }
    pool.send(PushRequest(42, 0)).unwrap();
    pool.send(BoomRequest(1)).unwrap();
    // Sent after everything above from this thread: the panic removed item 1.
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 0)), Err(Error::UnknownId { id: 1 }));
    pool.send(ActorInit(1)).unwrap();
    let log = pool.send_and_receive_once(PushRequest(1, 7)).unwrap().result;
    assert_eq!(log, vec![7]);
    // Item 42 is on worker 0, item 1 on worker 1: a question to worker 0,
    // sent after the failed send to 42, is answered after its error went to
    // the handler. The errors come in either order.
    assert!(!pool.contains(42).unwrap());
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(errors.contains(&Error::UnknownId { id: 42 }));
    assert!(errors.iter().any(|e| matches!(e, Error::Panicked { id: 1, message } if message == "boom")));
    assert_eq!(panics.lock().unwrap().len(), 1);
    assert_eq!(pool.stats().workers.iter().map(|w| w.send_errors).sum::<u64>(), 2);
}

#[test]
fn send_all_sends_every_request_it_can_and_reports_the_first_it_cannot() {
    let pool = pool(2);
    let before = pool.stats().requests();
    let sent = pool.send_all((0..50).map(|v| PushRequest(1, v))).unwrap();
    assert_eq!(sent, 50);
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 50)).unwrap().result, (0..=50).collect::<Vec<_>>());
    // The iterator shuts the pool down midway: the rest cannot be sent.
    let p = &pool;
    let err = pool
        .send_all((0..10).map(|v| {
            if v == 6 {
                p.shutdown().unwrap();
            }
            PushRequest(2, v)
        }))
        .unwrap_err();
    assert_eq!((err.index, err.error, err.failed), (6, Error::Shutdown, 4));
    // Shutdown answered the six sent before it.
    assert_eq!(pool.stats().requests(), before + 51 + 6);
}

/// A full ring: the worker's handler waits on a latch, and a send (a
/// redirection and its request: both cells of a ring of capacity one)
/// fills the ring behind it. Item 1's list starts with that send's 0.
fn full_ring() -> (ThreadPool<Actor>, Latch) {
    let pool = ThreadPool::<Actor>::builder().workers(1).ring_capacity(1).build().unwrap();
    pool.send_and_receive_once(ActorInit(1)).unwrap();
    let latch = Latch::new();
    pool.send(HoldRequest(1, latch.clone(), 0, Arc::default())).unwrap();
    latch.until_waiting(1);
    pool.send(PushRequest(1, 0)).unwrap();
    (pool, latch)
}

#[test]
fn try_forms_on_a_full_ring_hand_the_request_back() {
    let (pool, latch) = full_ring();
    let refused = pool.try_send(PushRequest(1, 1)).unwrap_err();
    assert_eq!(refused.error, Error::Full { id: 1, worker: 0 });
    let refused2 = pool.try_send_and_receive_once(PushRequest(1, 2)).unwrap_err();
    assert_eq!(refused2.error, Error::Full { id: 1, worker: 0 });
    latch.open();
    // Sent again, in the order chosen now.
    pool.send(refused2.message.unwrap()).unwrap();
    let reply = pool.send_and_receive_once(refused.message.unwrap()).unwrap();
    assert_eq!(PushRequest::from_reply(reply).unwrap().result, vec![0, 2, 1]);
    // With room, the try-forms send.
    assert_eq!(pool.try_send_and_receive_once(PushRequest(1, 3)).unwrap().result, vec![0, 2, 1, 3]);
}

/// An async call on a full ring leaves its waker and waits: it does not
/// wake its own task (which would spin the executor) and is woken by the
/// worker once the ring has room.
#[test]
fn an_async_call_on_a_full_ring_waits_for_the_worker_to_wake_it() {
    let (pool, latch) = full_ring();
    let (wakes, waker) = counting();
    let mut f = pool.send_and_receive_once_async(PushRequest(1, 1));
    let mut batch = pool.send_and_receive_async([PushRequest(1, 2)]);
    let (batch_wakes, batch_waker) = counting();
    assert!(poll_once(&mut f, &waker).is_pending());
    let mut next = Box::pin(batch.next());
    assert!(poll_once(&mut next, &batch_waker).is_pending());
    // A future that woke its own task would have counted it in its poll.
    assert_eq!(wakes.wakes.load(Ordering::SeqCst), 0, "no wake-up while the ring is full");
    assert_eq!(batch_wakes.wakes.load(Ordering::SeqCst), 0);
    latch.open();
    let (w, b) = (wakes.clone(), batch_wakes.clone());
    assert!(eventually(move || w.wakes.load(Ordering::SeqCst) >= 1), "the call woken when room came");
    assert!(eventually(move || b.wakes.load(Ordering::SeqCst) >= 1), "the batch woken when room came");
    let response = loop {
        if let Poll::Ready(r) = poll_once(&mut f, &waker) {
            break r.unwrap();
        }
        std::thread::park();
    };
    assert_eq!(response.result.last(), Some(&1));
    let second = loop {
        if let Poll::Ready(r) = poll_once(&mut next, &batch_waker) {
            break r.unwrap().unwrap().result;
        }
        std::thread::park();
    };
    assert_eq!(second.last(), Some(&2));
}

#[test]
fn a_call_waiting_for_room_past_its_deadline_says_nothing_was_sent() {
    let (pool, latch) = full_ring();
    let late = pool.send_and_receive_once_timeout(PushRequest(1, 1), Duration::from_millis(20));
    assert_eq!(late, Err(Error::Full { id: 1, worker: 0 }));
    latch.open();
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 2)).unwrap().result, vec![0, 2]);
}

#[test]
fn a_call_past_its_deadline_times_out_and_its_late_response_is_dropped() {
    let pool = pool(1);
    let latch = Latch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let late = pool.send_and_receive_once_timeout(
        HoldRequest(1, latch.clone(), 1, drops.clone()),
        Duration::from_millis(20),
    );
    assert_eq!(late.map(|r| r.result.0), Err(Error::Timeout { id: 1 }));
    latch.open();
    // The next call from this thread is answered after the late one, with
    // its own response; the late one was dropped on the way.
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 5)).unwrap().result, vec![5]);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // In time, it answers.
    let on_time = pool.send_and_receive_once_timeout(PushRequest(1, 6), Duration::from_secs(30));
    assert_eq!(on_time.unwrap().result, vec![5, 6]);
}

/// A request whose reply goes elsewhere than a reply cell travels behind a
/// redirection (two ring entries); with `max_batch(1)` the worker takes the
/// two in different passes. Mixed with blocking calls on the same lane,
/// every reply reaches its own caller, in order.
#[test]
fn redirected_requests_split_across_passes_reach_their_own_callers() {
    let pool = ThreadPool::<Actor>::builder().workers(1).max_batch(1).ring_capacity(4).build().unwrap();
    pool.send_and_receive_once(ActorInit(1)).unwrap();
    let mut expected = Vec::new();
    for v in 0..60u64 {
        expected.push(v);
        let log = match v % 3 {
            0 => pool.send_and_receive_once(PushRequest(1, v)).unwrap().result,
            1 => block_on(pool.send_and_receive_once_async(PushRequest(1, v))).unwrap().result,
            _ => {
                pool.send(PushRequest(1, v)).unwrap();
                continue;
            }
        };
        assert_eq!(log, expected);
    }
}

#[test]
fn one_batch_carries_requests_of_several_types() {
    let pool = pool(2);
    let mixed =
        [PushRequest(1, 1).into_message(), ActorInit(20).into_message(), PushRequest(2, 2).into_message()];
    let replies: Vec<_> = pool.send_and_receive(mixed).unwrap().collect();
    assert_eq!(replies.len(), 3);
    let mut replies = replies.into_iter();
    assert_eq!(PushRequest::from_reply(replies.next().unwrap().unwrap()).unwrap().result, vec![1]);
    assert_eq!(ActorInit::from_reply(replies.next().unwrap().unwrap()).unwrap().id, 20);
    assert_eq!(PushRequest::from_reply(replies.next().unwrap().unwrap()).unwrap().result, vec![2]);
}

#[test]
fn contains_and_ids_see_every_request_sent_before_from_this_thread() {
    let pool = ThreadPool::<Actor>::new(3).unwrap();
    assert_eq!(pool.ids().unwrap(), Vec::<u64>::new());
    for id in (0..30).map(|i| i * 11) {
        pool.send(ActorInit(id)).unwrap();
    }
    assert!(pool.contains(33).unwrap());
    assert!(!pool.contains(34).unwrap());
    let mut ids = pool.ids().unwrap();
    ids.sort_unstable();
    assert_eq!(ids, (0..30).map(|i| i * 11).collect::<Vec<_>>());
    pool.send(shardpool::RemoveRequest(33)).unwrap();
    assert!(!pool.contains(33).unwrap());
    assert_eq!(pool.ids().unwrap().len(), 29);
    pool.shutdown().unwrap();
    assert_eq!(pool.contains(0), Err(Error::Shutdown));
    assert_eq!(pool.ids(), Err(Error::Shutdown));
}

/// An item that asks its own pool for its ids.
pub struct Asker {
    pool: Arc<std::sync::OnceLock<std::sync::Weak<ThreadPool<Asker>>>>,
}

#[pool_item]
impl Asker {
    fn new(_id: u64, pool: Arc<std::sync::OnceLock<std::sync::Weak<ThreadPool<Asker>>>>) -> Self {
        Asker { pool }
    }

    #[messaging(AskRequest, AskResponse)]
    fn ask(&self) -> Result<Vec<u64>, Error> {
        let pool = self.pool.get().and_then(std::sync::Weak::upgrade).expect("the pool");
        pool.ids()
    }
}

/// From a handler, `ids` (and so `broadcast`) would wait for an answer
/// from the worker running it: refused, not hung.
#[test]
fn ids_asked_from_a_handler_are_refused_not_hung() {
    let cell = Arc::new(std::sync::OnceLock::new());
    let pool = Arc::new(ThreadPool::<Asker>::new(2).unwrap());
    cell.set(Arc::downgrade(&pool)).unwrap();
    pool.send_and_receive_once(shardpool::AddRequest::new(1, cell)).unwrap();
    let answer = pool.send_and_receive_once(AskRequest(1)).unwrap().result;
    assert_eq!(answer, Err(Error::SameWorker { id: 0, worker: 1 }));
}

#[test]
fn a_broadcast_reaches_every_item_and_a_panicking_one_fails_alone() {
    let pool = pool(2);
    let mut all = pool.broadcast(|id| PickyRequest(id, 5)).unwrap();
    all.sort_by_key(|(id, _)| *id);
    assert_eq!(all.len(), 8);
    for (id, r) in &all {
        if *id == 5 {
            assert!(matches!(r, Err(Error::Panicked { id: 5, .. })), "{r:?}");
        } else {
            assert_eq!(r.as_ref().unwrap().result, *id);
        }
    }
    // The panic removed item 5: the next broadcast leaves it out.
    let ids: Vec<_> =
        pool.broadcast(|id| PickyRequest(id, 99)).unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 7);
    assert!(!ids.contains(&5));
}

/// An async batch on a multi-threaded runtime, yielding between responses
/// so that the task moves: every response in request order, and per item
/// the requests processed in the order sent.
#[test]
fn an_async_batch_answers_in_order_and_keeps_per_item_order_across_threads() {
    let pool = Arc::new(pool(2));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(3).build().unwrap();
    let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
    rt.block_on(async {
        let tasks: Vec<_> = (0..4u64)
            .map(|t| {
                let (pool, threads) = (pool.clone(), threads.clone());
                tokio::spawn(async move {
                    // Task t owns items t and t + 4; request i goes to one of them.
                    let requests = (0..500u64).map(move |i| PushRequest(t + 4 * (i % 2), i));
                    let mut responses = pool.send_and_receive_async(requests);
                    let mut i = 0u64;
                    while let Some(r) = responses.next().await {
                        let log = r.unwrap().result;
                        assert_eq!(log.last(), Some(&i), "response {i} in request order");
                        assert!(log.windows(2).all(|w| w[0] < w[1]), "per item, in order sent");
                        assert_eq!(log.len() as u64, i / 2 + 1);
                        i += 1;
                        if i % 7 == 0 {
                            threads.lock().unwrap().insert(std::thread::current().id());
                            tokio::task::yield_now().await;
                        }
                    }
                    assert_eq!(i, 500);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert!(threads.lock().unwrap().len() > 1, "the tasks ran on several threads");
}

#[test]
fn an_async_batch_answers_failures_in_place_and_dropped_early_loses_nothing() {
    let pool = pool(2);
    let results: Vec<_> = block_on(Box::pin(async {
        let mut responses =
            pool.send_and_receive_async([PushRequest(1, 1), PushRequest(77, 2), PushRequest(1, 3)]);
        let mut all = Vec::new();
        while let Some(r) = responses.next().await {
            all.push(r.map(|r| r.result));
        }
        all
    }));
    assert_eq!(results, vec![Ok(vec![1]), Err(Error::UnknownId { id: 77 }), Ok(vec![1, 3])]);
    // Dropped before any response, with its requests in flight: their
    // responses are dropped when they come, and nothing hangs.
    let latch = Latch::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let requests: Vec<_> = (0..6).map(|i| HoldRequest(i % 2, latch.clone(), i, drops.clone())).collect();
    let mut responses = pool.send_and_receive_async(requests);
    let (_, waker) = counting();
    assert!(poll_once(&mut Box::pin(responses.next()), &waker).is_pending());
    latch.until_waiting(2);
    drop(responses);
    latch.open();
    let d = drops.clone();
    assert!(eventually(move || d.load(Ordering::SeqCst) == 6));
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 9)).unwrap().result, vec![1, 3, 9]);
}

/// The request iterator of an async batch panics midway, inside a poll:
/// the panic reaches the task, the requests sent before it are processed,
/// and dropping the stream leaves nothing behind.
#[test]
fn an_async_batch_whose_iterator_panics_has_its_earlier_requests_processed() {
    let pool = pool(1);
    let requests = (0..10u64).map(|v| {
        assert!(v != 5, "iterator boom");
        PushRequest(1, v)
    });
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(Box::pin(async {
            let mut responses = pool.send_and_receive_async(requests);
            while let Some(r) = responses.next().await {
                r.unwrap();
            }
        }))
    }));
    assert!(caught.is_err(), "the iterator's panic reaches the task");
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 99)).unwrap().result, vec![0, 1, 2, 3, 4, 99]);
}

/// A request whose `into_message` panics: the panic comes out where the
/// future is made, and nothing is sent.
#[test]
fn an_async_call_whose_into_message_panics_sends_nothing() {
    struct Bad;
    impl Request<Actor> for Bad {
        type Response = ();
        fn into_message(self) -> shardpool::Message<Actor> {
            panic!("into_message boom")
        }
        fn from_reply(_: shardpool::Reply<Actor>) -> Option<()> {
            None
        }
    }
    let pool = pool(1);
    let before = pool.stats().requests();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(pool.send_and_receive_once_async(Bad));
    }));
    assert!(caught.is_err());
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 1)).unwrap().result, vec![1]);
    assert_eq!(pool.stats().requests(), before + 1);
}

/// An error handler that panics is reported, and the worker goes on.
#[test]
fn a_panicking_error_handler_is_reported_and_the_worker_goes_on() {
    let reports = Arc::new(Mutex::new(Vec::<PanicReport>::new()));
    let sink = reports.clone();
    let pool = ThreadPool::<Actor>::builder()
        .workers(1)
        .error_handler(|_| panic!("handler boom"))
        .panic_handler(move |r| sink.lock().unwrap().push(r))
        .build()
        .unwrap();
    pool.send(PushRequest(9, 1)).unwrap();
    pool.send_and_receive_once(ActorInit(1)).unwrap();
    let r = reports.lock().unwrap().clone();
    assert_eq!(r.len(), 1);
    assert!(r[0].message.contains("handler boom"), "{:?}", r[0]);
    assert_eq!(pool.stats().workers[0].send_errors, 1);
}

/// Responses whose `Drop` panics, in flight when their async batch is
/// dropped: the worker drops each late one under `catch_unwind` and
/// reports it; nothing aborts.
#[test]
fn late_responses_whose_drop_panics_are_reported_not_fatal() {
    let reports = Arc::new(Mutex::new(Vec::<PanicReport>::new()));
    let sink = reports.clone();
    let pool = ThreadPool::<Actor>::builder()
        .workers(1)
        .panic_handler(move |r| sink.lock().unwrap().push(r))
        .build()
        .unwrap();
    pool.send_and_receive_once(ActorInit(1)).unwrap();
    let latch = Latch::new();
    let requests: Vec<_> = (0..3).map(|i| FragileRequest(1, latch.clone(), i)).collect();
    let mut responses = pool.send_and_receive_async(requests);
    let (_, waker) = counting();
    assert!(poll_once(&mut Box::pin(responses.next()), &waker).is_pending());
    latch.until_waiting(1);
    drop(responses);
    latch.open();
    let r = reports.clone();
    assert!(eventually(move || r.lock().unwrap().len() == 3), "{:?}", reports.lock().unwrap());
    assert!(reports.lock().unwrap().iter().all(|r| r.message.contains("fragile drop")));
    assert_eq!(pool.send_and_receive_once(PushRequest(1, 1)).unwrap().result, vec![1]);
}

/// A response whose `Drop` panics.
#[derive(Debug)]
pub struct Fragile(pub u64);

impl Drop for Fragile {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("fragile drop {}", self.0);
        }
    }
}
