//! [`SenderAndReceiverMock`]: a stand-in for a pool in tests.
//!
//! Code that talks to a pool through [`SenderAndReceiver`] can be handed a
//! mock instead: it answers from a script of canned responses, optionally
//! checks each request against the one the script expects, and tells at
//! the end whether the script was played out. No thread is started.

use crate::error::Error;
use crate::item::{AddResponse, Message, PoolItem, RemoveResponse, Reply, Request};
use crate::sender::SenderAndReceiver;
use std::collections::VecDeque;
use std::fmt;
use std::fmt::Debug;
// A std mutex, not the `sync` shim's: the mock is for tests, never modelled
// under loom.
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Checks an actual request against the expected one: `Err` says how they
/// differ.
type Check<P> = Box<dyn Fn(&Message<P>) -> Result<(), String> + Send>;

/// One step of the script: what to answer, and what request to expect.
struct Step<P: PoolItem> {
    expected: Option<(String, Check<P>)>,
    outcome: Result<Reply<P>, Error>,
}

struct State<P: PoolItem> {
    steps: VecDeque<Step<P>>,
    calls: usize,
    failures: Vec<String>,
}

/// A scripted stand-in for a [`ThreadPool`](crate::ThreadPool): it answers
/// each request with the next canned response, in order, and can check the
/// requests against expected ones.
///
/// - [`respond`](Self::respond) / [`respond_err`](Self::respond_err) queue
///   an answer for whatever request comes next;
/// - [`expect`](Self::expect) / [`expect_err`](Self::expect_err) queue an
///   answer for the request given, which the next request must equal;
/// - [`assert_complete`](Self::assert_complete) checks that every step was
///   used and that no request went wrong.
///
/// A request that does not match, or that finds the script used up, makes
/// the call panic (and is recorded, so that `assert_complete` fails too
/// when the panic was caught, for instance by the worker of a parent pool).
/// A canned reply of the wrong kind for its request is answered, as by a
/// pool, with [`Error::UnexpectedResponse`].
///
/// The mock is `Send + Sync` (its script sits behind a mutex), so it can be
/// shared through an `Arc` with items on other threads. Unlike a pool, it
/// answers a whole batch when [`send_and_receive`](SenderAndReceiver::send_and_receive)
/// is called, not as the responses are read.
///
/// ```
/// use shardpool_samples::{MeanRequest, MeanResponse, Randoms};
/// use shardpool::{Error, SenderAndReceiver, SenderAndReceiverMock};
///
/// // Canned answers, requests unchecked.
/// let mock = SenderAndReceiverMock::<Randoms>::new()
///     .respond(MeanResponse { id: 1, mean: 7 })
///     .respond_err(Error::UnknownId { id: 2 });
/// let means: Vec<_> = mock.send_and_receive([1, 2].map(MeanRequest))?.collect();
/// assert_eq!(means, [Ok(MeanResponse { id: 1, mean: 7 }), Err(Error::UnknownId { id: 2 })]);
/// mock.assert_complete();
/// # Ok::<(), Error>(())
/// ```
///
/// # Testing an item that owns a child pool
///
/// Make the item generic over its child pool, `S: SenderAndReceiver<Child>`
/// (a [`ThreadPool`](crate::ThreadPool) in production). A test then builds
/// the item directly around a mock (no pool, no worker, no thread) and
/// calls its methods. Here the item is `RandomsBatch`, from the workspace
/// crate `shardpool-samples`, which creates its
/// children when built, asks them for their sums, and removes them when
/// dropped:
///
/// ```
/// use shardpool_samples::{RandomsBatch, RandomsBatchInit, RandomsInit, SumRequest, SumResponse};
/// use shardpool::{AddRequest, AddResponse, IdProvider, RemoveRequest, RemoveResponse, SenderAndReceiverMock};
/// use std::sync::Arc;
///
/// let add = |id| AddRequest::new(id, RandomsInit { count: 10 });
/// let children = Arc::new(
///     SenderAndReceiverMock::new()
///         .expect(add(100), AddResponse { id: 100 })
///         .expect(add(101), AddResponse { id: 101 })
///         .expect(SumRequest(100), SumResponse { id: 100, sum: 30 })
///         .expect(SumRequest(101), SumResponse { id: 101, sum: 12 })
///         .expect(RemoveRequest(100), RemoveResponse { id: 100, existed: true })
///         .expect(RemoveRequest(101), RemoveResponse { id: 101, existed: true }),
/// );
/// let init = RandomsBatchInit {
///     children: 2,
///     numbers: 10,
///     ids: Arc::new(IdProvider::new(100)),
///     pool: Arc::clone(&children),
///     shutdown_reports: None,
/// };
/// let batch = RandomsBatch::new(7, init)?;
/// assert_eq!(batch.sum_of_sums()?, 42);
/// drop(batch);
/// children.assert_complete();
/// # Ok::<(), shardpool::Error>(())
/// ```
///
/// `tests/mock.rs` goes on to failures and to a mock serving a real parent
/// pool's workers; `examples/mocking.rs` prints each step.
pub struct SenderAndReceiverMock<P: PoolItem> {
    state: Mutex<State<P>>,
}

