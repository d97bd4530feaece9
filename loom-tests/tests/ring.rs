//! Model 0: the request ring itself (`src/sync/ring.rs`): cells whose
//! sequence words say whether they are full, with no shared index.
//!
//! The pool's models go through the ring too, but there a cell is reused
//! only after its request's reply came back (the caller's window), which
//! orders the reuse by itself. Here a producer laps a ring of two cells
//! with no reply at all, so the ring's own hand-offs are all that orders
//! the producer's writes after the consumer's reads: loom reports a
//! causality violation on the cell if either side's Release is weakened.
#![cfg(shardpool_loom)]

use loom::thread;
use loom_tests::{check, Preemptions};
use shardpool::loom_api::spsc;

/// Values `0..5`, the middle two as a pair published together, through a
/// ring of two cells: every cell is reused, and the pair needs both cells
/// free at once. The consumer must get them all, in order.
#[test]
fn a_producer_lapping_a_ring_of_two_hands_every_value_over_in_order() {
    check(Preemptions::Unbounded, || {
        let (mut producer, mut consumer) = spsc::<Box<u64>>(2);
        let sender = thread::spawn(move || {
            let mut next = 0;
            while next < 5 {
                let pushed = if next == 2 {
                    producer.push_pair(Box::new(2), Box::new(3)).map(|()| 2).ok()
                } else {
                    producer.push(Box::new(next)).map(|()| 1).ok()
                };
                match pushed {
                    Some(k) => next += k,
                    None => thread::yield_now(),
                }
            }
        });
        let mut expected = 0;
        while expected < 5 {
            match consumer.pop() {
                Some(v) => {
                    assert_eq!(*v, expected);
                    expected += 1;
                }
                None => thread::yield_now(),
            }
        }
        sender.join().unwrap();
    });
}
