//! An item whose state is not `Send`: each `UserSession` shares its log with
//! a helper through an `Rc<RefCell<..>>`. The pool builds each session on
//! its worker and keeps it there, so no lock is needed; only requests and
//! responses cross threads.
//!
//! Run with `cargo run --example rc_state`.

use shardpool::ThreadPool;
use shardpool_samples::{LogActionRequest, LogRequest, UserSession, UserSessionInit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::<UserSession>::new(2)?;
    pool.send_and_receive([1, 2].map(UserSessionInit))?.collect_all::<Vec<_>>()?;
    println!("started sessions 1 and 2");

    // Requests to one session are handled in the order they were sent.
    let actions = [(1, "login"), (2, "login"), (1, "view profile"), (1, "logout"), (2, "search")];
    for response in pool.send_and_receive(actions.map(|(id, a)| LogActionRequest(id, a.to_owned())))? {
        let response = response?;
        println!("session {} has logged {} actions", response.id, response.result);
    }

    for id in [1, 2] {
        let log = pool.send_and_receive_once(LogRequest(id))?.result;
        println!("session {id}: {log:?}");
    }
    pool.shutdown()?;
    println!("shut down");
    Ok(())
}
