//! Steady-state calls allocate nothing: not on the caller, not on the worker.

use shardpool::{AddRequest, Pinning, ThreadPool};
use shardpool_samples::{Randoms, RandomsInit, SumRequest};
use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// Counts every allocation in the process.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is process-wide: the tests take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn warm_calls_and_batches_allocate_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let pool =
        ThreadPool::<Randoms>::builder().workers(2).ring_capacity(64).pinning(Pinning::Off).build().unwrap();
    // The first call registers this thread (rings, slots) and the items are
    // built: that allocates, and shows the counter counts.
    let start = ALLOCS.load(Ordering::SeqCst);
    for r in pool.send_and_receive((0..100).map(|id| AddRequest::new(id, RandomsInit { count: 10 }))).unwrap()
    {
        r.unwrap();
    }
    assert!(ALLOCS.load(Ordering::SeqCst) > start);
    let mut checksum = 0u128;
    let run = |checksum: &mut u128| {
        for id in 0..100 {
            *checksum += pool.send_and_receive_once(SumRequest(id)).unwrap().sum;
        }
        for _ in 0..10 {
            for r in pool.send_and_receive((0..1000).map(|i| SumRequest(i % 100))).unwrap() {
                *checksum += r.unwrap().sum;
            }
        }
    };
    // Warm up: the slab grows to the largest window used.
    run(&mut checksum);
    let before = ALLOCS.load(Ordering::SeqCst);
    run(&mut checksum);
    let after = ALLOCS.load(Ordering::SeqCst);
    assert!(checksum > 0);
    assert_eq!(after - before, 0, "allocations during 100 single calls and 10,000 batch elements");
}

/// Unparks a thread; made once, so waking allocates nothing.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark()
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark()
    }
}

fn block_on<F: Future>(f: F, waker: &Waker) -> F::Output {
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(waker)) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn warm_async_calls_and_sends_allocate_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let pool =
        ThreadPool::<Randoms>::builder().workers(2).ring_capacity(64).pinning(Pinning::Off).build().unwrap();
    for r in pool.send_and_receive((0..100).map(|id| AddRequest::new(id, RandomsInit { count: 10 }))).unwrap()
    {
        r.unwrap();
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut checksum = 0u128;
    let run = |checksum: &mut u128| {
        for id in 0..1000 {
            *checksum +=
                block_on(pool.send_and_receive_once_async(SumRequest(id % 100)), &waker).unwrap().sum;
            pool.send(SumRequest(id % 100)).unwrap();
        }
        // Two in flight at once, then one dropped before its response.
        for id in 0..100 {
            // Both sent before either is awaited.
            let mut a = pin!(pool.send_and_receive_once_async(SumRequest(id)));
            let mut b = pin!(pool.send_and_receive_once_async(SumRequest(99 - id)));
            let early_a = a.as_mut().poll(&mut Context::from_waker(&waker));
            let early_b = b.as_mut().poll(&mut Context::from_waker(&waker));
            for (early, f) in [(early_a, a), (early_b, b)] {
                *checksum += match early {
                    Poll::Ready(r) => r.unwrap().sum,
                    Poll::Pending => block_on(f, &waker).unwrap().sum,
                };
            }
            let mut c = pin!(pool.send_and_receive_once_async(SumRequest(id)));
            let _ = c.as_mut().poll(&mut Context::from_waker(&waker));
        }
    };
    run(&mut checksum);
    let before = ALLOCS.load(Ordering::SeqCst);
    run(&mut checksum);
    let after = ALLOCS.load(Ordering::SeqCst);
    assert!(checksum > 0);
    assert_eq!(after - before, 0, "allocations during 1,300 async calls and 1,000 sends");

    // An async batch allocates its window when it is made, and nothing per
    // request.
    let batches = |checksum: &mut u128| {
        for _ in 0..10 {
            let mut responses = pool.send_and_receive_async((0..1000).map(|i| SumRequest(i % 100)));
            while let Some(r) = block_on(responses.next(), &waker) {
                *checksum += r.unwrap().sum;
            }
        }
    };
    batches(&mut checksum);
    let before = ALLOCS.load(Ordering::SeqCst);
    batches(&mut checksum);
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(after - before, 10, "one allocation per async batch of 1,000 (its window)");
}
