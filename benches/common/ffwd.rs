//! An ffwd-style delegation baseline (Roghanchi, Eriksson and Basu, "ffwd:
//! delegation is (much) faster than you think", SOSP 2017): the best-known
//! design for many clients and one server thread per shard.
//!
//! - Each client owns one request line per server (a cache line the client
//!   writes and the server polls): an argument and a sequence number.
//! - A server sweeps the request lines of a group of clients, serves every
//!   new request, and writes the group's answers into the group's one
//!   shared response line, back to back: the line crosses to the clients
//!   once per sweep, not once per answer.
//! - A client spins (yielding every few looks) on its slot of its group's
//!   response line for its sequence number.
//!
//! This follows ffwd's design with 16-byte answers (four clients a line,
//! where ffwd packs about fifteen); it is not the paper's code.
//!
//! Servers never sleep: like the rtrb pair, this burns a core per server for
//! as long as it runs. ffwd assumes a server has its core to itself; where
//! clients outnumber cores (as on the 2-core machine here), a server yields
//! after every sweep that found nothing, so that the clients get to run.
//! The work is the bench's trivial echo.

use super::place;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};

/// A waiting client yields every this many looks, far more often than the
/// other baselines' `YIELD_EVERY`: clients outnumber the cores here, and a
/// server never sleeps, so it may be waiting for this very core. (With
/// `YIELD_EVERY` this baseline did about 9-18 k round trips/s on 2 cores.)
const CLIENT_YIELD_EVERY: u32 = 16;

/// Clients per response line: each has a sequence number and an answer,
/// 16 bytes, so four fill a 64-byte line.
const GROUP: usize = 4;

/// What a client writes: an argument, published by a new sequence number.
#[derive(Default)]
struct RequestLine {
    seq: AtomicU64,
    arg: AtomicU64,
}

/// One client's answer in a response line.
#[derive(Default)]
struct Answer {
    seq: AtomicU64,
    value: AtomicU64,
}

/// The answers of one group of clients, written by the server in one sweep.
#[derive(Default)]
struct ResponseLine {
    answers: [Answer; GROUP],
}

/// One server's lines.
struct Shard {
    /// By client.
    requests: Vec<CachePadded<RequestLine>>,
    /// By group of clients, each padded as the request lines are.
    responses: Vec<CachePadded<ResponseLine>>,
}

/// The servers; dropping it stops and joins them.
pub struct FfwdPool {
    stop: Arc<AtomicBool>,
    joins: Vec<JoinHandle<()>>,
}

/// One client's ends; used by one thread at a time.
pub struct FfwdClient {
    shards: Vec<Arc<Shard>>,
    index: usize,
    /// The last sequence number sent, to any server (only this client's
    /// thread touches it; each server sees it grow).
    seq: AtomicU64,
}

impl FfwdPool {
    /// Starts `servers` server threads (server `i` pinned to
    /// [`place::worker_core(i)`](place::worker_core) when `pin`) for
    /// `clients` clients; returns once every server runs.
    pub fn start(servers: usize, clients: usize, pin: bool) -> (FfwdPool, Vec<FfwdClient>) {
        let groups = clients.div_ceil(GROUP);
        let shards: Vec<Arc<Shard>> = (0..servers)
            .map(|_| {
                Arc::new(Shard {
                    requests: (0..clients).map(|_| CachePadded::new(RequestLine::default())).collect(),
                    responses: (0..groups).map(|_| CachePadded::new(ResponseLine::default())).collect(),
                })
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(servers + 1));
        let joins = shards
            .iter()
            .enumerate()
            .map(|(i, shard)| {
                let (shard, stop, ready) = (shard.clone(), stop.clone(), ready.clone());
                thread::Builder::new()
                    .name(format!("ffwd-{i}"))
                    .spawn(move || {
                        if pin {
                            place::pin_current(place::worker_core(i));
                        } else {
                            place::unpin_current();
                        }
                        ready.wait();
                        serve(&shard, &stop);
                    })
                    .expect("spawn an ffwd server")
            })
            .collect();
        ready.wait();
        let clients = (0..clients)
            .map(|index| FfwdClient { shards: shards.clone(), index, seq: AtomicU64::new(0) })
            .collect();
        (FfwdPool { stop, joins }, clients)
    }
}

/// A server's loop: sweep the clients group by group; answer each group's
/// new requests with back-to-back stores into its response line.
fn serve(shard: &Shard, stop: &AtomicBool) {
    let clients = shard.requests.len();
    let mut seen = vec![0u64; clients];
    while !stop.load(Ordering::Relaxed) {
        let mut served = false;
        for (g, line) in shard.responses.iter().enumerate() {
            let first = g * GROUP;
            // First read the group's new requests and work out their
            // answers locally, then write them into the response line back
            // to back, so that the line goes to the clients once a sweep.
            let mut answers = [None; GROUP];
            for (k, slot) in answers.iter_mut().enumerate().take(clients - first) {
                let c = first + k;
                let request = &shard.requests[c];
                // Acquire: pairs with the client's Release store of `seq`,
                // so `arg` is the one that came with it.
                let seq = request.seq.load(Ordering::Acquire);
                if seq != seen[c] {
                    seen[c] = seq;
                    *slot = Some((seq, request.arg.load(Ordering::Relaxed)));
                }
            }
            for (answer, new) in line.answers.iter().zip(answers) {
                if let Some((seq, value)) = new {
                    answer.value.store(value, Ordering::Relaxed);
                    // Release: publishes `value` to the client's Acquire.
                    answer.seq.store(seq, Ordering::Release);
                    served = true;
                }
            }
        }
        // A sweep that found nothing gives the core away: on a machine
        // where clients outnumber cores they need it to send anything.
        if !served {
            thread::yield_now();
        }
    }
}

impl Drop for FfwdPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
    }
}

impl FfwdClient {
    /// One round trip to the server that owns `id`.
    #[inline]
    pub fn call(&self, id: u64) -> u64 {
        let s = (id % self.shards.len() as u64) as usize;
        let shard = &self.shards[s];
        let seq = self.seq.load(Ordering::Relaxed) + 1;
        self.seq.store(seq, Ordering::Relaxed);
        let request = &shard.requests[self.index];
        request.arg.store(id, Ordering::Relaxed);
        // Release: publishes `arg` to the server's Acquire load of `seq`.
        request.seq.store(seq, Ordering::Release);
        let answer = &shard.responses[self.index / GROUP].answers[self.index % GROUP];
        // Acquire: pairs with the server's Release store of the answer's seq.
        let mut looks = 0u32;
        while answer.seq.load(Ordering::Acquire) != seq {
            looks = looks.wrapping_add(1);
            if looks % CLIENT_YIELD_EVERY == 0 {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        answer.value.load(Ordering::Relaxed)
    }
}
