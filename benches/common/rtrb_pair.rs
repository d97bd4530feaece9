//! The raw `rtrb` pair: one ring for requests, one for replies, and a worker
//! that spins on them. No items, no routing, no sleeping, no slots: the least
//! a ring-based request/response can cost, and what shardpool builds on.
//!
//! Two forms. [`RtrbPair::start`] moves one element at a time on both sides
//! (`push`/`pop`). [`RtrbPair::start_chunked`] is what an expert would write
//! for streaming: the worker takes every queued request as one chunk
//! (`read_chunk`), writes the replies as chunks (`write_chunk_uninit`,
//! published once per chunk), and the caller's [`RtrbClient::batch_chunked`]
//! writes and reads runs the same way; one index store publishes a whole
//! run. Their steps ([`send_run`], [`answer_queued`], [`take_ready`]) are
//! free functions, so that `perf/examples/instructions.rs` can count them
//! run in turn on one thread.

use super::{place, spin_until, YIELD_EVERY};
use rtrb::{Consumer, Producer, RingBuffer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};

/// The spinning worker; dropping it stops and joins it.
pub struct RtrbPair {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

/// The caller's ends of the two rings.
pub struct RtrbClient {
    requests: Producer<u64>,
    replies: Consumer<u64>,
    capacity: u64,
}

impl RtrbPair {
    /// Starts the worker pinned to `core` with rings of `capacity`; returns
    /// once it runs.
    pub fn start(core: usize, capacity: usize) -> (RtrbPair, RtrbClient) {
        let (requests, mut inbox) = RingBuffer::<u64>::new(capacity);
        let (mut outbox, replies) = RingBuffer::<u64>::new(capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(2));
        let (stop2, ready2) = (stop.clone(), ready.clone());
        let join = thread::Builder::new()
            .name("rtrb-pair".into())
            .spawn(move || {
                place::pin_current(core);
                ready2.wait();
                let mut idle = 0u32;
                loop {
                    match inbox.pop() {
                        Ok(v) => {
                            idle = 0;
                            let mut v = v;
                            while let Err(rtrb::PushError::Full(back)) = outbox.push(v) {
                                v = back;
                                std::hint::spin_loop();
                            }
                        }
                        Err(_) => {
                            if stop2.load(Ordering::Relaxed) {
                                break;
                            }
                            idle = idle.wrapping_add(1);
                            if idle % YIELD_EVERY == 0 {
                                thread::yield_now();
                            } else {
                                std::hint::spin_loop();
                            }
                        }
                    }
                }
            })
            .expect("spawn the rtrb pair's worker");
        ready.wait();
        (RtrbPair { stop, join: Some(join) }, RtrbClient { requests, replies, capacity: capacity as u64 })
    }
}

impl RtrbPair {
    /// As [`start`](Self::start), with a worker that moves whole chunks:
    /// every request queued is read as one chunk, answered into the reply
    /// ring in chunks as room allows, and released at once.
    pub fn start_chunked(core: usize, capacity: usize) -> (RtrbPair, RtrbClient) {
        let (requests, mut inbox) = RingBuffer::<u64>::new(capacity);
        let (mut outbox, replies) = RingBuffer::<u64>::new(capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(2));
        let (stop2, ready2) = (stop.clone(), ready.clone());
        let join = thread::Builder::new()
            .name("rtrb-chunked".into())
            .spawn(move || {
                place::pin_current(core);
                ready2.wait();
                loop {
                    let mut served = 0;
                    spin_until(|| {
                        served = answer_queued(&mut inbox, &mut outbox);
                        served > 0 || stop2.load(Ordering::Relaxed)
                    });
                    if served == 0 {
                        break;
                    }
                }
            })
            .expect("spawn the chunked rtrb pair's worker");
        ready.wait();
        (RtrbPair { stop, join: Some(join) }, RtrbClient { requests, replies, capacity: capacity as u64 })
    }
}

impl Drop for RtrbPair {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl RtrbClient {
    /// One round trip.
    #[inline]
    pub fn call(&mut self, v: u64) -> u64 {
        let mut v = v;
        while let Err(rtrb::PushError::Full(back)) = self.requests.push(v) {
            v = back;
            std::hint::spin_loop();
        }
        let mut out = None;
        spin_until(|| {
            out = self.replies.pop().ok();
            out.is_some()
        });
        out.unwrap_or_default()
    }

