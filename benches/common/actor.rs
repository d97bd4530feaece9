//! The crossbeam-channel actor baseline: each worker is a thread looping on
//! its own request channel, and each caller has its own reply channel. This is
//! the hand-written alternative to a pool: no items, no routing table, no
//! typed errors, just the channels: bounded (array-backed, with
//! backpressure), and each side, once woken, takes what is queued with
//! `try_iter` before it blocks again. Requests go one message each; an actor
//! that moved runs (a `Vec` per message) would stream faster, and is not
//! written here.

use super::place;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};

/// How many requests a caller keeps in flight per actor in a batch (the same
/// window shardpool's default ring capacity gives a batch).
pub const WINDOW_PER_WORKER: usize = 256;

enum Msg {
    /// Answer `id` on caller `caller`'s reply channel.
    Ping {
        id: u64,
        caller: u32,
    },
    Stop,
}

/// The actor threads; dropping it stops and joins them.
pub struct ActorPool {
    senders: Vec<Sender<Msg>>,
    joins: Vec<JoinHandle<()>>,
}

/// One caller's end: the actors' request channels and its own reply channel.
pub struct ActorClient {
    senders: Vec<Sender<Msg>>,
    replies: Receiver<u64>,
    index: u32,
}

impl ActorPool {
    /// Starts `workers` actors (actor `i` pinned to
    /// [`place::worker_core(i)`](place::worker_core) when `pin`, else free
    /// to run anywhere) serving `callers` clients. Returns once every actor
    /// runs.
    pub fn start(workers: usize, callers: usize, pin: bool) -> (ActorPool, Vec<ActorClient>) {
        // A caller keeps at most `WINDOW_PER_WORKER * workers` requests in
        // flight in all (possibly all on one actor), so neither its reply
        // channel nor an actor's request channel, sized for every caller's
        // whole window, ever fills: the bounds cost nothing but the arrays.
        let (reply_tx, reply_rx): (Vec<Sender<u64>>, Vec<Receiver<u64>>) =
            (0..callers).map(|_| bounded(WINDOW_PER_WORKER * workers)).unzip();
        let ready = Arc::new(Barrier::new(workers + 1));
        let mut senders = Vec::with_capacity(workers);
        let mut joins = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = bounded::<Msg>(WINDOW_PER_WORKER * workers * callers.max(1) + 1);
            let replies = reply_tx.clone();
            let ready = ready.clone();
            let join = thread::Builder::new()
                .name(format!("actor-{i}"))
                .spawn(move || {
                    if pin {
                        place::pin_current(place::worker_core(i));
                    } else {
                        place::unpin_current();
                    }
                    ready.wait();
                    let serve = |msg: Msg| match msg {
                        Msg::Ping { id, caller } => {
                            let _ = replies[caller as usize].send(id);
                            true
                        }
                        Msg::Stop => false,
                    };
                    // Block for one message, then take every other one
                    // already queued without blocking.
                    'serve: while let Ok(msg) = rx.recv() {
                        if !serve(msg) {
                            break;
                        }
                        for msg in rx.try_iter() {
                            if !serve(msg) {
                                break 'serve;
                            }
                        }
                    }
                })
                .expect("spawn an actor");
            senders.push(tx);
            joins.push(join);
        }
        ready.wait();
        let clients = reply_rx
            .into_iter()
            .enumerate()
            .map(|(index, replies)| ActorClient { senders: senders.clone(), replies, index: index as u32 })
            .collect();
        (ActorPool { senders, joins }, clients)
    }
}

impl Drop for ActorPool {
    fn drop(&mut self) {
        for s in &self.senders {
            let _ = s.send(Msg::Stop);
        }
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
    }
}

impl ActorClient {
    #[inline]
    fn send(&self, id: u64) {
        let actor = (id % self.senders.len() as u64) as usize;
        self.senders[actor].send(Msg::Ping { id, caller: self.index }).expect("an actor is running");
    }

    /// One round trip.
    #[inline]
    pub fn call(&self, id: u64) -> u64 {
        self.send(id);
        self.replies.recv().expect("an actor answers")
    }

    /// `n` requests to `first..first + n`, at most
    /// [`WINDOW_PER_WORKER`] per actor in flight, refilled once half the
    /// window has drained (as shardpool's batches are); returns the xor of
    /// the answers.
    pub fn batch(&self, first: u64, n: u64) -> u64 {
        let window = (WINDOW_PER_WORKER * self.senders.len()) as u64;
        let (mut sent, mut got, mut acc) = (0u64, 0u64, 0u64);
        while got < n {
            if sent - got <= window / 2 {
                while sent < n && sent - got < window {
                    self.send(first + sent);
                    sent += 1;
                }
            }
            acc ^= self.replies.recv().expect("an actor answers");
            got += 1;
            for v in self.replies.try_iter() {
                acc ^= v;
                got += 1;
            }
        }
        acc
    }
}
