//! The smallest readable item: a chat room written with `#[pool_item]`.
//! Creates a few rooms, posts to them from several threads at once, and
//! prints each room's history.
//!
//! Run with `cargo run --example chat_room`.

use shardpool::ThreadPool;
use shardpool_samples::{ChatRoom, ChatRoomInit, HistoryRequest, PostRequest};
use std::sync::Arc;

const ROOMS: u64 = 3;
const USERS: [&str; 3] = ["ann", "bob", "cat"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Arc::new(ThreadPool::<ChatRoom>::new(2)?);
    pool.send_and_receive((0..ROOMS).map(ChatRoomInit))?.collect_all::<Vec<_>>()?;
    println!("opened {ROOMS} rooms on {} workers", pool.thread_count());

    // Each user posts twice to every room, all users at once. A room sees
    // each user's posts in the order that user sent them.
    let users: Vec<_> = USERS
        .iter()
        .map(|&user| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || -> Result<(), shardpool::Error> {
                for n in 1..=2 {
                    let posts =
                        (0..ROOMS).map(|room| PostRequest(room, user.to_owned(), format!("post {n}")));
                    pool.send_and_receive(posts)?.collect_all::<Vec<_>>()?;
                }
                Ok(())
            })
        })
        .collect();
    for user in users {
        user.join().expect("a user thread panicked")?;
    }

    for room in 0..ROOMS {
        let history = pool.send_and_receive_once(HistoryRequest(room))?.result;
        println!("room {room}: {} lines", history.len());
        for line in &history {
            println!("  {line}");
        }
        assert_eq!(history.len(), USERS.len() * 2);
    }
    pool.shutdown()?;
    println!("shut down");
    Ok(())
}
