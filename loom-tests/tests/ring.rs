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
use shardpool::loom_api::{spsc, Consumer};

/// Takes `0..n` off the ring, yielding while it is empty; each value must
/// be the next one.
fn take_in_order(consumer: &mut Consumer<Box<u64>>, n: u64) {
    let mut expected = 0;
    while expected < n {
        match consumer.pop() {
            Some(v) => {
                assert_eq!(*v, expected);
                expected += 1;
            }
            None => thread::yield_now(),
        }
    }
}

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
        take_in_order(&mut consumer, 5);
        sender.join().unwrap();
    });
}

/// A ring of six cells: the producer fills five, then pushes a pair while
/// the consumer takes the first values. Looking half a ring ahead fails
/// until the consumer has taken two, and the pair then needs only the
/// consumer's first take (the near look): each look must be at the last
/// cell it vouches for, whichever of the two answers.
#[test]
fn a_pair_pushed_while_the_ring_drains_waits_for_its_last_cell() {
    check(Preemptions::Unbounded, || {
        let (mut producer, mut consumer) = spsc::<Box<u64>>(6);
        let sender = thread::spawn(move || {
            for v in 0..5 {
                assert!(producer.push(Box::new(v)).is_ok(), "five of six cells are free");
            }
            let mut pair = (Box::new(5), Box::new(6));
            while let Err(back) = producer.push_pair(pair.0, pair.1) {
                pair = back;
                thread::yield_now();
            }
        });
        take_in_order(&mut consumer, 7);
        sender.join().unwrap();
    });
}
