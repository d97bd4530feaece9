//! Faults in user code, and what the pool promises about them: user code
//! that panics or blocks in the middle of a batch, user values whose `Drop`
//! panics on a worker, re-entrant calls from the `Drop` of a refused request,
//! and statistics read right after a reply.
//!
//! A broken pool hangs a thread forever, kills a worker, or aborts on a
//! double panic, so each test runs its scenario in a child process (this test
//! binary again, filtered to that one test) under a watchdog: see
//! [`isolated`]. Inside the child the scenario runs on a thread of its own
//! with a time limit ([`within`]), so a hang is reported with the step it
//! hung in. These limits are liveness watchdogs, far above the time any
//! scenario needs; no test asserts that anything was fast.

use shardpool::{
    AddRequest, Error, Message, NewItemError, PanicReport, Pinning, PoolItem, RemoveRequest, Reply, Request,
    ThreadPool,
};
use std::io::Read;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The harness: one process per scenario, under a watchdog.
// ---------------------------------------------------------------------------

/// Names the test a child process is to run.
const CHILD_ENV: &str = "SHARDPOOL_FAULT_CHILD";
/// How long the parent waits for a child before killing it.
const WATCHDOG: Duration = Duration::from_secs(60);
/// How long a child gives its scenario (below the watchdog, so a hang is
/// reported by the child with the step it hung in).
const SCENARIO_LIMIT: Duration = Duration::from_secs(45);

/// Runs `scenario` in a child process of this test binary. In the parent it
/// spawns the child, waits for it under the watchdog and fails with the
/// child's output if the child hung, crashed or failed. In the child (the
/// environment names this test) it runs `scenario` under [`within`].
fn isolated(name: &'static str, scenario: impl FnOnce() + Send + 'static) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        within(SCENARIO_LIMIT, scenario);
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the scenario's child process");
    // Drain both pipes as the child writes, so a chatty child cannot block.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let output = format!("{stdout}\n--- stderr ---\n{stderr}");
    let tail = tail(&output, 6000);
    match status {
        None => panic!("{name}: scenario hung (watchdog, {WATCHDOG:?}); the child was killed\n{tail}"),
        Some(status) if !status.success() => {
            panic!("{name}: scenario failed in its child process ({status})\n{tail}")
        }
        // A child whose filter matched nothing exits 0 too.
        Some(_) if !stdout.contains("1 passed") => panic!("{name}: the child process ran no test\n{tail}"),
        Some(_) => {}
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// What the scenario is doing now, for the message of a hang.
static STEP: Mutex<&str> = Mutex::new("starting");

/// Names the scenario's current step (reported if it hangs).
fn step(what: &'static str) {
    *STEP.lock().unwrap_or_else(|e| e.into_inner()) = what;
}

/// Runs `f` on a thread of its own and waits at most `limit` for it: a
/// liveness watchdog, not a timing assertion. A hung `f` is left behind
/// (this runs in a child process, which exits anyway); a panic in `f` is
/// propagated.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = thread.join();
            v
        }
        Err(RecvTimeoutError::Timeout) => {
            let step = *STEP.lock().unwrap_or_else(|e| e.into_inner());
            panic!("hung: no progress within {limit:?}, at step: {step}")
        }
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => resume_unwind(payload),
            Ok(()) => unreachable!("the scenario thread ended without a result"),
        },
    }
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string payload".to_owned()
    }
}

// ---------------------------------------------------------------------------
// The test item: `Probe`, with hooks to panic, block and booby-trap drops.
// ---------------------------------------------------------------------------

/// `Bump` requests handled (by any item; each child process has its own).
static PROCESSED: AtomicUsize = AtomicUsize::new(0);
/// Every panic report the pool's panic handler saw.
static REPORTS: Mutex<Vec<PanicReport>> = Mutex::new(Vec::new());
/// Workers whose exit handler ran.
static EXITS: AtomicUsize = AtomicUsize::new(0);
/// `on_shutdown` hooks run.
static SHUTDOWN_HOOKS: AtomicUsize = AtomicUsize::new(0);
/// Set when user code gave up waiting for requests it had pushed.
static STARVED: AtomicBool = AtomicBool::new(false);

/// A value whose `Drop` panics while armed.
struct Trap {
    armed: bool,
    message: &'static str,
}

impl Trap {
    fn armed(message: &'static str) -> Self {
        Self { armed: true, message }
    }

    fn inert() -> Self {
        Self { armed: false, message: "" }
    }
}

/// Armed `Trap`s dropped (each one then panics).
static SPRUNG: AtomicUsize = AtomicUsize::new(0);
/// `Wait` requests whose handler has started waiting.
static WAITING: AtomicUsize = AtomicUsize::new(0);

impl Drop for Trap {
    fn drop(&mut self) {
        if std::mem::take(&mut self.armed) {
            SPRUNG.fetch_add(1, Ordering::SeqCst);
            panic!("{}", self.message);
        }
    }
}

/// What user code does at one point of a batch.
#[derive(Clone, Copy)]
enum Hook {
    Nothing,
    Panic,
    /// Block until this many `Bump`s have been handled.
    WaitFor(usize),
}