impl<P: PoolItem> SenderAndReceiverMock<P> {
    /// A mock with an empty script.
    ///
    /// ```
    /// use shardpool::SenderAndReceiverMock;
    /// use shardpool_samples::Randoms;
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::new();
    /// assert!(mock.is_complete());
    /// ```
    pub fn new() -> Self {
        Self { state: Mutex::new(State { steps: VecDeque::new(), calls: 0, failures: Vec::new() }) }
    }

    /// A mock that answers with `responses`, in order, whatever the requests
    /// (messaging_thread_pool's `SenderAndReceiverMock::new`).
    ///
    /// ```
    /// use shardpool_samples::{Randoms, SumRequest, SumResponse};
    /// use shardpool::{SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::with_responses([
    ///     SumResponse { id: 1, sum: 2 },
    ///     SumResponse { id: 3, sum: 4 },
    /// ]);
    /// let sums: u128 = mock.send_and_receive([1, 3].map(SumRequest))?.map(|s| s.unwrap().sum).sum();
    /// assert_eq!(sums, 6);
    /// # Ok::<(), shardpool::Error>(())
    /// ```
    pub fn with_responses<T: Into<Reply<P>>>(responses: impl IntoIterator<Item = T>) -> Self {
        responses.into_iter().fold(Self::new(), Self::respond)
    }

    /// A mock that expects `requests`, in order, and answers them with
    /// `responses` (messaging_thread_pool's
    /// `SenderAndReceiverMock::new_with_expected_requests`).
    ///
    /// # Panics
    ///
    /// If the two lists differ in length.
    ///
    /// ```
    /// use shardpool_samples::{Randoms, SumRequest, SumResponse};
    /// use shardpool::{SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::with_expected_requests(
    ///     [SumRequest(1)],
    ///     [SumResponse { id: 1, sum: 2 }],
    /// );
    /// assert_eq!(mock.send_and_receive_once(SumRequest(1))?.sum, 2);
    /// mock.assert_complete();
    /// # Ok::<(), shardpool::Error>(())
    /// ```
    pub fn with_expected_requests<R, T>(
        requests: impl IntoIterator<Item = R>,
        responses: impl IntoIterator<Item = T>,
    ) -> Self
    where
        R: Request<P>,
        T: Into<Reply<P>>,
        P::Api: PartialEq + Debug,
    {
        let requests: Vec<R> = requests.into_iter().collect();
        let responses: Vec<T> = responses.into_iter().collect();
        assert_eq!(
            requests.len(),
            responses.len(),
            "with_expected_requests needs one response for each expected request"
        );
        requests.into_iter().zip(responses).fold(Self::new(), |mock, (req, resp)| mock.expect(req, resp))
    }

    /// Queues `reply` as the answer to the next request, whatever it is.
    ///
    /// ```
    /// use shardpool_samples::{MeanRequest, MeanResponse, Randoms};
    /// use shardpool::{SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::new().respond(MeanResponse { id: 5, mean: 1 });
    /// assert_eq!(mock.send_and_receive_once(MeanRequest(5))?.mean, 1);
    /// # Ok::<(), shardpool::Error>(())
    /// ```
    pub fn respond(self, reply: impl Into<Reply<P>>) -> Self {
        self.push(Step { expected: None, outcome: Ok(reply.into()) })
    }

    /// Queues `error` as the answer to the next request, whatever it is.
    ///
    /// ```
    /// use shardpool_samples::{MeanRequest, Randoms};
    /// use shardpool::{Error, SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::new().respond_err(Error::UnknownId { id: 5 });
    /// assert_eq!(mock.send_and_receive_once(MeanRequest(5)), Err(Error::UnknownId { id: 5 }));
    /// ```
    pub fn respond_err(self, error: Error) -> Self {
        self.push(Step { expected: None, outcome: Err(error) })
    }

