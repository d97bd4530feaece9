//! Nested calls: items calling items, on the same worker, on other workers
//! and in other pools. Call graphs (chains, diamonds, cycles, batches inside
//! handlers) across 1 to 4 workers and two pools, each run under a deadline
//! and checked against the answer worked out from the graph alone; then the
//! waiting worker's behaviour: it serves other requests, defers those for
//! its busy item in order, refuses what would wait for ever, bounds its
//! depth, and shuts down cleanly in the middle of a wait.

mod common;

use common::{counting, eventually, poll_once, poll_until_ready, Latch};
use shardpool::{
    AddRequest, ChainLink, Error, Message, NewItemError, Pinning, PoolItem, Reply, Request, ThreadPool,
    MAX_NESTED_DEPTH,
};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Weak};
use std::thread;
use std::time::Duration;

/// Runs `f` on a thread of its own; fails the test if it takes more than
/// `secs` seconds (a hang).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("hung: watchdog expired")
}

/// What a call does: on item `id` of pool `pool`, make the calls of `then`
/// (one after another, or as one batch), then answer with what they
/// answered.
#[derive(Clone, Debug)]
struct Step {
    pool: usize,
    id: u64,
    batch: bool,
    then: Vec<Step>,
}

fn step(pool: usize, id: u64, then: Vec<Step>) -> Step {
    Step { pool, id, batch: false, then }
}

fn batch(pool: usize, id: u64, then: Vec<Step>) -> Step {
    Step { pool, id, batch: true, then }
}

/// What a call answered: who answered, and what its own calls answered.
#[derive(Clone, Debug, PartialEq)]
struct Visit {
    pool: usize,
    id: u64,
    calls: Vec<Result<Visit, Error>>,
}

/// An item that runs steps, and a few other things the tests need.
struct Graph {
    id: u64,
    pool: usize,
    pools: Vec<Weak<ThreadPool<Graph>>>,
    log: Vec<u64>,
}

struct GraphInit {
    pool: usize,
    pools: Vec<Weak<ThreadPool<Graph>>>,
}

enum GraphApi {
    Run(Step),
    /// Wait on the latch, then call item `then` of this pool (if any).
    Hold(Latch, Option<u64>),
    /// Append to the item's log.
    Record(u64),
    /// Open the latch; answer with the item's log.
    Open(Latch),
    /// The item's log.
    Log,
    /// Call item `id + 1` of this pool with one less, until none is left.
    Descend(usize),
    /// Send item `.0` a record of `.1`, with no reply, then call item `.2`
    /// (if any) for its log: the send and the call leave on one lane, so
    /// the record is taken from the ring before the call is answered.
    /// Answer with this item's log.
    Poke(u64, u64, Option<u64>),
    /// Call each item with its request, in order; answer with the last
    /// answer.
    Seq(Vec<(u64, GraphApi)>),
}

enum GraphResponse {
    Visit(Visit),
    Held(Result<Vec<u64>, Error>),
    Log(Vec<u64>),
    Depth(Result<usize, Error>),
    Last(Result<Box<GraphResponse>, Error>),
}

impl PoolItem for Graph {
    type Init = GraphInit;
    type Api = GraphApi;
    type Response = GraphResponse;
    type ThreadState = usize;

    fn new_pool_item(id: u64, init: GraphInit) -> Result<Self, NewItemError> {
        Ok(Graph { id, pool: init.pool, pools: init.pools, log: Vec::new() })
    }

