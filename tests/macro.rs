//! `#[pool_item]` end to end: every form of constructor, init data, hooks,
//! generics, derives, and generated paths that need no import.

use shardpool::{
    pool_item, AddRequest, AddResponse, Error, NewItemError, PoolItem, Reply, Request, ThreadPool,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

type Res = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------
// messaging_thread_pool's README example, ported: the item holds `Rc` state
// shared with a helper, and the whole item is the struct plus one impl.

#[derive(Clone)]
struct HistoryTracker {
    log: Rc<RefCell<Vec<String>>>,
}

struct UserSession {
    log: Rc<RefCell<Vec<String>>>,
    tracker: HistoryTracker,
}

#[pool_item]
impl UserSession {
    fn new(_id: u64) -> Self {
        let log = Rc::new(RefCell::new(Vec::new()));
        Self { tracker: HistoryTracker { log: log.clone() }, log }
    }

    #[messaging(LogActionRequest, LogActionResponse)]
    fn log_action(&self, action: String) -> usize {
        self.tracker.log.borrow_mut().push(format!("Action: {action}"));
        self.log.borrow().len()
    }

    #[messaging(GetLogRequest, GetLogResponse)]
    fn get_log(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}

#[test]
fn the_old_readme_example_runs() -> Res {
    let pool = ThreadPool::<UserSession>::new(2)?;
    pool.send_and_receive_once(UserSessionInit(1))?;
    let counts: Vec<usize> = pool
        .send_and_receive(["Login", "ViewProfile", "Logout"].map(|a| LogActionRequest(1, a.to_owned())))?
        .map(|r| r.map(|r| r.result))
        .collect::<Result<_, _>>()?;
    assert_eq!(counts, [1, 2, 3]);
    let log = pool.send_and_receive_once(GetLogRequest(1))?;
    assert_eq!(log.id, 1);
    assert_eq!(log.result, ["Action: Login", "Action: ViewProfile", "Action: Logout"]);
    Ok(())
}

#[test]
fn init_request_and_add_request_both_add() -> Res {
    let pool = ThreadPool::<UserSession>::new(2)?;
    assert_eq!(pool.send_and_receive_once(UserSessionInit(1))?, AddResponse { id: 1 });
    assert_eq!(pool.send_and_receive_once(AddRequest::new(2, ()))?, AddResponse { id: 2 });
    assert_eq!(pool.send_and_receive_once(UserSessionInit(2)), Err(Error::DuplicateId { id: 2 }));
    assert_eq!(pool.send_and_receive_once(GetLogRequest(3)), Err(Error::UnknownId { id: 3 }));
    Ok(())
}

#[test]
fn generated_types_work_without_a_pool() {
    // The methods stay callable, and `process_message` can be driven
    // directly: an item is unit-testable without threads.
    let mut session = UserSession::new(5);
    assert_eq!(session.log_action("a".into()), 1);
    let response = session.process_message(LogActionRequest(5, "b".into()).into());
    assert_eq!(response, UserSessionResponse::LogAction(LogActionResponse { id: 5, result: 2 }));
    // The response's `Request` impl decodes it from a reply, and refuses a
    // reply of another kind.
    let reply: Reply<UserSession> = GetLogResponse { id: 5, result: vec![] }.into();
    assert_eq!(LogActionRequest::from_reply(reply), None);
    let reply: Reply<UserSession> = response.into();
    assert_eq!(LogActionRequest::from_reply(reply), Some(LogActionResponse { id: 5, result: 2 }));
}

// ---------------------------------------------------------------------------
// Fallible constructors, and the three ways to take init data.

struct Account {
    owner: String,
    balance: u64,
}

struct Opening {
    owner: String,
    deposit: u64,
}

#[pool_item]
impl Account {
    fn new(_id: u64, opening: Opening) -> Result<Self, String> {
        if opening.deposit == 0 {
            return Err(format!("{} opened an account with no deposit", opening.owner));
        }
        Ok(Account { owner: opening.owner, balance: opening.deposit })
    }

    #[messaging(DepositRequest, DepositResponse)]
    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    #[messaging(OwnerRequest, OwnerResponse)]
    fn owner(&self) -> String {
        self.owner.clone()
    }
}

#[test]
fn a_failing_constructor_is_the_add_error() -> Res {
    let pool = ThreadPool::<Account>::new(2)?;
    let opening = |deposit| Opening { owner: "ann".to_owned(), deposit };
    pool.send_and_receive_once(AddRequest::new(1, opening(10)))?;
    assert_eq!(
        pool.send_and_receive_once(AddRequest::new(2, opening(0))),
        Err(Error::InitFailed { id: 2, error: "ann opened an account with no deposit".into() })
    );
    assert_eq!(pool.send_and_receive_once(DepositRequest(1, 5))?.result, 15);
    assert_eq!(pool.send_and_receive_once(OwnerRequest(1))?.result, "ann");
    assert_eq!(pool.send_and_receive_once(OwnerRequest(2)), Err(Error::UnknownId { id: 2 }));
    Ok(())
}

/// Init data that carries the id too, as messaging_thread_pool's custom
/// init types did.
struct LegacyInit {
    id: u64,
    start: i64,
}

struct Legacy {
    id: u64,
    value: i64,
}

// messaging_thread_pool's spelling of the argument, and a constructor that
// takes the init data alone.
#[pool_item(Init = "LegacyInit")]
impl Legacy {
    fn new(init: LegacyInit) -> Self {
        Legacy { id: init.id, value: init.start }
    }

    #[messaging(ValueRequest, ValueResponse)]
    fn value(&self) -> (u64, i64) {
        (self.id, self.value)
    }
}

struct Checked {
    limit: u32,
}

#[pool_item(init = u32)]
impl Checked {
    fn new(id: u64, limit: u32) -> Result<Self, NewItemError> {
        if u64::from(limit) < id {
            return Err(NewItemError::new("the limit is below the id"));
        }
        Ok(Checked { limit })
    }

    #[messaging(LimitRequest, LimitResponse)]
    fn limit(&self) -> u32 {
        self.limit
    }
}

struct FromIo;

#[pool_item]
impl FromIo {
    // `io::Result` counts as a `Result`: its error is reported.
    fn new(id: u64) -> std::io::Result<Self> {
        match id {
            0 => Err(std::io::Error::other("no device 0")),
            _ => Ok(FromIo),
        }
    }
}

#[test]
fn init_types_and_error_types_of_every_form() -> Res {
    let legacy = ThreadPool::<Legacy>::new(1)?;
    legacy.send_and_receive_once(AddRequest::new(4, LegacyInit { id: 4, start: -3 }))?;
    assert_eq!(legacy.send_and_receive_once(ValueRequest(4))?.result, (4, -3));

    let checked = ThreadPool::<Checked>::new(1)?;
    checked.send_and_receive_once(AddRequest::new(3, 10))?;
    assert_eq!(checked.send_and_receive_once(LimitRequest(3))?.result, 10);
    assert_eq!(
        checked.send_and_receive_once(AddRequest::new(30, 10)),
        Err(Error::InitFailed { id: 30, error: "the limit is below the id".into() })
    );

    let io = ThreadPool::<FromIo>::new(1)?;
    io.send_and_receive_once(FromIoInit(1))?;
    let failed = io.send_and_receive_once(FromIoInit(0)).unwrap_err();
    assert_eq!(failed, Error::InitFailed { id: 0, error: "no device 0".into() });
    assert_eq!(failed.id(), Some(0));
    // The constructor's error comes back whole, as its own type.
    let source = std::error::Error::source(&failed).expect("InitFailed has a source");
    let io_error = source.downcast_ref::<std::io::Error>().expect("the constructor's io::Error");
    assert_eq!(io_error.kind(), std::io::ErrorKind::Other);
    Ok(())
}

// ---------------------------------------------------------------------------
// Hooks and thread state.

static THREAD_STATES: AtomicUsize = AtomicUsize::new(0);
static PRE: AtomicUsize = AtomicUsize::new(0);
static POST: AtomicUsize = AtomicUsize::new(0);
static SHUTDOWNS: AtomicUsize = AtomicUsize::new(0);

/// Per-worker state: which worker, and how many requests it has begun.
#[derive(Default)]
struct WorkerLog {
    worker: usize,
    begun: usize,
}

struct Hooked;

#[pool_item(thread_state = WorkerLog)]
impl Hooked {
    fn new(_id: u64) -> Self {
        Hooked
    }

    #[messaging(PingRequest, PingResponse)]
    fn ping(&self) {}

    /// Item `id` lives on worker `id`, so a large id has no worker.
    #[hook]
    fn placement(id: u64, _workers: usize) -> usize {
        id as usize
    }

    #[hook]
    fn new_thread_state(worker: usize) -> WorkerLog {
        THREAD_STATES.fetch_add(1, Ordering::Relaxed);
        WorkerLog { worker, begun: 0 }
    }

    #[hook]
    fn pre_process(&mut self, log: &mut Self::ThreadState) {
        log.begun += 1;
        PRE.fetch_add(1, Ordering::Relaxed);
    }

    #[hook]
    fn post_process(&mut self, log: &mut WorkerLog) {
        assert!(log.begun > 0 && log.worker < 2, "post_process runs after pre_process, on a worker");
        POST.fetch_add(1, Ordering::Relaxed);
    }

    #[hook]
    fn on_shutdown(&mut self, _log: &mut WorkerLog) {
        SHUTDOWNS.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn hooks_are_forwarded_into_the_pool_item() -> Res {
    let pool = ThreadPool::<Hooked>::new(2)?;
    assert_eq!(THREAD_STATES.load(Ordering::Relaxed), 2, "one thread state per worker");
    pool.send_and_receive([0, 1].map(HookedInit))?.collect::<Result<Vec<_>, _>>()?;
    assert_eq!(
        pool.send_and_receive_once(HookedInit(5)),
        Err(Error::BadPlacement { id: 5, worker: 5, workers: 2 })
    );
    for _ in 0..3 {
        pool.send_and_receive([0, 1].map(PingRequest))?.collect::<Result<Vec<_>, _>>()?;
    }
    pool.shutdown()?;
    assert_eq!(PRE.load(Ordering::Relaxed), 6);
    assert_eq!(POST.load(Ordering::Relaxed), 6);
    assert_eq!(SHUTDOWNS.load(Ordering::Relaxed), 2, "on_shutdown once per live item");
    Ok(())
}

// ---------------------------------------------------------------------------
// Generic items.

struct Bounded<T, const N: usize> {
    items: Vec<T>,
}

#[pool_item]
impl<T, const N: usize> Bounded<T, N>
where
    T: Clone + Send + 'static,
{
    fn new(_id: u64) -> Self {
        Bounded { items: Vec::new() }
    }

    /// Mentions `T`: the request is generic.
    #[messaging(PushRequest, PushResponse)]
    fn push(&mut self, item: T) -> bool {
        if self.items.len() == N {
            return false;
        }
        self.items.push(item);
        true
    }

    /// Mentions `T` only in its result: the response is generic.
    #[messaging(LastRequest, LastResponse)]
    fn last(&self) -> Option<T> {
        self.items.last().cloned()
    }

    /// Mentions `N` only.
    #[messaging(ArrayRequest, ArrayResponse)]
    fn array(&self, fill: u8) -> [u8; N] {
        [fill; N]
    }

    /// Mentions nothing: a plain tuple request.
    #[messaging(LenRequest, LenResponse)]
    fn len(&self) -> usize {
        self.items.len()
    }
}

#[test]
fn generic_items_take_only_the_parameters_their_messages_use() -> Res {
    let pool = ThreadPool::<Bounded<String, 2>>::new(2)?;
    pool.send_and_receive_once(BoundedInit(1))?;
    let pushed: Vec<bool> = pool
        .send_and_receive(["a", "b", "c"].map(|s| PushRequest(1, s.to_owned())))?
        .map(|r| r.map(|r| r.result))
        .collect::<Result<_, _>>()?;
    assert_eq!(pushed, [true, true, false]);
    assert_eq!(pool.send_and_receive_once(LastRequest(1))?.result.as_deref(), Some("b"));
    assert_eq!(pool.send_and_receive_once(ArrayRequest(1, 7))?.result, [7, 7]);
    // `LenRequest` has no type parameter: the pool's type picks the item.
    assert_eq!(pool.send_and_receive_once(LenRequest(1))?.result, 2);

    let other = ThreadPool::<Bounded<u8, 3>>::new(1)?;
    other.send_and_receive_once(BoundedInit(1))?;
    assert_eq!(other.send_and_receive_once(LenRequest(1))?.result, 0);
    assert_eq!(other.send_and_receive_once(ArrayRequest(1, 1))?.result, [1, 1, 1]);
    Ok(())
}

struct Named<T> {
    name: T,
}

struct NamedInit<T> {
    name: T,
}

#[pool_item]
impl<T: std::fmt::Display + Send + 'static> Named<T> {
    fn new(_id: u64, init: NamedInit<T>) -> Self {
        Named { name: init.name }
    }

    #[messaging(GreetRequest, GreetResponse)]
    fn greet(&self, greeting: String) -> String {
        format!("{greeting}, {}", self.name)
    }
}

#[test]
fn generic_items_with_generic_init_data() -> Res {
    let pool = ThreadPool::<Named<char>>::new(1)?;
    pool.send_and_receive_once(AddRequest::new(1, NamedInit { name: 'x' }))?;
    assert_eq!(pool.send_and_receive_once(GreetRequest(1, "hi".into()))?.result, "hi, x");
    Ok(())
}

// ---------------------------------------------------------------------------
// Derives, and paths that need nothing in scope.

struct Notifier {
    sent: usize,
}

// `mpsc::Sender` has no `PartialEq`, so the default derives would not do.
#[pool_item(derive(Debug))]
impl Notifier {
    fn new(_id: u64) -> Self {
        Notifier { sent: 0 }
    }

    #[messaging(NotifyRequest, NotifyResponse)]
    fn notify(&mut self, to: std::sync::mpsc::Sender<usize>) -> usize {
        self.sent += 1;
        to.send(self.sent).expect("the test holds the receiver");
        self.sent
    }
}

#[test]
fn derives_can_be_chosen() -> Res {
    let pool = ThreadPool::<Notifier>::new(1)?;
    pool.send_and_receive_once(NotifierInit(1))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let request = NotifyRequest(1, tx);
    assert!(format!("{request:?}").starts_with("NotifyRequest(1,"));
    assert_eq!(pool.send_and_receive_once(request)?.result, 1);
    assert_eq!(rx.recv()?, 1);
    Ok(())
}

/// Nothing imported, not even the prelude: every generated path is
/// absolute.
#[no_implicit_prelude]
mod bare {
    pub struct Bare {
        total: u64,
    }

    #[::shardpool::pool_item]
    impl Bare {
        fn new(_id: u64) -> Self {
            Bare { total: 0 }
        }

        #[messaging(AddUpRequest, AddUpResponse)]
        fn add_up(&mut self, by: u64) -> u64 {
            self.total += by;
            self.total
        }
    }
}

#[test]
fn generated_paths_need_no_imports() -> Res {
    let pool = ThreadPool::<bare::Bare>::new(1)?;
    pool.send_and_receive_once(bare::BareInit(1))?;
    pool.send_and_receive_once(bare::AddUpRequest(1, 2))?;
    assert_eq!(pool.send_and_receive_once(bare::AddUpRequest(1, 3))?.result, 5);
    Ok(())
}

/// Written without bounds: the macro adds `T: 'static`, and `Send` for the
/// types that travel in messages (here `T` itself, through `push`).
struct Pile<T> {
    items: Vec<T>,
}

#[pool_item]
impl<T> Pile<T> {
    fn new(_id: u64) -> Self {
        Pile { items: Vec::new() }
    }

    #[messaging(PutRequest, PutResponse)]
    fn pile(&mut self, item: T) -> usize {
        self.items.push(item);
        self.items.len()
    }
}

/// `T` never travels in a message, so it need not be `Send`: an `Rc` will
/// do (the item is built on its worker and never leaves it).
struct Keeper<T> {
    kept: T,
}

#[pool_item]
impl<T: Default + Clone> Keeper<T> {
    fn new(_id: u64) -> Self {
        Keeper { kept: T::default() }
    }

    #[messaging(KeepRequest, KeepResponse)]
    fn keep(&mut self) -> bool {
        let again = self.kept.clone();
        drop(again);
        true
    }
}

#[test]
fn generic_items_need_no_bounds_written_and_only_message_types_need_send() -> Res {
    let piles = ThreadPool::<Pile<String>>::new(1)?;
    piles.send_and_receive_once(PileInit(1))?;
    piles.send_and_receive_once(PutRequest(1, "a".to_owned()))?;
    assert_eq!(piles.send_and_receive_once(PutRequest(1, "b".to_owned()))?.result, 2);

    let keepers = ThreadPool::<Keeper<std::rc::Rc<u8>>>::new(1)?;
    keepers.send_and_receive_once(KeeperInit(1))?;
    assert!(keepers.send_and_receive_once(KeepRequest(1))?.result);
    Ok(())
}

/// An argument with none of `Debug`, `Clone` and `PartialEq`.
pub struct Token(pub u8);

struct Vault {
    tokens: Vec<u8>,
}

#[pool_item]
impl Vault {
    fn new(_id: u64) -> Self {
        Vault { tokens: Vec::new() }
    }

    #[messaging(StoreTokenRequest, StoreTokenResponse)]
    fn store_token(&mut self, token: Token) -> usize {
        self.tokens.push(token.0);
        self.tokens.len()
    }
}

#[test]
fn an_argument_without_the_default_traits_compiles_and_the_other_types_keep_them() -> Res {
    // The request holding a `Token` lacks Debug, Clone and PartialEq (see
    // tests/ui/arg_without_clone_asked_to_clone.rs); the item still works.
    let vaults = ThreadPool::<Vault>::new(1)?;
    vaults.send_and_receive_once(VaultInit(1))?;
    let stored = vaults.send_and_receive_once(StoreTokenRequest(1, Token(7)))?;
    // Its response holds a `usize`, so it has all three, formatted as a derive would.
    assert_eq!(format!("{:?}", stored.clone()), "StoreTokenResponse { id: 1, result: 1 }");
    assert_eq!(stored, StoreTokenResponse { id: 1, result: 1 });

    // Requests, responses and the enums of an item whose fields have them.
    let deposit = DepositRequest(1, 5);
    assert_eq!(format!("{deposit:?}"), "DepositRequest(1, 5)");
    assert_eq!(deposit.clone(), DepositRequest(1, 5));
    assert_ne!(deposit, DepositRequest(1, 6));
    let api = AccountApi::from(deposit);
    assert_eq!(format!("{api:?}"), "Deposit(DepositRequest(1, 5))");
    assert_eq!(api.clone(), AccountApi::Deposit(DepositRequest(1, 5)));
    let response = AccountResponse::from(DepositResponse { id: 1, result: 15 });
    assert_eq!(format!("{response:?}"), "Deposit(DepositResponse { id: 1, result: 15 })");
    assert_ne!(response, AccountResponse::Deposit(DepositResponse { id: 2, result: 15 }));
    Ok(())
}

/// A type of the user's own, with the name `#[pool_item]` would generate
/// for the add request of `Shelf`.
#[derive(Debug, PartialEq)]
struct ShelfInit {
    shelves: u32,
}

struct Shelf;

#[pool_item(init_request = NewShelf, api = ShelfCalls, response = ShelfAnswers)]
impl Shelf {
    fn new(_id: u64) -> Self {
        Shelf
    }

    #[messaging(CountRequest, CountResponse)]
    fn count(&self) -> u32 {
        3
    }
}

#[test]
fn generated_type_names_can_be_chosen_to_avoid_a_clash() -> Res {
    // The user's `ShelfInit` is untouched (its own fields, its own derive)...
    let own = ShelfInit { shelves: 2 };
    assert_eq!(format!("{own:?}"), "ShelfInit { shelves: 2 }");
    // ...and the generated types answer to the names given.
    let pool = ThreadPool::<Shelf>::new(1)?;
    let added: AddResponse = pool.send_and_receive_once(NewShelf(4))?;
    assert_eq!(added.id, 4);
    assert_eq!(pool.send_and_receive_once(CountRequest(4))?.result, 3);
    let call: ShelfCalls = CountRequest(4).into();
    let answer: ShelfAnswers = CountResponse { id: 4, result: 3 }.into();
    assert!(matches!((call, answer), (ShelfCalls::Count(_), ShelfAnswers::Count(_))));
    Ok(())
}

/// Trait objects in arguments and results: the request and response lack
/// `PartialEq` (and `Debug`, `Clone`) and the item works.
struct Runner;

#[pool_item]
impl Runner {
    fn new(_id: u64) -> Self {
        Runner
    }

    #[messaging(RunRequest, RunResponse)]
    fn run(&self, job: Box<dyn Fn() -> u32 + Send>) -> Box<dyn std::any::Any + Send> {
        Box::new(job())
    }

    #[messaging(RunSharedRequest, RunSharedResponse)]
    fn run_shared(&self, job: std::sync::Arc<dyn Fn() -> u32 + Send + Sync>) -> u32 {
        job()
    }
}

#[test]
fn trait_objects_travel_in_requests_and_responses() -> Res {
    let pool = ThreadPool::<Runner>::new(1)?;
    pool.send_and_receive_once(RunnerInit(1))?;
    let out = pool.send_and_receive_once(RunRequest(1, Box::new(|| 41)))?.result;
    assert_eq!(out.downcast_ref::<u32>(), Some(&41));
    assert_eq!(pool.send_and_receive_once(RunSharedRequest(1, std::sync::Arc::new(|| 42)))?.result, 42);
    Ok(())
}

#[test]
fn a_generic_items_enums_have_no_hidden_variant_when_every_parameter_travels() {
    // An exhaustive match without a wildcard: it compiles only if `PileApi`
    // has no `__Phantom` variant (`T` is used by `PutRequest<T>`).
    let api: PileApi<u8> = PutRequest(1, 7u8).into();
    match api {
        PileApi::Pile(PutRequest(id, item)) => assert_eq!((id, item), (1, 7)),
    }
}

#[deny(deprecated)]
mod deprecated_method {
    use shardpool::{pool_item, ThreadPool};

    pub(super) struct Old;

    #[pool_item]
    impl Old {
        fn new(_id: u64) -> Self {
            Old
        }

        /// The generated code calls it; only the user's own calls warn.
        #[deprecated = "use something newer"]
        #[messaging(OldRequest, OldAnswer)]
        fn old(&self) -> u8 {
            1
        }
    }

    #[test]
    fn a_deprecated_method_warns_only_where_the_user_calls_it() {
        let pool = ThreadPool::<Old>::new(1).unwrap();
        pool.send_and_receive_once(OldInit(1)).unwrap();
        assert_eq!(pool.send_and_receive_once(OldRequest(1)).unwrap().result, 1);
    }
}

/// `#[cfg]` on a `#[messaging]` method applies to everything generated for
/// it: in this test binary `test` is set, `not(test)` is not.
struct Configured;

#[pool_item]
impl Configured {
    fn new(_id: u64) -> Self {
        Configured
    }

    #[cfg(not(test))]
    #[messaging(GoneRequest, GoneResponse)]
    fn gone(&self) -> u8 {
        0
    }

    #[cfg(test)]
    #[messaging(HereRequest, HereResponse)]
    fn here(&self) -> u8 {
        1
    }
}

#[test]
fn a_cfg_on_a_method_applies_to_its_generated_types() -> Res {
    let pool = ThreadPool::<Configured>::new(1)?;
    pool.send_and_receive_once(ConfiguredInit(1))?;
    assert_eq!(pool.send_and_receive_once(HereRequest(1))?.result, 1);
    // The enum has the present method's variant only: this match is
    // exhaustive.
    match ConfiguredApi::from(HereRequest(1)) {
        ConfiguredApi::Here(HereRequest(id)) => assert_eq!(id, 1),
    }
    Ok(())
}