    /// [`batch`](Self::batch) in runs, for the worker of
    /// [`RtrbPair::start_chunked`]: requests written as one chunk per
    /// refill, replies read as one chunk per look.
    pub fn batch_chunked(&mut self, first: u64, n: u64) -> u64 {
        let (mut sent, mut got, mut acc) = (0u64, 0u64, 0u64);
        while got < n {
            if sent - got <= self.capacity / 2 {
                let want = (n - sent).min(self.capacity - (sent - got)) as usize;
                sent += send_run(&mut self.requests, first + sent, want) as u64;
            }
            let (ready, folded) = take_ready(&mut self.replies, acc);
            if ready == 0 {
                std::hint::spin_loop();
                continue;
            }
            acc = folded;
            got += ready as u64;
        }
        acc
    }

    /// `n` requests `first..first + n`, as many in flight as the rings hold;
    /// returns the xor of the answers. Like shardpool's batches, it refills
    /// only once half the window has drained, so requests and answers move
    /// in bursts instead of one for one.
    pub fn batch(&mut self, first: u64, n: u64) -> u64 {
        let (mut sent, mut got, mut acc) = (0u64, 0u64, 0u64);
        while got < n {
            if sent - got <= self.capacity / 2 {
                while sent < n && sent - got < self.capacity {
                    if self.requests.push(first + sent).is_err() {
                        break;
                    }
                    sent += 1;
                }
            }
            let mut any = false;
            while let Ok(v) = self.replies.pop() {
                acc ^= v;
                got += 1;
                any = true;
            }
            if !any {
                std::hint::spin_loop();
            }
        }
        acc
    }
}

/// The chunked caller's send: requests `first..` written as one chunk, as
/// many of `want` as the ring has room for, published by one index store.
/// Returns how many.
#[inline]
pub fn send_run(requests: &mut Producer<u64>, first: u64, want: usize) -> usize {
    let room = requests.slots().min(want);
    if room == 0 {
        return 0;
    }
    requests.write_chunk_uninit(room).expect("`slots` were free").fill_from_iter(first..)
}

/// The chunked worker's step: every request queued taken as one chunk and
/// answered into `outbox` in chunks as room allows (spinning while it is
/// full), then released at once. Returns how many.
#[inline]
pub fn answer_queued(inbox: &mut Consumer<u64>, outbox: &mut Producer<u64>) -> usize {
    let queued = inbox.slots();
    if queued == 0 {
        return 0;
    }
    let chunk = inbox.read_chunk(queued).expect("`slots` were queued");
    let (a, b) = chunk.as_slices();
    let mut answers = a.iter().chain(b).copied();
    let mut left = queued;
    while left > 0 {
        let room = outbox.slots().min(left);
        if room == 0 {
            std::hint::spin_loop();
            continue;
        }
        let out = outbox.write_chunk_uninit(room).expect("`slots` were free");
        left -= out.fill_from_iter(answers.by_ref().take(room));
    }
    chunk.commit_all();
    queued
}

/// The chunked caller's receive: every reply ready taken as one chunk.
/// Returns how many, and `acc` xored with each.
#[inline]
pub fn take_ready(replies: &mut Consumer<u64>, acc: u64) -> (usize, u64) {
    let ready = replies.slots();
    if ready == 0 {
        return (0, acc);
    }
    let chunk = replies.read_chunk(ready).expect("`slots` were ready");
    let (a, b) = chunk.as_slices();
    let acc = a.iter().chain(b).fold(acc, |acc, v| acc ^ v);
    chunk.commit_all();
    (ready, acc)
}