    fn process_message(&mut self, request: GraphApi) -> GraphResponse {
        match request {
            GraphApi::Run(s) => {
                let calls = if s.batch {
                    self.call_batch(&s.then)
                } else {
                    s.then.iter().map(|c| self.call(c)).collect()
                };
                GraphResponse::Visit(Visit { pool: self.pool, id: self.id, calls })
            }
            GraphApi::Hold(latch, then) => {
                latch.wait();
                let pool = self.pools[self.pool].upgrade().unwrap();
                let r = match then {
                    Some(to) => pool.send_and_receive_once(Ask(to)).map(|_| self.log.clone()),
                    None => Ok(self.log.clone()),
                };
                GraphResponse::Held(r)
            }
            GraphApi::Record(v) => {
                self.log.push(v);
                GraphResponse::Log(self.log.clone())
            }
            GraphApi::Log => GraphResponse::Log(self.log.clone()),
            GraphApi::Open(latch) => {
                latch.open();
                GraphResponse::Log(self.log.clone())
            }
            GraphApi::Poke(to, v, then) => {
                let pool = self.pools[self.pool].upgrade().unwrap();
                pool.send(Record(to, v)).unwrap();
                if let Some(then) = then {
                    pool.send_and_receive_once(Raw(then, GraphApi::Log)).unwrap();
                }
                GraphResponse::Log(self.log.clone())
            }
            GraphApi::Seq(calls) => {
                let pool = self.pools[self.pool].upgrade().unwrap();
                let mut last = Err(Error::UnknownId { id: u64::MAX });
                for (id, api) in calls {
                    last = pool.send_and_receive_once(Raw(id, api)).map(Box::new);
                }
                GraphResponse::Last(last)
            }
            GraphApi::Descend(left) => {
                if left == 0 {
                    return GraphResponse::Depth(Ok(0));
                }
                let pool = self.pools[self.pool].upgrade().unwrap();
                let below = pool.send_and_receive_once(Descend(self.id + 1, left - 1));
                GraphResponse::Depth(below.and_then(|d| d.map(|d| d + 1)))
            }
        }
    }

    fn pre_process(&mut self, state: &mut usize) {
        *state += 1;
    }

    fn post_process(&mut self, state: &mut usize) {
        *state += 1;
    }
}

impl Graph {
    fn call(&self, s: &Step) -> Result<Visit, Error> {
        let pool = self.pools[s.pool].upgrade().expect("pool alive");
        pool.send_and_receive_once(Run(s.clone()))
    }

    /// The steps as batches, one per run of steps to the same pool.
    fn call_batch(&self, steps: &[Step]) -> Vec<Result<Visit, Error>> {
        let mut out = Vec::new();
        for run in steps.chunk_by(|a, b| a.pool == b.pool) {
            let pool = self.pools[run[0].pool].upgrade().expect("pool alive");
            let responses: Vec<_> = match pool.send_and_receive(run.iter().cloned().map(Run)) {
                Ok(responses) => responses.collect(),
                Err(e) => run.iter().map(|_| Err(e.clone())).collect(),
            };
            out.extend(responses);
        }
        out
    }
}

struct Run(Step);
impl Request<Graph> for Run {
    type Response = Visit;
    fn into_message(self) -> Message<Graph> {
        Message::Call { id: self.0.id, request: GraphApi::Run(self.0) }
    }
    fn from_reply(reply: Reply<Graph>) -> Option<Visit> {
        match reply {
            Reply::Response(GraphResponse::Visit(v)) => Some(v),
            _ => None,
        }
    }
}

/// Any request, answered with the item's response as it is.
struct Raw(u64, GraphApi);
impl Request<Graph> for Raw {
    type Response = GraphResponse;
    fn into_message(self) -> Message<Graph> {
        Message::Call { id: self.0, request: self.1 }
    }
    fn from_reply(reply: Reply<Graph>) -> Option<GraphResponse> {
        match reply {
            Reply::Response(r) => Some(r),
            _ => None,
        }
    }
}

struct Ask(u64);
impl Request<Graph> for Ask {
    type Response = Vec<u64>;
    fn into_message(self) -> Message<Graph> {
        Message::Call { id: self.0, request: GraphApi::Log }
    }
    fn from_reply(reply: Reply<Graph>) -> Option<Vec<u64>> {
        match reply {
            Reply::Response(GraphResponse::Log(l)) => Some(l),
            _ => None,
        }
    }
}

