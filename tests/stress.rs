//! Many callers, many ids, random operations, every response checked against
//! a sequential model; and thousands of short-lived caller threads.

mod common;

use common::*;
use shardpool::{AddRequest, Error, Pinning, RemoveRequest, ThreadPool};
use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

const CALLERS: u64 = 4;
const IDS_PER_CALLER: u64 = 24;
const OPS: usize = 3000;

/// One operation and the response the model predicts for it.
enum Op {
    Add(u64, i64),
    Remove(u64),
    AddTo(u64, i64),
    Get(u64),
}

/// What the pool answered, reduced to what the model predicts.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Outcome {
    Added,
    Removed(bool),
    Value(i64),
    Err(Error),
}

fn model_apply(model: &mut HashMap<u64, i64>, op: &Op) -> Outcome {
    match *op {
        Op::Add(id, v) => match model.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => Outcome::Err(Error::DuplicateId { id }),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(v);
                Outcome::Added
            }
        },
        Op::Remove(id) => Outcome::Removed(model.remove(&id).is_some()),
        Op::AddTo(id, d) => match model.get_mut(&id) {
            Some(v) => {
                *v += d;
                Outcome::Value(*v)
            }
            None => Outcome::Err(Error::UnknownId { id }),
        },
        Op::Get(id) => match model.get(&id) {
            Some(v) => Outcome::Value(*v),
            None => Outcome::Err(Error::UnknownId { id }),
        },
    }
}

fn send_one(pool: &ThreadPool<Node>, op: &Op) -> Outcome {
    let r = match *op {
        Op::Add(id, v) => {
            pool.send_and_receive_once(AddRequest::new(id, NodeInit::value(v))).map(|_| Outcome::Added)
        }
        Op::Remove(id) => pool.send_and_receive_once(RemoveRequest(id)).map(|r| Outcome::Removed(r.existed)),
        Op::AddTo(id, d) => pool.send_and_receive_once(AddTo(id, d)).map(Outcome::Value),
        Op::Get(id) => pool.send_and_receive_once(Get(id)).map(Outcome::Value),
    };
    r.unwrap_or_else(Outcome::Err)
}

/// Sends a run of same-kind operations as one batch.
fn send_batch(pool: &ThreadPool<Node>, ops: &[Op]) -> Vec<Outcome> {
    let err = |r: Result<Outcome, Error>| r.unwrap_or_else(Outcome::Err);
    match ops[0] {
        Op::Add(..) => pool
            .send_and_receive(ops.iter().map(|op| match *op {
                Op::Add(id, v) => AddRequest::new(id, NodeInit::value(v)),
                _ => unreachable!(),
            }))
            .unwrap()
            .map(|r| err(r.map(|_| Outcome::Added)))
            .collect(),
        Op::Remove(..) => pool
            .send_and_receive(ops.iter().map(|op| match *op {
                Op::Remove(id) => RemoveRequest(id),
                _ => unreachable!(),
            }))
            .unwrap()
            .map(|r| err(r.map(|r| Outcome::Removed(r.existed))))
            .collect(),
        Op::AddTo(..) => pool
            .send_and_receive(ops.iter().map(|op| match *op {
                Op::AddTo(id, d) => AddTo(id, d),
                _ => unreachable!(),
            }))
            .unwrap()
            .map(|r| err(r.map(Outcome::Value)))
            .collect(),
        Op::Get(..) => pool
            .send_and_receive(ops.iter().map(|op| match *op {
                Op::Get(id) => Get(id),
                _ => unreachable!(),
            }))
            .unwrap()
            .map(|r| err(r.map(Outcome::Value)))
            .collect(),
    }
}

fn random_op(rng: &mut Rng, kind: u64, t: u64) -> Op {
    // Each caller owns the ids congruent to its index, so its sequential
    // model is exact while the callers race on the workers.
    let id = rng.below(IDS_PER_CALLER) * CALLERS + t;
    let v = rng.below(1000) as i64 - 500;
    match kind {
        0 => Op::Add(id, v),
        1 => Op::Remove(id),
        2 => Op::AddTo(id, v),
        _ => Op::Get(id),
    }
}

#[test]
fn random_operations_from_many_callers_match_a_sequential_model() {
    for (workers, ring) in [(1, 4), (2, 16), (3, 256)] {
        let pool = Arc::new(
            ThreadPool::<Node>::builder()
                .workers(workers)
                .ring_capacity(ring)
                .pinning(Pinning::Off)
                .build()
                .unwrap(),
        );
        let start = Arc::new(Barrier::new(CALLERS as usize));
        let callers: Vec<_> = (0..CALLERS)
            .map(|t| {
                let (pool, start) = (pool.clone(), start.clone());
                thread::spawn(move || {
                    let mut rng = Rng(0x9E37_79B9 + t * 7919 + workers as u64);
                    let mut model = HashMap::new();
                    let (mut done, mut mismatches) = (0, 0);
                    start.wait();
                    while done < OPS {
                        let kind = rng.below(4);
                        let run = if rng.below(3) == 0 { 1 } else { 1 + rng.below(40) as usize };
                        let ops: Vec<Op> = (0..run).map(|_| random_op(&mut rng, kind, t)).collect();
                        let got =
                            if run == 1 { vec![send_one(&pool, &ops[0])] } else { send_batch(&pool, &ops) };
                        assert_eq!(got.len(), ops.len(), "a batch lost responses");
                        for (op, got) in ops.iter().zip(got) {
                            if model_apply(&mut model, op) != got {
                                mismatches += 1;
                            }
                        }
                        done += run;
                    }
                    // The final state matches the model, item by item.
                    for id in (0..IDS_PER_CALLER).map(|i| i * CALLERS + t) {
                        let want = model
                            .get(&id)
                            .copied()
                            .map_or(Outcome::Err(Error::UnknownId { id }), Outcome::Value);
                        if send_one(&pool, &Op::Get(id)) != want {
                            mismatches += 1;
                        }
                    }
                    mismatches
                })
            })
            .collect();
        let mismatches: usize = callers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(mismatches, 0, "{workers} workers, ring {ring}");
    }
}

#[test]
fn thousands_of_short_lived_caller_threads_leave_nothing_behind() {
    let pool = Arc::new(ThreadPool::<Node>::builder().workers(2).pinning(Pinning::Off).build().unwrap());
    for r in pool.send_and_receive((0..8).map(|id| AddRequest::new(id, NodeInit::value(0)))).unwrap() {
        r.unwrap();
    }
    let baseline = pool.stats().callers;
    assert_eq!(baseline, 1);
    let mut peak_lanes = 0;
    for wave in 0..250u64 {
        let threads: Vec<_> = (0..8u64)
            .map(|k| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let id = (wave + k) % 8;
                    if k % 2 == 0 {
                        pool.send_and_receive_once(AddTo(id, 1)).unwrap();
                    } else {
                        let got: Vec<_> = pool.send_and_receive([AddTo(id, 1)]).unwrap().collect();
                        got[0].as_ref().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        peak_lanes = peak_lanes.max(pool.stats().callers);
    }
    // 2000 threads came and went; their rings and slots are reclaimed.
    assert!(eventually(|| pool.stats().callers == baseline), "callers left: {:?}", pool.stats());
    assert!(eventually(|| pool.stats().workers.iter().all(|w| w.callers == 1)));
    assert!(peak_lanes < 2000, "lanes are reclaimed as threads exit, not only at the end");
    let total: i64 = (0..8).map(|id| pool.send_and_receive_once(Get(id)).unwrap()).sum();
    assert_eq!(total, 2000, "every call of every thread was applied once");
}
