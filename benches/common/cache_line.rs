//! The floor: one cache line bounced between two threads. The caller makes
//! the word odd, the partner makes it even again; a round trip is two
//! transfers of the line between the cores, the least any cross-thread
//! request/response can cost on this machine right now.
//!
//! On a VM the host may move the two vCPUs apart for a while (the round trip
//! then jumps from ~70 ns to ~330 ns here), so the perf harness measures the
//! floor before and after each scenario and reports ratios to it.

use super::{place, spin_until, YIELD_EVERY};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};

/// The partner thread; dropping it stops and joins it.
pub struct PingPong {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

/// The caller's side.
pub struct PingClient {
    word: Arc<CachePadded<AtomicU64>>,
}

impl PingPong {
    /// Starts the partner pinned to `core`; returns once it runs.
    pub fn start(core: usize) -> (PingPong, PingClient) {
        let word = Arc::new(CachePadded::new(AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(2));
        let (word2, stop2, ready2) = (word.clone(), stop.clone(), ready.clone());
        let join = thread::Builder::new()
            .name("cache-line".into())
            .spawn(move || {
                place::pin_current(core);
                ready2.wait();
                let mut idle = 0u32;
                loop {
                    // Acquire/Release: only to order the bounce; there is no
                    // payload.
                    let v = word2.load(Ordering::Acquire);
                    if v & 1 == 1 {
                        word2.store(v + 1, Ordering::Release);
                        idle = 0;
                    } else if stop2.load(Ordering::Relaxed) {
                        break;
                    } else {
                        idle = idle.wrapping_add(1);
                        if idle % YIELD_EVERY == 0 {
                            thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
            })
            .expect("spawn the cache-line partner");
        ready.wait();
        (PingPong { stop, join: Some(join) }, PingClient { word })
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl PingClient {
    /// One round trip of the line.
    #[inline]
    pub fn bounce(&self) {
        // Only this side makes the word odd, so between bounces it is even.
        let v = self.word.load(Ordering::Relaxed);
        self.word.store(v + 1, Ordering::Release);
        spin_until(|| self.word.load(Ordering::Acquire) == v + 2);
    }
}