struct Record(u64, u64);
impl Request<Graph> for Record {
    type Response = Vec<u64>;
    fn into_message(self) -> Message<Graph> {
        Message::Call { id: self.0, request: GraphApi::Record(self.1) }
    }
    fn from_reply(reply: Reply<Graph>) -> Option<Vec<u64>> {
        match reply {
            Reply::Response(GraphResponse::Log(l)) => Some(l),
            _ => None,
        }
    }
}

struct Hold(u64, Latch, Option<u64>);
impl Request<Graph> for Hold {
    type Response = Result<Vec<u64>, Error>;
    fn into_message(self) -> Message<Graph> {
        Message::Call { id: self.0, request: GraphApi::Hold(self.1, self.2) }
    }
    fn from_reply(reply: Reply<Graph>) -> Option<Self::Response> {
        match reply {
            Reply::Response(GraphResponse::Held(r)) => Some(r),
            _ => None,
        }
    }
}

struct Descend(u64, usize);
impl Request<Graph> for Descend {
    type Response = Result<usize, Error>;
    fn into_message(self) -> Message<Graph> {
        Message::Call { id: self.0, request: GraphApi::Descend(self.1) }
    }
    fn from_reply(reply: Reply<Graph>) -> Option<Self::Response> {
        match reply {
            Reply::Response(GraphResponse::Depth(r)) => Some(r),
            _ => None,
        }
    }
}

/// Pools of `workers[i]` workers each, with items `0..items` in every one
/// (item `id` on worker `id % workers`).
fn pools(workers: &[usize], items: u64) -> Vec<Arc<ThreadPool<Graph>>> {
    let pools: Vec<_> = workers
        .iter()
        .map(|&w| Arc::new(ThreadPool::<Graph>::builder().workers(w).pinning(Pinning::Off).build().unwrap()))
        .collect();
    let weak: Vec<_> = pools.iter().map(Arc::downgrade).collect();
    for (i, p) in pools.iter().enumerate() {
        let adds = (0..items).map(|id| AddRequest::new(id, GraphInit { pool: i, pools: weak.clone() }));
        p.send_and_receive(adds).unwrap().collect_all::<Vec<_>>().unwrap();
    }
    pools
}

/// What running `s` must answer, worked out from the graph: a call whose
/// target is on its own chain (`path`) is refused as a cycle naming the
/// chain; every other call answers with what its own calls answered.
fn expected(s: &Step, path: &mut Vec<(usize, u64)>) -> Result<Visit, Error> {
    if path.contains(&(s.pool, s.id)) {
        let mut chain: Vec<_> = path.iter().map(|&(_, id)| id).collect();
        chain.push(s.id);
        return Err(Error::Cycle { id: s.id, chain: links(&chain) });
    }
    path.push((s.pool, s.id));
    let calls = s.then.iter().map(|c| expected(c, path)).collect();
    path.pop();
    Ok(Visit { pool: s.pool, id: s.id, calls })
}

fn links(ids: &[u64]) -> Vec<ChainLink> {
    ids.iter().map(|&id| ChainLink { pool: std::any::type_name::<Graph>(), id }).collect()
}

/// Runs `s` from outside the pools, under a deadline, and checks it.
fn check(pools: &[Arc<ThreadPool<Graph>>], s: Step) {
    check_either(pools, s, None);
}

/// [`check`], where `or`, if given, is the one other answer the pools may
/// give (a timing the graph does not fix).
fn check_either(pools: &[Arc<ThreadPool<Graph>>], s: Step, or: Option<Result<Visit, Error>>) {
    let want = expected(&s, &mut Vec::new());
    let pool = pools[s.pool].clone();
    let got = within(60, move || pool.send_and_receive_once(Run(s)));
    if or.as_ref() != Some(&got) {
        assert_eq!(got, want);
    }
}