    /// Queues a step: the next request must equal `request`, and is answered
    /// with `reply`.
    ///
    /// Calls compare their request values (`P::Api: PartialEq`); adds and
    /// removes compare their kind and id (init data often holds handles
    /// with no `PartialEq`, so it is not compared).
    ///
    /// ```
    /// use shardpool_samples::{Randoms, RandomsInit, SumRequest, SumResponse};
    /// use shardpool::{AddRequest, AddResponse, SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::new()
    ///     .expect(AddRequest::new(1, RandomsInit { count: 3 }), AddResponse { id: 1 })
    ///     .expect(SumRequest(1), SumResponse { id: 1, sum: 9 });
    /// mock.send_and_receive_once(AddRequest::new(1, RandomsInit { count: 3 }))?;
    /// assert_eq!(mock.send_and_receive_once(SumRequest(1))?.sum, 9);
    /// mock.assert_complete();
    /// # Ok::<(), shardpool::Error>(())
    /// ```
    pub fn expect<R: Request<P>>(self, request: R, reply: impl Into<Reply<P>>) -> Self
    where
        P::Api: PartialEq + Debug,
    {
        let expected = expectation(request.into_message());
        self.push(Step { expected: Some(expected), outcome: Ok(reply.into()) })
    }

    /// Queues a step: the next request must equal `request`, and is answered
    /// with `error`. See [`expect`](Self::expect) for how requests compare.
    ///
    /// ```
    /// use shardpool_samples::{MeanRequest, Randoms};
    /// use shardpool::{Error, SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::new()
    ///     .expect_err(MeanRequest(4), Error::Panicked { id: 4, message: "boom".into() });
    /// assert!(matches!(mock.send_and_receive_once(MeanRequest(4)), Err(Error::Panicked { id: 4, .. })));
    /// mock.assert_complete();
    /// ```
    pub fn expect_err<R: Request<P>>(self, request: R, error: Error) -> Self
    where
        P::Api: PartialEq + Debug,
    {
        let expected = expectation(request.into_message());
        self.push(Step { expected: Some(expected), outcome: Err(error) })
    }