impl Hook {
    fn run(self) {
        match self {
            Hook::Nothing => {}
            Hook::Panic => panic!("user code panicked mid-batch"),
            Hook::WaitFor(n) => {
                // Bounded: give up (and say so) rather than hang the batch.
                let deadline = Instant::now() + Duration::from_secs(20);
                while PROCESSED.load(Ordering::SeqCst) < n {
                    if Instant::now() > deadline {
                        STARVED.store(true, Ordering::SeqCst);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// The highest gate ticket released by the test (see [`Gate`]).
static RELEASED: AtomicU64 = AtomicU64::new(0);

/// Holds up the worker where it is waited on until the test releases its
/// ticket: a way to keep a worker busy right after it has answered an
/// earlier request of the same pass. Bounded: after 20 s it lets go (the
/// test then fails on its own terms).
struct Gate(u64);

impl Gate {
    fn wait(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while RELEASED.load(Ordering::SeqCst) < self.0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
    }
}

fn release(ticket: u64) {
    RELEASED.fetch_max(ticket, Ordering::SeqCst);
}

/// A one-shot hook run by `Probe::placement` for one id.
static PLACEMENT_HOOK: Mutex<Option<(u64, Hook)>> = Mutex::new(None);

/// How a piece of an item's code fails.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    Panic(&'static str),
    /// Panics with a payload whose `Drop` panics.
    PanicWithTrappedPayload,
}

impl Fault {
    fn run(self) {
        match self {
            Fault::None => {}
            Fault::Panic(message) => panic!("{message}"),
            Fault::PanicWithTrappedPayload => std::panic::panic_any(Trap::armed("payload drop boom")),
        }
    }
}

/// Not `Send`, like the items the pool is for.
struct Probe {
    value: u64,
    faults: Faults,
    /// Waited on when the item is dropped.
    drop_gate: Option<Gate>,
    _not_send: std::rc::Rc<()>,
}

/// Where a `Probe`'s own code fails.
#[derive(Clone, Copy)]
struct Faults {
    drop: Fault,
    on_shutdown: Fault,
    pre_process: Fault,
    post_process: Fault,
}

impl Faults {
    const NONE: Faults = Faults {
        drop: Fault::None,
        on_shutdown: Fault::None,
        pre_process: Fault::None,
        post_process: Fault::None,
    };
}

struct ProbeInit {
    value: u64,
    /// Armed for init data whose `Drop` panics if it is not consumed.
    trap: Trap,
    /// Where the item's own code fails.
    faults: Faults,
    /// A gate the constructor waits on.
    gate_in_new: Option<Gate>,
    /// A gate the item's `Drop` waits on.
    gate_in_drop: Option<Gate>,
}

impl ProbeInit {
    fn value(value: u64) -> Self {
        Self { value, trap: Trap::inert(), faults: Faults::NONE, gate_in_new: None, gate_in_drop: None }
    }
}

enum ProbeApi {
    Bump,
    Get,
    /// Carries a value whose `Drop` panics unless the handler disarms it.
    Carry(Trap),
    Panic(&'static str),
    /// Panics with a payload whose `Drop` panics.
    PanicWithTrappedPayload,
    /// Carries a value whose `Drop` calls the pool unless the handler
    /// disarms it.
    Reenter(Reenter),
    /// Waits on a gate.
    Wait(Gate),
    /// Answers with a value whose `Drop` panics unless the caller disarms it.
    ReturnTrap,
}

enum ProbeResponse {
    Value(u64),
    Unit,
    Trapped(Trap),
}

impl PoolItem for Probe {
    type Init = ProbeInit;
    type Api = ProbeApi;
    type Response = ProbeResponse;
    type ThreadState = ();

    fn new_pool_item(_id: u64, mut init: ProbeInit) -> Result<Self, NewItemError> {
        init.trap.armed = false;
        if let Some(gate) = init.gate_in_new.take() {
            gate.wait();
        }
        Ok(Probe {
            value: init.value,
            faults: init.faults,
            drop_gate: init.gate_in_drop.take(),
            _not_send: std::rc::Rc::new(()),
        })
    }

    fn process_message(&mut self, request: ProbeApi) -> ProbeResponse {
        match request {
            ProbeApi::Bump => {
                self.value += 1;
                PROCESSED.fetch_add(1, Ordering::SeqCst);
                ProbeResponse::Value(self.value)
            }
            ProbeApi::Get => ProbeResponse::Value(self.value),
            ProbeApi::Carry(mut trap) => {
                trap.armed = false;
                ProbeResponse::Unit
            }
            ProbeApi::Panic(message) => panic!("{message}"),
            ProbeApi::PanicWithTrappedPayload => {
                Fault::PanicWithTrappedPayload.run();
                unreachable!()
            }
            ProbeApi::Reenter(mut r) => {
                r.armed = false;
                ProbeResponse::Unit
            }
            ProbeApi::Wait(gate) => {
                WAITING.fetch_add(1, Ordering::SeqCst);
                gate.wait();
                ProbeResponse::Unit
            }
            ProbeApi::ReturnTrap => ProbeResponse::Trapped(Trap::armed("response drop boom")),
        }
    }

    fn pre_process(&mut self, _: &mut ()) {
        self.faults.pre_process.run();
    }

    fn post_process(&mut self, _: &mut ()) {
        self.faults.post_process.run();
    }

    fn on_shutdown(&mut self, _: &mut ()) {
        SHUTDOWN_HOOKS.fetch_add(1, Ordering::SeqCst);
        self.faults.on_shutdown.run();
    }

    fn placement(id: u64, workers: usize) -> usize {
        let hook = {
            let mut armed = PLACEMENT_HOOK.lock().unwrap_or_else(|e| e.into_inner());
            match *armed {
                Some((at, _)) if at == id => armed.take().map(|(_, h)| h),
                _ => None,
            }
        };
        if let Some(hook) = hook {
            hook.run();
        }
        (id % workers as u64) as usize
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(gate) = &self.drop_gate {
            gate.wait();
        }
        self.faults.drop.run();
    }
}

fn value_of(reply: Reply<Probe>) -> Option<u64> {
    match reply {
        Reply::Response(ProbeResponse::Value(v)) => Some(v),
        _ => None,
    }
}

fn unit_of(reply: Reply<Probe>) -> Option<()> {
    match reply {
        Reply::Response(ProbeResponse::Unit) => Some(()),
        _ => None,
    }
}

/// Adds one to the item's value; answers the new value.
struct Bump(u64);
impl Request<Probe> for Bump {
    type Response = u64;
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::Bump }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<u64> {
        value_of(reply)
    }
}

/// A `Bump` whose `into_message` runs a hook first.
struct HookedBump(u64, Hook);
impl Request<Probe> for HookedBump {
    type Response = u64;
    fn into_message(self) -> Message<Probe> {
        self.1.run();
        Message::Call { id: self.0, request: ProbeApi::Bump }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<u64> {
        value_of(reply)
    }
}

struct Get(u64);
impl Request<Probe> for Get {
    type Response = u64;
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::Get }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<u64> {
        value_of(reply)
    }
}

/// A request carrying a value whose `Drop` panics unless the item handles it.
struct CarryTrap(u64);
impl Request<Probe> for CarryTrap {
    type Response = ();
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::Carry(Trap::armed("request drop boom")) }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<()> {
        unit_of(reply)
    }
}

struct Explode(u64, &'static str);
impl Request<Probe> for Explode {
    type Response = ();
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::Panic(self.1) }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<()> {
        unit_of(reply)
    }
}

struct ExplodeWithTrappedPayload(u64);
impl Request<Probe> for ExplodeWithTrappedPayload {
    type Response = ();
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::PanicWithTrappedPayload }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<()> {
        unit_of(reply)
    }
}

/// Answered with a value whose `Drop` panics unless `from_reply` disarms it.
struct TrappedResponse(u64);
impl Request<Probe> for TrappedResponse {
    type Response = ();
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::ReturnTrap }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<()> {
        match reply {
            Reply::Response(ProbeResponse::Trapped(mut trap)) => {
                trap.armed = false;
                Some(())
            }
            _ => None,
        }
    }
}

/// Answered with a value whose `Drop` panics, handed to the caller armed.
struct KeptTrap(u64);
impl Request<Probe> for KeptTrap {
    type Response = Trap;
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::ReturnTrap }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<Trap> {
        match reply {
            Reply::Response(ProbeResponse::Trapped(trap)) => Some(trap),
            _ => None,
        }
    }
}

/// Holds the worker up until `.1` is released.
struct Wait(u64, u64);
impl Request<Probe> for Wait {
    type Response = ();
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::Wait(Gate(self.1)) }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<()> {
        unit_of(reply)
    }
}