#[test]
fn chains_across_one_to_four_workers_are_answered() {
    for workers in 1..=4 {
        let p = pools(&[workers], 8);
        // 0 -> 1 -> 2 -> ... -> 7: every hop to the next worker (or, on one
        // worker, inline).
        let mut s = step(0, 7, vec![]);
        for id in (0..7).rev() {
            s = step(0, id, vec![s]);
        }
        check(&p, s.clone());
        // The same chain, every hop a batch of one.
        let mut s = batch(0, 7, vec![]);
        for id in (0..7).rev() {
            s = batch(0, id, vec![s]);
        }
        check(&p, s);
    }
}

#[test]
fn diamonds_are_answered() {
    for workers in 1..=4 {
        let p = pools(&[workers], 8);
        // 0 calls 1 and 2; each calls 3; 3 calls 4 and 5.
        let d = || step(0, 3, vec![step(0, 4, vec![]), step(0, 5, vec![])]);
        check(&p, step(0, 0, vec![step(0, 1, vec![d()]), step(0, 2, vec![d()])]));
        // The same, each fan-out a batch: 1 and 2 run at once where they
        // are on different workers, and both call 3.
        let d = || batch(0, 3, vec![step(0, 4, vec![]), step(0, 5, vec![])]);
        let s = batch(0, 0, vec![batch(0, 1, vec![d()]), batch(0, 2, vec![d()])]);
        // On 2 workers, 1 and 3 share worker 1. If item 2's call reaches 3
        // first, worker 1 may take item 1's request in a pass made while 3
        // waits for 4; item 1 then calls 3, which is busy lower on that very
        // stack and cannot resume before 1 returns: refused as a cycle
        // naming 0, 1 and 3. Either answer is exact; nothing else is right.
        let mut refused = expected(&s, &mut Vec::new());
        if let Ok(Visit { calls, .. }) = &mut refused {
            if let Some(Ok(Visit { calls, .. })) = calls.first_mut() {
                calls[0] = Err(Error::Cycle { id: 3, chain: links(&[0, 1, 3]) });
            }
        }
        check_either(&p, s, (workers == 2).then_some(refused));
    }
}

#[test]
fn cycles_fail_fast_with_their_chain_on_any_number_of_workers() {
    for workers in 1..=4 {
        let p = pools(&[workers], 8);
        // 0 -> 0.
        check(&p, step(0, 0, vec![step(0, 0, vec![])]));
        // 0 -> 1 -> 0.
        check(&p, step(0, 0, vec![step(0, 1, vec![step(0, 0, vec![])])]));
        // 0 -> 1 -> 2 -> 3 -> 1, then 0 goes on to call 4.
        check(
            &p,
            step(
                0,
                0,
                vec![
                    step(0, 1, vec![step(0, 2, vec![step(0, 3, vec![step(0, 1, vec![])])])]),
                    step(0, 4, vec![]),
                ],
            ),
        );
        // Through a batch: 0 batches 1 and 2; 2 calls 0.
        check(&p, batch(0, 0, vec![step(0, 1, vec![]), step(0, 2, vec![step(0, 0, vec![])])]));
    }
}

#[test]
fn chains_and_cycles_across_two_pools() {
    let p = pools(&[2, 3], 6);
    // Pool 0's item 1 calls pool 1's item 1 (another item: same id, other
    // pool), which calls pool 0's item 2.
    check(&p, step(0, 1, vec![step(1, 1, vec![step(0, 2, vec![])])]));
    // Pool 0's 1 -> pool 1's 4 -> pool 0's 1: a cycle across pools.
    check(&p, step(0, 1, vec![step(1, 4, vec![step(0, 1, vec![])])]));
    // Pool 1's 0 batches pool 0's 0..4, each calling pool 1's 5.
    let fan = (0..4).map(|id| step(0, id, vec![step(1, 5, vec![])])).collect();
    check(&p, batch(1, 0, fan));
}

