//! `UserSession`: an item whose state is not `Send`.

use shardpool::pool_item;
use std::cell::RefCell;
use std::rc::Rc;

/// A helper that shares the session's log through an `Rc<RefCell<..>>`:
/// no lock, because the session and its helper never leave their worker.
#[derive(Debug, Clone)]
pub struct HistoryTracker {
    log: Rc<RefCell<Vec<String>>>,
}

impl HistoryTracker {
    /// Appends an entry to the shared log.
    pub fn record(&self, entry: String) {
        self.log.borrow_mut().push(entry);
    }
}

/// A user's session, logging their actions. Neither `Send` nor `Sync`: it
/// and its [`HistoryTracker`] share the log through an `Rc<RefCell<..>>`.
/// The pool builds it on its worker and keeps it there; only the requests
/// and responses cross threads.
///
/// ```
/// use shardpool_samples::{LogActionRequest, LogRequest, UserSession, UserSessionInit};
/// use shardpool::ThreadPool;
///
/// let pool = ThreadPool::<UserSession>::new(2)?;
/// pool.send_and_receive_once(UserSessionInit(1))?;
/// let counts: Vec<usize> = pool
///     .send_and_receive(["login", "view", "logout"].map(|a| LogActionRequest(1, a.to_owned())))?
///     .collect_all::<Vec<_>>()?
///     .into_iter()
///     .map(|r| r.result)
///     .collect();
/// assert_eq!(counts, [1, 2, 3]);
/// let log = pool.send_and_receive_once(LogRequest(1))?.result;
/// assert_eq!(log, ["action: login", "action: view", "action: logout"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The session is indeed not `Send`:
///
/// ```compile_fail,E0277
/// use shardpool_samples::UserSession;
///
/// fn send<T: Send>(_: T) {}
/// send(UserSession::new(1)); // error: `Rc<RefCell<Vec<String>>>` cannot be sent between threads
/// ```
///
/// A request, unlike the item, must be `Send`; one carrying an `Rc` is
/// rejected:
///
/// ```compile_fail,E0277
/// use shardpool_samples::UserSession;
/// use shardpool::{Message, Reply, Request};
/// use std::rc::Rc;
///
/// struct Shout(Rc<String>);
///
/// // error: `Rc<String>` cannot be sent between threads safely
/// impl Request<UserSession> for Shout {
///     type Response = ();
///     fn into_message(self) -> Message<UserSession> {
///         unimplemented!()
///     }
///     fn from_reply(_: Reply<UserSession>) -> Option<()> {
///         None
///     }
/// }
/// ```
#[derive(Debug)]
pub struct UserSession {
    log: Rc<RefCell<Vec<String>>>,
    tracker: HistoryTracker,
}

#[pool_item]
impl UserSession {
    /// A session with an empty log.
    pub fn new(_id: u64) -> Self {
        let log = Rc::new(RefCell::new(Vec::new()));
        let tracker = HistoryTracker { log: Rc::clone(&log) };
        Self { log, tracker }
    }

    /// Logs an action (through the helper); returns the log's length.
    #[messaging(LogActionRequest, LogActionResponse)]
    pub fn log_action(&self, action: String) -> usize {
        self.tracker.record(format!("action: {action}"));
        self.log.borrow().len()
    }

    /// The whole log, oldest entry first.
    #[messaging(LogRequest, LogResponse)]
    pub fn log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}