/// The pool a `Reenter` calls from its `Drop`.
static REENTRY_POOL: OnceLock<Arc<ThreadPool<Probe>>> = OnceLock::new();
/// What those calls got.
static INNER_RESULTS: Mutex<Vec<Result<u64, Error>>> = Mutex::new(Vec::new());

/// While armed, its `Drop` calls `Get(0)` on `REENTRY_POOL` and records the
/// result.
struct Reenter {
    armed: bool,
}

impl Drop for Reenter {
    fn drop(&mut self) {
        if std::mem::take(&mut self.armed) {
            let pool = REENTRY_POOL.get().expect("the re-entry pool is set");
            let r = pool.send_and_receive_once(Get(0));
            INNER_RESULTS.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        }
    }
}

/// A request whose message calls the pool when it is dropped unhandled.
struct Reentrant(u64);
impl Request<Probe> for Reentrant {
    type Response = ();
    fn into_message(self) -> Message<Probe> {
        Message::Call { id: self.0, request: ProbeApi::Reenter(Reenter { armed: true }) }
    }
    fn from_reply(reply: Reply<Probe>) -> Option<()> {
        unit_of(reply)
    }
}

/// A pool of `Probe`s whose panic and exit handlers feed `REPORTS` and
/// `EXITS`.
fn probe_pool(workers: usize) -> ThreadPool<Probe> {
    ThreadPool::<Probe>::builder()
        .workers(workers)
        .pinning(Pinning::Off)
        .panic_handler(|r| REPORTS.lock().unwrap_or_else(|e| e.into_inner()).push(r))
        .exit_handler(|_| {
            EXITS.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .expect("build the pool")
}

fn reports() -> Vec<PanicReport> {
    REPORTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Asserts that the panic handler saw a report mentioning `fragment`.
fn assert_reported(fragment: &str) {
    let reports = reports();
    assert!(
        reports.iter().any(|r| r.message.contains(fragment)),
        "the panic handler saw no report mentioning {fragment:?}; it saw {reports:?}"
    );
}

/// Shuts the pool down from the scenario and checks that every worker ran
/// its exit handler (a worker thread that died skips it).
fn shutdown_cleanly(pool: &ThreadPool<Probe>) {
    step("shutting the pool down");
    assert_eq!(pool.shutdown(), Ok(()));
    assert_eq!(
        EXITS.load(Ordering::SeqCst),
        pool.thread_count(),
        "every worker ran its exit handler (a worker that died does not)"
    );
}

// ---------------------------------------------------------------------------
// 1 and 2. User code that panics, or blocks, in the middle of a batch.
// ---------------------------------------------------------------------------

/// Where in a batch user code runs between pushes.
#[derive(Clone, Copy)]
enum Site {
    /// The batch's iterator (`next`).
    Iterator,
    /// `Request::into_message`.
    IntoMessage,
    /// `PoolItem::placement`.
    Placement,
}

/// Requests in the batch, and the one at which user code misbehaves.
const BATCH: u64 = 10;
const AT: u64 = 5;
/// The item the placement hook is armed for.
const PLACEMENT_ID: u64 = 1000;

/// A batch of `BATCH` bumps to item 0 whose user code runs `hook` at request
/// `AT`, at `site`. With `Site::Placement` request `AT` goes to item
/// `PLACEMENT_ID`, whose placement runs the hook.
fn hooked_batch(site: Site, hook: Hook) -> Box<dyn Iterator<Item = HookedBump>> {
    match site {
        Site::Iterator => Box::new((0..BATCH).map(move |i| {
            if i == AT {
                hook.run();
            }
            HookedBump(0, Hook::Nothing)
        })),
        Site::IntoMessage => {
            Box::new((0..BATCH).map(move |i| HookedBump(0, if i == AT { hook } else { Hook::Nothing })))
        }
        Site::Placement => {
            *PLACEMENT_HOOK.lock().unwrap() = Some((PLACEMENT_ID, hook));
            Box::new((0..BATCH).map(|i| HookedBump(if i == AT { PLACEMENT_ID } else { 0 }, Hook::Nothing)))
        }
    }
}

/// A pool with items 0 and `PLACEMENT_ID`, called once from this thread:
/// the thread is registered and the worker has gone idle, so only a
/// doorbell ring makes it look at this thread's ring again.
fn pool_for_batches() -> ThreadPool<Probe> {
    let pool = probe_pool(1);
    for id in [0, PLACEMENT_ID] {
        pool.send_and_receive_once(AddRequest::new(id, ProbeInit::value(0))).unwrap();
    }
    pool
}

/// User code panics at request `AT`: the panic reaches the caller, the
/// requests pushed before it are processed, and the pool goes on working.
fn panic_mid_batch(site: Site) {
    let pool = pool_for_batches();
    step("a batch whose user code panics at request 5 (Drop for Responses waits for what was pushed)");
    let caught = catch_unwind(AssertUnwindSafe(|| {
        pool.send_and_receive(hooked_batch(site, Hook::Panic)).unwrap().count()
    }));
    let payload = caught.expect_err("the user code's panic reaches the caller");
    assert_eq!(payload_text(&*payload), "user code panicked mid-batch");
    step("reading the item after the panicked batch");
    assert_eq!(
        pool.send_and_receive_once(Get(0)),
        Ok(AT),
        "the requests pushed before the panic were processed"
    );
    assert_eq!(
        pool.send_and_receive_once(Get(PLACEMENT_ID)),
        Ok(0),
        "the request that panicked was not sent"
    );
    assert_eq!(PROCESSED.load(Ordering::SeqCst), AT as usize, "requests after the panic were not sent");
    step("a batch after the panicked one");
    let after: Vec<_> = pool.send_and_receive((0..3).map(|_| Bump(0))).unwrap().collect();
    assert_eq!(after, [Ok(AT + 1), Ok(AT + 2), Ok(AT + 3)]);
    shutdown_cleanly(&pool);
}

/// User code blocks at request `AT` until the `AT` requests pushed before it
/// are processed: they must have been announced to the worker before user
/// code ran again.
fn block_mid_batch(site: Site) {
    let pool = pool_for_batches();
    step("a batch whose user code waits at request 5 for the requests pushed before it");
    let got: Vec<_> =
        pool.send_and_receive(hooked_batch(site, Hook::WaitFor(AT as usize))).unwrap().collect();
    assert!(
        !STARVED.load(Ordering::SeqCst),
        "pushed requests were never processed while user code blocked (they were not announced to the worker)"
    );
    assert_eq!(got.len(), BATCH as usize);
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    let (to_zero, to_placed) = match site {
        Site::Placement => (BATCH - 1, 1),
        _ => (BATCH, 0),
    };
    assert_eq!(pool.send_and_receive_once(Get(0)), Ok(to_zero));
    assert_eq!(pool.send_and_receive_once(Get(PLACEMENT_ID)), Ok(to_placed));
    shutdown_cleanly(&pool);
}

#[test]
fn a_batch_iterator_that_panics_midway_has_its_earlier_requests_processed() {
    isolated("a_batch_iterator_that_panics_midway_has_its_earlier_requests_processed", || {
        panic_mid_batch(Site::Iterator)
    });
}

#[test]
fn an_into_message_that_panics_midway_has_its_earlier_requests_processed() {
    isolated("an_into_message_that_panics_midway_has_its_earlier_requests_processed", || {
        panic_mid_batch(Site::IntoMessage)
    });
}

#[test]
fn a_placement_that_panics_midway_has_its_earlier_requests_processed() {
    isolated("a_placement_that_panics_midway_has_its_earlier_requests_processed", || {
        panic_mid_batch(Site::Placement)
    });
}

#[test]
fn a_batch_iterator_that_blocks_midway_sees_its_earlier_requests_processed() {
    isolated("a_batch_iterator_that_blocks_midway_sees_its_earlier_requests_processed", || {
        block_mid_batch(Site::Iterator)
    });
}

#[test]
fn an_into_message_that_blocks_midway_sees_its_earlier_requests_processed() {
    isolated("an_into_message_that_blocks_midway_sees_its_earlier_requests_processed", || {
        block_mid_batch(Site::IntoMessage)
    });
}

#[test]
fn a_placement_that_blocks_midway_sees_its_earlier_requests_processed() {
    isolated("a_placement_that_blocks_midway_sees_its_earlier_requests_processed", || {
        block_mid_batch(Site::Placement)
    });
}

// ---------------------------------------------------------------------------
// 3. User values whose `Drop` panics on a worker.
// ---------------------------------------------------------------------------

/// One worker, so "the worker" is unambiguous; item 0 lives on it.
fn one_worker_pool() -> ThreadPool<Probe> {
    let pool = probe_pool(1);
    pool.send_and_receive_once(AddRequest::new(0, ProbeInit::value(0))).unwrap();
    pool
}

/// The worker still answers, and shuts down cleanly.
fn worker_lives_on(pool: &ThreadPool<Probe>) {
    step("a later call to an item on the same worker");
    assert_eq!(pool.send_and_receive_once(Bump(0)), Ok(1), "the worker still answers");
    shutdown_cleanly(pool);
}

#[test]
fn a_request_to_an_unknown_id_whose_drop_panics_costs_only_that_request() {
    isolated("a_request_to_an_unknown_id_whose_drop_panics_costs_only_that_request", || {
        let pool = one_worker_pool();
        step("a request to an unknown id, whose Drop panics on the worker");
        assert_eq!(pool.send_and_receive_once(CarryTrap(77)), Err(Error::UnknownId { id: 77 }));
        worker_lives_on(&pool);
        assert_reported("request drop boom");
    });
}

#[test]
fn refused_init_data_whose_drop_panics_costs_only_that_request() {
    isolated("refused_init_data_whose_drop_panics_costs_only_that_request", || {
        let pool = one_worker_pool();
        step("an add refused as a duplicate, whose init data's Drop panics on the worker");
        let init = ProbeInit { trap: Trap::armed("init drop boom"), ..ProbeInit::value(99) };
        assert_eq!(
            pool.send_and_receive_once(AddRequest::new(0, init)).err(),
            Some(Error::DuplicateId { id: 0 })
        );
        worker_lives_on(&pool);
        assert_reported("init drop boom");
    });
}

#[test]
fn a_panic_payload_whose_drop_panics_costs_only_that_request() {
    isolated("a_panic_payload_whose_drop_panics_costs_only_that_request", || {
        let pool = one_worker_pool();
        pool.send_and_receive_once(AddRequest::new(3, ProbeInit::value(0))).unwrap();
        step("an item panics with a payload whose Drop panics");
        let r = pool.send_and_receive_once(ExplodeWithTrappedPayload(3));
        assert!(matches!(r, Err(Error::Panicked { id: 3, .. })), "{r:?}");
        assert_eq!(
            pool.send_and_receive_once(Get(3)),
            Err(Error::UnknownId { id: 3 }),
            "the item was removed"
        );
        worker_lives_on(&pool);
        assert_reported("payload drop boom");
    });
}

/// Per-worker state whose `Drop` panics (when the worker exits).
#[derive(Default)]
struct ExplodingState;

impl Drop for ExplodingState {
    fn drop(&mut self) {
        panic!("thread state drop boom");
    }
}

struct Stateful;

impl PoolItem for Stateful {
    type Init = ();
    type Api = ();
    type Response = ();
    type ThreadState = ExplodingState;

    fn new_pool_item(_: u64, _: ()) -> Result<Self, NewItemError> {
        Ok(Stateful)
    }

    fn process_message(&mut self, _: ()) {}
}

struct Ping(u64);
impl Request<Stateful> for Ping {
    type Response = ();
    fn into_message(self) -> Message<Stateful> {
        Message::Call { id: self.0, request: () }
    }
    fn from_reply(reply: Reply<Stateful>) -> Option<()> {
        match reply {
            Reply::Response(()) => Some(()),
            _ => None,
        }
    }
}

#[test]
fn a_thread_state_whose_drop_panics_is_reported_and_the_worker_exits_cleanly() {
    isolated("a_thread_state_whose_drop_panics_is_reported_and_the_worker_exits_cleanly", || {
        let pool = ThreadPool::<Stateful>::builder()
            .workers(1)
            .pinning(Pinning::Off)
            .panic_handler(|r| REPORTS.lock().unwrap_or_else(|e| e.into_inner()).push(r))
            .exit_handler(|_| {
                EXITS.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        pool.send_and_receive_once(AddRequest::new(1, ())).unwrap();
        assert_eq!(pool.send_and_receive_once(Ping(1)), Ok(()));
        step("shutting down a pool whose thread state's Drop panics");
        assert_eq!(pool.shutdown(), Ok(()));
        assert_eq!(
            EXITS.load(Ordering::SeqCst),
            1,
            "the exit handler ran after the thread state's Drop panicked"
        );
        assert_reported("thread state drop boom");
    });
}

#[test]
fn an_item_whose_drop_panics_after_its_handler_panicked_is_reported_twice() {
    isolated("an_item_whose_drop_panics_after_its_handler_panicked_is_reported_twice", || {
        let pool = one_worker_pool();
        let faults = Faults { drop: Fault::Panic("item drop boom"), ..Faults::NONE };
        let init = ProbeInit { faults, ..ProbeInit::value(0) };
        pool.send_and_receive_once(AddRequest::new(9, init)).unwrap();
        step("an item's handler panics, then its Drop panics");
        let r = pool.send_and_receive_once(Explode(9, "handler boom"));
        assert!(matches!(r, Err(Error::Panicked { id: 9, .. })), "{r:?}");
        assert_eq!(
            pool.send_and_receive_once(Get(9)),
            Err(Error::UnknownId { id: 9 }),
            "the item was removed"
        );
        worker_lives_on(&pool);
        let reports = reports();
        let of_9: Vec<&str> =
            reports.iter().filter(|r| r.id == Some(9)).map(|r| r.message.as_str()).collect();
        assert!(
            of_9.iter().any(|m| m.contains("handler boom")),
            "the handler's panic was reported: {reports:?}"
        );
        assert!(
            of_9.iter().any(|m| m.contains("item drop boom")),
            "the drop's panic was reported: {reports:?}"
        );
        assert_eq!(reports.len(), 2, "{reports:?}");
    });
}

// ---------------------------------------------------------------------------
// 3, continued: the same kind of fault at sites beyond the original list.
// ---------------------------------------------------------------------------

/// Adds item `id` with these faults to the pool.
fn add_faulty(pool: &ThreadPool<Probe>, id: u64, faults: Faults) {
    pool.send_and_receive_once(AddRequest::new(id, ProbeInit { faults, ..ProbeInit::value(0) })).unwrap();
}

#[test]
fn an_on_shutdown_hook_that_panics_with_a_trapped_payload_does_not_kill_the_worker() {
    isolated("an_on_shutdown_hook_that_panics_with_a_trapped_payload_does_not_kill_the_worker", || {
        let pool = one_worker_pool();
        add_faulty(&pool, 1, Faults { on_shutdown: Fault::PanicWithTrappedPayload, ..Faults::NONE });
        add_faulty(&pool, 2, Faults::NONE);
        step("shutting down: an item's on_shutdown panics with a payload whose Drop panics");
        assert_eq!(pool.shutdown(), Ok(()));
        assert_eq!(SHUTDOWN_HOOKS.load(Ordering::SeqCst), 3, "every item's on_shutdown ran");
        assert_eq!(
            EXITS.load(Ordering::SeqCst),
            1,
            "the worker finished its shutdown and ran its exit handler"
        );
        assert_reported("payload drop boom");
    });
}

#[test]
fn an_item_whose_on_shutdown_and_drop_both_panic_does_not_abort_the_process() {
    isolated("an_item_whose_on_shutdown_and_drop_both_panic_does_not_abort_the_process", || {
        let pool = one_worker_pool();
        let faults = Faults {
            on_shutdown: Fault::Panic("shutdown hook boom"),
            drop: Fault::Panic("item drop boom"),
            ..Faults::NONE
        };
        add_faulty(&pool, 1, faults);
        step("shutting down: an item's on_shutdown panics, then its Drop panics");
        assert_eq!(pool.shutdown(), Ok(()));
        assert_eq!(
            EXITS.load(Ordering::SeqCst),
            1,
            "the worker finished its shutdown and ran its exit handler"
        );
        assert_reported("shutdown hook boom");
        assert_reported("item drop boom");
    });
}

#[test]
fn a_request_whose_drop_panics_after_pre_process_panicked_does_not_abort_the_process() {
    isolated("a_request_whose_drop_panics_after_pre_process_panicked_does_not_abort_the_process", || {
        let pool = one_worker_pool();
        add_faulty(&pool, 1, Faults { pre_process: Fault::Panic("pre_process boom"), ..Faults::NONE });
        step("pre_process panics, then the unprocessed request's Drop panics");
        let r = pool.send_and_receive_once(CarryTrap(1));
        assert!(matches!(r, Err(Error::Panicked { id: 1, .. })), "{r:?}");
        worker_lives_on(&pool);
        assert_reported("pre_process boom");
        assert_reported("request drop boom");
    });
}

#[test]
fn a_response_whose_drop_panics_after_post_process_panicked_does_not_abort_the_process() {
    isolated("a_response_whose_drop_panics_after_post_process_panicked_does_not_abort_the_process", || {
        let pool = one_worker_pool();
        add_faulty(&pool, 1, Faults { post_process: Fault::Panic("post_process boom"), ..Faults::NONE });
        step("post_process panics, then the unsent response's Drop panics");
        let r = pool.send_and_receive_once(TrappedResponse(1));
        assert!(matches!(r, Err(Error::Panicked { id: 1, .. })), "{r:?}");
        worker_lives_on(&pool);
        assert_reported("post_process boom");
        assert_reported("response drop boom");
    });
}

#[test]
fn an_item_whose_drop_panics_with_a_trapped_payload_after_its_handler_panicked_does_not_kill_the_worker() {
    isolated(
        "an_item_whose_drop_panics_with_a_trapped_payload_after_its_handler_panicked_does_not_kill_the_worker",
        || {
            let pool = one_worker_pool();
            add_faulty(&pool, 9, Faults { drop: Fault::PanicWithTrappedPayload, ..Faults::NONE });
            step("an item's handler panics, then its Drop panics with a payload whose Drop panics");
            let r = pool.send_and_receive_once(Explode(9, "handler boom"));
            assert!(matches!(r, Err(Error::Panicked { id: 9, .. })), "{r:?}");
            worker_lives_on(&pool);
            assert_reported("handler boom");
            assert_reported("payload drop boom");
        },
    );
}

/// Whether the panic handler of `a_panic_handler_that_panics...` is to
/// panic (once).
static HANDLER_TRAP: AtomicBool = AtomicBool::new(true);

#[test]
fn a_panic_handler_that_panics_with_a_trapped_payload_does_not_kill_the_worker() {
    isolated("a_panic_handler_that_panics_with_a_trapped_payload_does_not_kill_the_worker", || {
        let pool = ThreadPool::<Probe>::builder()
            .workers(1)
            .pinning(Pinning::Off)
            .panic_handler(|r| {
                REPORTS.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                if HANDLER_TRAP.swap(false, Ordering::SeqCst) {
                    std::panic::panic_any(Trap::armed("handler payload drop boom"));
                }
            })
            .exit_handler(|_| {
                EXITS.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        pool.send_and_receive_once(AddRequest::new(0, ProbeInit::value(0))).unwrap();
        pool.send_and_receive_once(AddRequest::new(1, ProbeInit::value(0))).unwrap();
        step("an item panics; the panic handler panics with a payload whose Drop panics");
        let r = pool.send_and_receive_once(Explode(1, "handler boom"));
        assert!(matches!(r, Err(Error::Panicked { id: 1, .. })), "{r:?}");
        worker_lives_on(&pool);
        assert_reported("handler boom");
    });
}

// ---------------------------------------------------------------------------
// 4. Re-entrant calls from the `Drop` of a request refused at shutdown.
// ---------------------------------------------------------------------------

/// A pool, also in `REENTRY_POOL`, that this thread has called once (so
/// that once the pool is shut down its calls are refused at the shutdown
/// gate, not at registration).
fn reentry_pool() -> Arc<ThreadPool<Probe>> {
    let pool = Arc::new(probe_pool(1));
    assert!(REENTRY_POOL.set(pool.clone()).is_ok());
    pool.send_and_receive_once(AddRequest::new(0, ProbeInit::value(0))).unwrap();
    pool
}

fn inner_results() -> Vec<Result<u64, Error>> {
    INNER_RESULTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[test]
fn a_refused_call_whose_request_calls_the_pool_from_drop_gets_shutdown() {
    isolated("a_refused_call_whose_request_calls_the_pool_from_drop_gets_shutdown", || {
        let pool = reentry_pool();
        pool.shutdown().unwrap();
        step("a call refused at shutdown whose request calls the pool from its Drop");
        let outer = catch_unwind(AssertUnwindSafe(|| pool.send_and_receive_once(Reentrant(0))))
            .unwrap_or_else(|p| panic!("the refused call panicked: {}", payload_text(&*p)));
        assert_eq!(outer, Err(Error::Shutdown));
        assert_eq!(inner_results(), [Err(Error::Shutdown)], "the call made from Drop");
    });
}

#[test]
fn a_refused_batch_whose_requests_call_the_pool_from_drop_gets_shutdown() {
    isolated("a_refused_batch_whose_requests_call_the_pool_from_drop_gets_shutdown", || {
        let pool = reentry_pool();
        let responses = pool.send_and_receive(vec![Reentrant(0), Reentrant(0)]).unwrap();
        pool.shutdown().unwrap();
        step("a batch refused at shutdown whose requests call the pool from their Drop");
        let got = catch_unwind(AssertUnwindSafe(|| responses.collect::<Vec<_>>()))
            .unwrap_or_else(|p| panic!("the refused batch panicked: {}", payload_text(&*p)));
        assert_eq!(got, [Err(Error::Shutdown), Err(Error::Shutdown)]);
        assert_eq!(inner_results(), [Err(Error::Shutdown), Err(Error::Shutdown)], "the calls made from Drop");
    });
}

// ---------------------------------------------------------------------------
// 5. Statistics read right after a reply.
// ---------------------------------------------------------------------------
//
// Each round sends a batch of two requests to one worker; the second holds
// the worker up (a gate) until the test has read the statistics after the
// first reply. So the worker is still in the pass that answered the first
// request when the statistics are read: counts kept "once per pass, after
// publishing" are stale then, every round.

const STATS_ROUNDS: u64 = 2000;

#[test]
fn statistics_count_an_acknowledged_add_or_remove_at_once() {
    isolated("statistics_count_an_acknowledged_add_or_remove_at_once", || {
        let pool = probe_pool(2);
        let mut misses = Vec::new();
        let mut check = |what: &str, id: u64, expected: u64, items: u64| {
            if items != expected {
                misses.push(format!("after {what} {id}: items() = {items}, expected {expected}"));
            }
        };
        // Items `4r + w` and `4r + 2 + w` of round `r` both live on worker `w`.
        let pair = |round: u64| {
            let a = 4 * round + round % 2;
            (a, a + 2)
        };
        let mut ticket = 0;
        step("batches of two adds, reading stats().items() after the first reply");
        for round in 0..STATS_ROUNDS {
            let (a, b) = pair(round);
            ticket += 1;
            let adds = [
                AddRequest::new(a, ProbeInit::value(0)),
                AddRequest::new(b, ProbeInit { gate_in_new: Some(Gate(ticket)), ..ProbeInit::value(0) }),
            ];
            let mut responses = pool.send_and_receive(adds).unwrap();
            assert_eq!(responses.next().map(|r| r.map(|r| r.id)), Some(Ok(a)));
            check("adding", a, 2 * round + 1, pool.stats().items());
            release(ticket);
            assert_eq!(responses.next().map(|r| r.map(|r| r.id)), Some(Ok(b)));
            drop(responses);
            check("adding", b, 2 * round + 2, pool.stats().items());
        }
        step("batches of two removes, reading stats().items() after the first reply");
        for round in 0..STATS_ROUNDS {
            let (a, b) = pair(round);
            ticket += 1;
            // Replace `b` by one whose `Drop` waits on the gate.
            assert!(pool.send_and_receive_once(RemoveRequest(b)).unwrap().existed);
            let init = ProbeInit { gate_in_drop: Some(Gate(ticket)), ..ProbeInit::value(0) };
            pool.send_and_receive_once(AddRequest::new(b, init)).unwrap();
            let left = 2 * (STATS_ROUNDS - round);
            let mut responses = pool.send_and_receive([RemoveRequest(a), RemoveRequest(b)]).unwrap();
            assert!(responses.next().unwrap().unwrap().existed);
            // `b` is being removed (its `Drop` waits on the gate): counted
            // or not, but `a` is gone.
            let items = pool.stats().items();
            check("removing", a, if items == left - 2 { left - 2 } else { left - 1 }, items);
            release(ticket);
            assert!(responses.next().unwrap().unwrap().existed);
            drop(responses);
            check("removing", b, left - 2, pool.stats().items());
        }
        assert!(
            misses.is_empty(),
            "{} reads of stats().items() right after an acknowledged add or remove were wrong; the first: {:#?}",
            misses.len(),
            &misses[..misses.len().min(5)]
        );
    });
}

#[test]
fn statistics_count_an_answered_request_at_once() {
    isolated("statistics_count_an_answered_request_at_once", || {
        let pool = probe_pool(2);
        for id in [0, 1] {
            pool.send_and_receive_once(AddRequest::new(id, ProbeInit::value(0))).unwrap();
        }
        // Requests answered so far (this thread is the pool's only caller).
        let mut answered = 2u64;
        let mut misses = Vec::new();
        step("batches of a call and a gated call, reading stats().requests() after the first reply");
        for round in 0..STATS_ROUNDS {
            let id = round % 2;
            let ticket = round + 1;
            let mut responses = pool.send_and_receive([Wait(id, 0), Wait(id, ticket)]).unwrap();
            assert_eq!(responses.next(), Some(Ok(())));
            answered += 1;
            let requests = pool.stats().requests();
            if requests < answered {
                misses.push(format!("round {round}: requests() = {requests}, but {answered} were answered"));
            }
            release(ticket);
            assert_eq!(responses.next(), Some(Ok(())));
            drop(responses);
            answered += 1;
            let requests = pool.stats().requests();
            if requests < answered {
                misses.push(format!("round {round}: requests() = {requests}, but {answered} were answered"));
            }
        }
        assert!(
            misses.is_empty(),
            "{} reads of stats().requests() right after a reply missed answered requests; the first: {:#?}",
            misses.len(),
            &misses[..misses.len().min(5)]
        );
    });
}

// ---------------------------------------------------------------------------
// Found by review: leftovers, long spins, concurrent and hostage shutdowns.
// ---------------------------------------------------------------------------

/// Waits (bounded) until `n` `Wait` handlers have started.
fn wait_for_waiters(n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while WAITING.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the worker never started waiting");
        std::thread::yield_now();
    }
}

/// A batch whose responses all panic when dropped, dropped after its first
/// response: each of the others is dropped (one panic must not strand the
/// rest in their slots, where a worker or the thread's exit would later drop
/// two in one go and abort), and the first panic reaches the caller.
#[test]
fn a_dropped_batch_whose_responses_panic_on_drop_drops_every_one() {
    isolated("a_dropped_batch_whose_responses_panic_on_drop_drops_every_one", || {
        let pool = Arc::new(probe_pool(1));
        pool.send_and_receive_once(AddRequest::new(0, ProbeInit::value(0))).unwrap();
        let p = pool.clone();
        step("a caller thread drops a batch of booby-trapped responses, then exits");
        std::thread::spawn(move || {
            let mut r = p.send_and_receive((0..4).map(|_| KeptTrap(0))).unwrap();
            r.next().unwrap().unwrap().armed = false;
            let caught = catch_unwind(AssertUnwindSafe(|| drop(r)));
            assert_eq!(payload_text(&*caught.expect_err("a response's drop panicked")), "response drop boom");
            assert_eq!(SPRUNG.load(Ordering::SeqCst), 3, "every leftover response was dropped by the batch");
        })
        .join()
        .unwrap();
        step("the worker reclaims the exited caller and goes on");
        assert_eq!(pool.send_and_receive_once(Bump(0)), Ok(1));
        shutdown_cleanly(&pool);
    });
}

/// A worker that idles with a long spin never parks, so it never reaches
/// the poll before parking: it must still find a lazily announced push
/// while the batch's iterator blocks.
#[test]
fn a_batch_iterator_that_blocks_while_the_worker_spins_long_sees_its_earlier_requests_processed() {
    isolated(
        "a_batch_iterator_that_blocks_while_the_worker_spins_long_sees_its_earlier_requests_processed",
        || {
            let pool = ThreadPool::<Probe>::builder()
                .workers(1)
                .pinning(Pinning::Off)
                .worker_spin(Duration::from_secs(3600))
                .exit_handler(|_| {
                    EXITS.fetch_add(1, Ordering::SeqCst);
                })
                .build()
                .unwrap();
            pool.send_and_receive_once(AddRequest::new(0, ProbeInit::value(0))).unwrap();
            step("a batch whose iterator waits at request 5 for the requests pushed before it");
            let got: Vec<_> = pool
                .send_and_receive(hooked_batch(Site::Iterator, Hook::WaitFor(AT as usize)))
                .unwrap()
                .collect();
            assert!(
                !STARVED.load(Ordering::SeqCst),
                "pushed requests were never processed while user code blocked"
            );
            assert_eq!(got.len(), BATCH as usize);
            shutdown_cleanly(&pool);
        },
    );
}

/// A shutdown with a short deadline returns at its deadline even while
/// another shutdown, with a long one, waits for the same stuck worker.
#[test]
fn a_second_shutdown_with_a_short_deadline_returns_while_a_first_one_waits() {
    isolated("a_second_shutdown_with_a_short_deadline_returns_while_a_first_one_waits", || {
        let pool = Arc::new(probe_pool(1));
        pool.send_and_receive_once(AddRequest::new(0, ProbeInit::value(0))).unwrap();
        let p = pool.clone();
        let stuck = std::thread::spawn(move || p.send_and_receive_once(Wait(0, 1)));
        wait_for_waiters(1);
        let p = pool.clone();
        let first = std::thread::spawn(move || p.shutdown_timeout(Duration::MAX));
        // Not synchronisation: only gives the first shutdown time to start
        // waiting, so that the old bug (it held a lock the second one
        // needed) would show. The outcome does not depend on it.
        std::thread::sleep(Duration::from_millis(50));
        step("the second shutdown, with a deadline of 100 ms");
        assert_eq!(
            pool.shutdown_timeout(Duration::from_millis(100)),
            Err(Error::ShutdownTimedOut { stuck: vec![0] })
        );
        release(1);
        assert_eq!(first.join().unwrap(), Ok(()));
        assert_eq!(stuck.join().unwrap(), Ok(()));
    });
}

/// A caller waiting for room in the ring of a worker stuck in user code
/// waits outside the shutdown gate, so the other, healthy worker still
/// quiesces: only the stuck worker is named, and the waiting call is
/// refused once the pool closes.
#[test]
fn a_call_waiting_on_a_stuck_workers_full_ring_does_not_hold_the_other_workers_shutdown() {
    isolated("a_call_waiting_on_a_stuck_workers_full_ring_does_not_hold_the_other_workers_shutdown", || {
        let pool = Arc::new(
            ThreadPool::<Probe>::builder()
                .workers(2)
                .pinning(Pinning::Off)
                .ring_capacity(2)
                .exit_handler(|_| {
                    EXITS.fetch_add(1, Ordering::SeqCst);
                })
                .build()
                .unwrap(),
        );
        for id in [0, 1] {
            pool.send_and_receive_once(AddRequest::new(id, ProbeInit::value(0))).unwrap();
        }
        let p = pool.clone();
        let stuck = std::thread::spawn(move || p.send_and_receive_once(Wait(1, 1)));
        wait_for_waiters(1);
        static CALLING: AtomicBool = AtomicBool::new(false);
        let p = pool.clone();
        let filler = std::thread::spawn(move || {
            let inner = Arc::new(Mutex::new(None));
            let (p2, inner2) = (p.clone(), inner.clone());
            let mut n = 0;
            // Two bumps fill this thread's ring to worker 1; then, from the
            // iterator, a single call to worker 1 that finds it full.
            let requests = std::iter::from_fn(move || {
                n += 1;
                if n <= 2 {
                    return Some(Bump(1));
                }
                if n == 3 {
                    CALLING.store(true, Ordering::SeqCst);
                    *inner2.lock().unwrap() = Some(p2.send_and_receive_once(Bump(1)));
                }
                None
            });
            let batch: Vec<_> = p.send_and_receive(requests).unwrap().collect();
            let inner = inner.lock().unwrap().take();
            (batch, inner)
        });
        while !CALLING.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Not synchronisation (see above): lets the call reach its wait.
        std::thread::sleep(Duration::from_millis(50));
        step("shutdown with worker 1 stuck and a call waiting for room in its ring");
        assert_eq!(
            pool.shutdown_timeout(Duration::from_secs(2)),
            Err(Error::ShutdownTimedOut { stuck: vec![1] })
        );
        assert_eq!(EXITS.load(Ordering::SeqCst), 1, "worker 0 shut down");
        release(1);
        let (batch, inner) = filler.join().unwrap();
        assert_eq!(batch, [Ok(1), Ok(2)], "the two bumps were in the ring before the pool closed");
        assert_eq!(inner, Some(Err(Error::Shutdown)), "the waiting call was refused once the pool closed");
        assert_eq!(stuck.join().unwrap(), Ok(()));
        assert_eq!(pool.shutdown(), Ok(()));
    });
}