#[test]
fn many_callers_run_crossing_graphs_at_once_without_hanging() {
    let p = pools(&[3], 9);
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let p = p.clone();
            thread::spawn(move || {
                for round in 0..200u64 {
                    let a = (t + round) % 9;
                    let b = (t * 2 + round + 1) % 9;
                    let c = (t * 5 + round + 2) % 9;
                    let s = step(0, a, vec![step(0, b, vec![step(0, c, vec![])]), step(0, c, vec![])]);
                    // Crossing graphs may meet items busy in another graph;
                    // a call waiting on such an item waits, or is refused if
                    // it would wait for ever. Nothing hangs, and every answer
                    // is the graph's own or a cycle.
                    match p[0].send_and_receive_once(Run(s.clone())) {
                        Ok(v) => assert_visit_matches(&v, &s),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    within(120, move || threads.into_iter().for_each(|t| t.join().unwrap()));
}

/// `v` answers `s`, each call with its visit or a cycle refusal.
fn assert_visit_matches(v: &Visit, s: &Step) {
    assert_eq!((v.pool, v.id), (s.pool, s.id));
    assert_eq!(v.calls.len(), s.then.len());
    for (c, t) in v.calls.iter().zip(&s.then) {
        match c {
            Ok(v) => assert_visit_matches(v, t),
            Err(Error::Cycle { id, .. }) => assert_eq!(*id, t.id),
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

/// What `Hold` answers, as a thread that made the call returns it.
type Held = thread::JoinHandle<Result<Result<Vec<u64>, Error>, Error>>;

/// Item 1 (worker 1) held on a latch, and item 0 (worker 0) in a call to
/// it. Returns once item 0's handler is running: from then on worker 0
/// serves anything only from within item 0's wait, until the latch opens.
/// Gives the latch and the threads of item 1's and item 0's calls.
fn item_0_waiting_on_held_item_1(p: &Arc<ThreadPool<Graph>>) -> (Latch, Held, Held) {
    let latch = Latch::new();
    let hold1 = thread::spawn({
        let (p, l) = (p.clone(), latch.clone());
        move || p.send_and_receive_once(Hold(1, l, None))
    });
    latch.until_waiting(1);
    // Item 0 counts itself on an open latch as it starts, then calls item
    // 1, whose request waits behind item 1's handler.
    let started = Latch::open_already();
    let outer = thread::spawn({
        let (p, s) = (p.clone(), started.clone());
        move || p.send_and_receive_once(Hold(0, s, Some(1)))
    });
    started.until_waiting(1);
    (latch, hold1, outer)
}

#[test]
fn while_an_item_waits_its_worker_answers_calls_to_its_other_items() {
    // Item 0 (worker 0) calls item 1 (worker 1), held on a latch. While
    // item 0 waits, worker 0 answers a call to item 2, from outside (it
    // would be stuck in item 0's handler, were it not serving).
    let p = pools(&[2], 4);
    let (latch, hold1, outer) = item_0_waiting_on_held_item_1(&p[0]);
    let got = within(60, {
        let p0 = p[0].clone();
        move || p0.send_and_receive_once(Record(2, 5)).unwrap()
    });
    assert_eq!(got, [5]);
    assert!(!outer.is_finished(), "item 0 still waits on item 1");
    latch.open();
    assert_eq!(within(60, move || outer.join().unwrap()).unwrap(), Ok(vec![]));
    within(60, move || hold1.join().unwrap()).unwrap().unwrap();
}

#[test]
fn requests_for_an_item_in_a_call_wait_for_it_in_order_and_nothing_else_does() {
    let p = pools(&[2], 4);
    let (latch, hold1, outer) = item_0_waiting_on_held_item_1(&p[0]);
    // From one thread: five sends to item 0 (deferred: taken off the ring,
    // queued for item 0), then a call to it (left in the ring: its reply
    // cell is answered in order), then, from another thread, calls to item
    // 2 on the same worker, answered at once.
    let sender = thread::spawn({
        let p0 = p[0].clone();
        move || {
            for k in 1..=5 {
                p0.send(Record(0, k)).unwrap();
            }
            p0.send_and_receive_once(Record(0, 6)).unwrap()
        }
    });
    for k in 0..3 {
        let got = within(60, {
            let p0 = p[0].clone();
            move || p0.send_and_receive_once(Record(2, k)).unwrap()
        });
        assert_eq!(got, (0..=k).collect::<Vec<_>>());
    }
    assert!(!outer.is_finished() && !sender.is_finished(), "item 0 still waits on item 1");
    latch.open();
    // Item 0's own call comes first, then the sends, in order, then the call.
    assert_eq!(within(60, move || outer.join().unwrap()).unwrap(), Ok(vec![]));
    assert_eq!(within(60, move || sender.join().unwrap()), [1, 2, 3, 4, 5, 6]);
    within(60, move || hold1.join().unwrap()).unwrap().unwrap();
    assert_eq!(p[0].send_and_receive_once(Ask(0)).unwrap(), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn inline_calls_nest_to_the_stated_depth_and_past_it_fail_without_overflowing() {
    // One worker: every call is inline, each a level deeper.
    let p = pools(&[1], MAX_NESTED_DEPTH as u64 + 2);
    let deepest = MAX_NESTED_DEPTH - 1;
    assert_eq!(p[0].send_and_receive_once(Descend(0, deepest)).unwrap(), Ok(deepest));
    match p[0].send_and_receive_once(Descend(0, MAX_NESTED_DEPTH)).unwrap() {
        Err(Error::TooDeep { id, depth }) => {
            assert_eq!((id, depth), (MAX_NESTED_DEPTH as u64, MAX_NESTED_DEPTH))
        }
        other => panic!("{other:?}"),
    }
    // Across two workers the levels alternate between them, each waiting
    // while its worker serves: deeper chains, same bound per thread.
    let p = pools(&[2], 2 * MAX_NESTED_DEPTH as u64 + 2);
    let got = within(60, {
        let p = p[0].clone();
        move || p.send_and_receive_once(Descend(0, 2 * MAX_NESTED_DEPTH - 2)).unwrap()
    });
    assert_eq!(got, Ok(2 * MAX_NESTED_DEPTH - 2));
    let got = within(60, {
        let p = p[0].clone();
        move || p.send_and_receive_once(Descend(0, 2 * MAX_NESTED_DEPTH)).unwrap()
    });
    assert!(matches!(got, Err(Error::TooDeep { .. })), "{got:?}");
}

#[test]
fn shutdown_while_an_item_waits_on_a_nested_call_answers_it_and_refuses_new_calls() {
    // Item 0 calls item 1, whose handler counts itself on a latch and
    // waits: once it is counted, item 0's call is past the gate and in a
    // handler, so the shutdown that follows must let it be answered.
    let p = pools(&[2], 4);
    let latch = Latch::new();
    let outer = thread::spawn({
        let (p, l) = (p[0].clone(), latch.clone());
        move || p.send_and_receive_once(Raw(0, GraphApi::Seq(vec![(1, GraphApi::Hold(l, None))]))).unwrap()
    });
    latch.until_waiting(1);
    let closing = thread::spawn({
        let p0 = p[0].clone();
        move || p0.shutdown_timeout(Duration::from_secs(30))
    });
    while !p[0].is_shut_down() {
        thread::yield_now();
    }
    assert_eq!(p[0].send_and_receive_once(Record(2, 1)), Err(Error::Shutdown));
    assert!(!outer.is_finished(), "item 0 still waits on item 1");
    latch.open();
    match within(60, move || outer.join().unwrap()) {
        GraphResponse::Last(Ok(held)) => match *held {
            GraphResponse::Held(r) => assert_eq!(r, Ok(vec![])),
            _ => panic!("not a hold"),
        },
        GraphResponse::Last(Err(e)) => panic!("{e}"),
        _ => panic!("not a sequence"),
    }
    assert_eq!(within(60, move || closing.join().unwrap()), Ok(()));
}

#[test]
fn an_item_called_inline_again_after_a_request_was_deferred_for_it_runs_that_request_first() {
    // Item 0 (worker 0) calls item 2 inline; item 2 calls item 1 (worker
    // 1), which sends item 2 a record while item 2 waits, then calls item 4
    // (worker 0) over the same lane: worker 0, serving in item 2's wait,
    // takes the record first and defers it before it can answer item 1.
    // Item 0 then calls item 2 inline again: the record, sent before, runs
    // first, and the call is not taken for a cycle (item 2 is not busy,
    // only owed a request).
    let p = pools(&[2], 5);
    let first = GraphApi::Seq(vec![(1, GraphApi::Poke(2, 9, Some(4)))]);
    let script = GraphApi::Seq(vec![(2, first), (2, GraphApi::Log)]);
    let got = within(60, {
        let p = p[0].clone();
        move || p.send_and_receive_once(Raw(0, script)).unwrap()
    });
    match got {
        GraphResponse::Last(Ok(log)) => match *log {
            GraphResponse::Log(log) => assert_eq!(log, [9]),
            _ => panic!("not a log"),
        },
        GraphResponse::Last(Err(e)) => panic!("{e}"),
        _ => panic!("not a sequence"),
    }
}

#[test]
fn an_async_call_waiting_for_room_is_woken_while_a_handler_of_that_ring_waits() {
    // One lane of two cells. Item 4's handler holds worker 0 while an async
    // call to item 0 fills the ring and a second async call, to item 2,
    // waits for room. Item 4 is let go: worker 0 takes item 0's request,
    // freeing the cells, and item 0 calls item 1 (worker 1), which waits
    // for a latch that only item 2's request opens. The second call must be
    // woken while item 0 waits (its pass would wake it only after item 0
    // returned, which waits on it).
    within(60, || {
        let pool = Arc::new(
            ThreadPool::<Graph>::builder().workers(2).ring_capacity(1).pinning(Pinning::Off).build().unwrap(),
        );
        let weak = vec![Arc::downgrade(&pool)];
        for id in 0..5 {
            let init = GraphInit { pool: 0, pools: weak.clone() };
            pool.send_and_receive_once(AddRequest::new(id, init)).unwrap();
        }
        let hold = Latch::new();
        pool.send(Raw(4, GraphApi::Hold(hold.clone(), None))).unwrap();
        hold.until_waiting(1);
        let latch = Latch::new();
        let (_, w1) = counting();
        let (second_waker, w2) = counting();
        let mut first = pool.send_and_receive_once_async(Raw(
            0,
            GraphApi::Seq(vec![(1, GraphApi::Hold(latch.clone(), None))]),
        ));
        assert!(poll_once(&mut first, &w1).is_pending());
        let mut second = pool.send_and_receive_once_async(Raw(2, GraphApi::Open(latch.clone())));
        assert!(poll_once(&mut second, &w2).is_pending(), "the ring is full");
        assert_eq!(second_waker.wakes.load(Ordering::SeqCst), 0);
        hold.open();
        // Item 1 is waiting: item 0 is in its call, its pass not over.
        latch.until_waiting(1);
        let woken = eventually(|| second_waker.wakes.load(Ordering::SeqCst) > 0);
        if !woken {
            // Unblock everything so that the failure is reported, not hung.
            latch.open();
        }
        assert!(woken, "the call waiting for room was not woken while item 0 waited");
        match poll_until_ready(&mut second, &w2) {
            Ok(GraphResponse::Log(log)) => assert!(log.is_empty()),
            _ => panic!("not item 2's log"),
        }
        match poll_until_ready(&mut first, &w1) {
            Ok(GraphResponse::Last(Ok(held))) => {
                assert!(matches!(*held, GraphResponse::Held(Ok(ref log)) if log.is_empty()))
            }
            _ => panic!("not item 0's sequence"),
        }
    });
}