    fn push(self, step: Step<P>) -> Self {
        self.lock().steps.push_back(step);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State<P>> {
        // A panic while the lock is held leaves the script consistent (each
        // step is popped whole), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many requests the mock has received.
    ///
    /// ```
    /// use shardpool_samples::{MeanRequest, MeanResponse, Randoms};
    /// use shardpool::{SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::with_responses([MeanResponse { id: 1, mean: 0 }]);
    /// assert_eq!(mock.calls(), 0);
    /// mock.send_and_receive_once(MeanRequest(1))?;
    /// assert_eq!(mock.calls(), 1);
    /// # Ok::<(), shardpool::Error>(())
    /// ```
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// Whether any request has been received.
    ///
    /// ```
    /// use shardpool::SenderAndReceiverMock;
    /// use shardpool_samples::Randoms;
    ///
    /// assert!(!SenderAndReceiverMock::<Randoms>::new().was_called());
    /// ```
    pub fn was_called(&self) -> bool {
        self.calls() > 0
    }

    /// How many steps of the script are still to be used.
    ///
    /// ```
    /// use shardpool_samples::{MeanResponse, Randoms};
    /// use shardpool::SenderAndReceiverMock;
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::with_responses([MeanResponse { id: 1, mean: 0 }]);
    /// assert_eq!(mock.remaining(), 1);
    /// ```
    pub fn remaining(&self) -> usize {
        self.lock().steps.len()
    }

    /// Whether every step has been used and no request went wrong.
    ///
    /// ```
    /// use shardpool_samples::{MeanRequest, MeanResponse, Randoms};
    /// use shardpool::{SenderAndReceiver, SenderAndReceiverMock};
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::with_responses([MeanResponse { id: 1, mean: 0 }]);
    /// assert!(!mock.is_complete());
    /// mock.send_and_receive_once(MeanRequest(1))?;
    /// assert!(mock.is_complete());
    /// # Ok::<(), shardpool::Error>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        let state = self.lock();
        state.steps.is_empty() && state.failures.is_empty()
    }

    /// Checks that every step has been used and that no request went wrong.
    ///
    /// # Panics
    ///
    /// Listing the steps left and the requests that went wrong, if any.
    ///
    /// ```should_panic
    /// use shardpool_samples::{SumRequest, SumResponse, Randoms};
    /// use shardpool::SenderAndReceiverMock;
    ///
    /// let mock = SenderAndReceiverMock::<Randoms>::new().expect(SumRequest(1), SumResponse { id: 1, sum: 0 });
    /// mock.assert_complete(); // panics: the expected call never came
    /// ```
    #[track_caller]
    pub fn assert_complete(&self) {
        let state = self.lock();
        if state.steps.is_empty() && state.failures.is_empty() {
            return;
        }
        let mut report = String::from("the mock's script was not played out as expected:");
        for failure in &state.failures {
            report.push_str("\n  - ");
            report.push_str(failure);
        }
        for (i, step) in state.steps.iter().enumerate() {
            let n = state.calls + i + 1;
            match &step.expected {
                Some((what, _)) => {
                    report.push_str(&format!("\n  - request #{n} never came: expected {what}"))
                }
                None => report.push_str(&format!("\n  - request #{n} never came: a canned answer is unused")),
            }
        }
        drop(state);
        panic!("{report}");
    }

    /// Plays the next step of the script for one request.
    fn answer<R: Request<P>>(&self, request: R) -> Result<R::Response, Error> {
        let message = request.into_message();
        let id = message.id();
        let mut state = self.lock();
        state.calls += 1;
        let n = state.calls;
        let Some(step) = state.steps.pop_front() else {
            let failure = format!("request #{n} (to item {id}) came after the script was used up");
            state.failures.push(failure.clone());
            drop(state);
            panic!("{failure}");
        };
        if let Some((_, check)) = &step.expected {
            if let Err(why) = check(&message) {
                let failure = format!("request #{n} {why}");
                state.failures.push(failure.clone());
                drop(state);
                panic!("{failure}");
            }
        }
        drop(state);
        R::from_reply(step.outcome?).ok_or(Error::UnexpectedResponse { id })
    }
}

/// How an expected message is described, and the check that compares a
/// request with it.
fn expectation<P: PoolItem>(expected: Message<P>) -> (String, Check<P>)
where
    P::Api: PartialEq + Debug,
{
    let what = describe(&expected);
    let check = Box::new(move |actual: &Message<P>| {
        let same = match (&expected, actual) {
            (Message::Add { id: a, .. }, Message::Add { id: b, .. }) => a == b,
            (Message::Remove { id: a }, Message::Remove { id: b }) => a == b,
            (Message::Call { id: a, request: x }, Message::Call { id: b, request: y }) => a == b && x == y,
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(format!("was {}, but {} was expected", describe(actual), describe(&expected)))
        }
    });
    (what, check)
}

fn describe<P: PoolItem>(message: &Message<P>) -> String
where
    P::Api: Debug,
{
    match message {
        Message::Add { id, .. } => format!("an add of item {id}"),
        Message::Remove { id } => format!("a remove of item {id}"),
        Message::Call { id, request } => format!("a call to item {id}: {request:?}"),
    }
}

impl<P: PoolItem> SenderAndReceiver<P> for SenderAndReceiverMock<P> {
    fn send_and_receive<R, I>(
        &self,
        requests: I,
    ) -> Result<impl Iterator<Item = Result<R::Response, Error>>, Error>
    where
        R: Request<P>,
        I: IntoIterator<Item = R>,
    {
        let answers: Vec<_> = requests.into_iter().map(|r| self.answer(r)).collect();
        Ok(answers.into_iter())
    }

    fn send_and_receive_once<R: Request<P>>(&self, request: R) -> Result<R::Response, Error> {
        self.answer(request)
    }
}

impl<P: PoolItem> Default for SenderAndReceiverMock<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: PoolItem> fmt::Debug for SenderAndReceiverMock<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SenderAndReceiverMock")
            .field("calls", &state.calls)
            .field("remaining", &state.steps.len())
            .field("failures", &state.failures)
            .finish()
    }
}

/// A canned answer to an [`AddRequest`](crate::AddRequest).
///
/// ```
/// use shardpool::{AddResponse, Reply};
/// use shardpool_samples::Randoms;
///
/// assert!(matches!(Reply::<Randoms>::from(AddResponse { id: 3 }), Reply::Added { id: 3 }));
/// ```
impl<P: PoolItem> From<AddResponse> for Reply<P> {
    fn from(r: AddResponse) -> Self {
        Reply::Added { id: r.id }
    }
}

/// A canned answer to a [`RemoveRequest`](crate::RemoveRequest).
///
/// ```
/// use shardpool::{RemoveResponse, Reply};
/// use shardpool_samples::Randoms;
///
/// let reply = Reply::<Randoms>::from(RemoveResponse { id: 3, existed: true });
/// assert!(matches!(reply, Reply::Removed { id: 3, existed: true }));
/// ```
impl<P: PoolItem> From<RemoveResponse> for Reply<P> {
    fn from(r: RemoveResponse) -> Self {
        Reply::Removed { id: r.id, existed: r.existed }
    }
}
