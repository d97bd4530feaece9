//! `SenderAndReceiverMock`: scripts, expectations, failures, threads, and the
//! pattern it exists for: unit-testing an item that owns a child pool.

use shardpool::{
    AddRequest, AddResponse, Error, IdProvider, RemoveRequest, RemoveResponse, SenderAndReceiver,
    SenderAndReceiverMock, ThreadPool,
};
use shardpool_samples::{
    BatchShutdown, MeanRequest, MeanResponse, Randoms, RandomsBatch, RandomsBatchInit, RandomsInit,
    SumOfSumsRequest, SumRequest, SumResponse,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};

type Mock = SenderAndReceiverMock<Randoms>;

fn init(children: usize, pool: &Arc<Mock>) -> RandomsBatchInit<Mock> {
    RandomsBatchInit {
        children,
        numbers: 10,
        ids: Arc::new(IdProvider::new(100)),
        pool: Arc::clone(pool),
        shutdown_reports: None,
    }
}

fn add(id: u64) -> AddRequest<Randoms> {
    AddRequest::new(id, RandomsInit { count: 10 })
}

/// The message of a caught panic.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn an_item_with_a_child_pool_is_tested_without_threads() {
    let mock = Arc::new(
        Mock::new()
            // Creating the batch creates its children...
            .expect(add(100), AddResponse { id: 100 })
            .expect(add(101), AddResponse { id: 101 })
            // ...asking it for the sum of sums asks each child...
            .expect(SumRequest(100), SumResponse { id: 100, sum: 30 })
            .expect(SumRequest(101), SumResponse { id: 101, sum: 12 })
            // ...and dropping it removes them.
            .expect(RemoveRequest(100), RemoveResponse { id: 100, existed: true })
            .expect(RemoveRequest(101), RemoveResponse { id: 101, existed: true }),
    );
    let batch = RandomsBatch::new(7, init(2, &mock)).expect("both children were created");
    assert_eq!(batch.children(), [100, 101]);
    assert_eq!(batch.sum_of_sums(), Ok(42));
    assert_eq!(mock.calls(), 4);
    drop(batch);
    mock.assert_complete();
}

#[test]
fn a_child_that_fails_fails_the_parent_and_its_siblings_are_removed() {
    let mock = Arc::new(
        Mock::new()
            .expect(add(100), AddResponse { id: 100 })
            .expect_err(add(101), Error::DuplicateId { id: 101 })
            .expect(RemoveRequest(100), RemoveResponse { id: 100, existed: true }),
    );
    let made = RandomsBatch::new(7, init(2, &mock));
    assert_eq!(made.err(), Some(Error::DuplicateId { id: 101 }));
    mock.assert_complete();
}

#[test]
fn a_child_error_reaches_the_caller_of_the_parent() {
    let mock = Arc::new(
        Mock::new()
            .respond(AddResponse { id: 100 })
            .expect_err(SumRequest(100), Error::Panicked { id: 100, message: "boom".into() })
            .respond(RemoveResponse { id: 100, existed: false }),
    );
    let batch = RandomsBatch::new(1, init(1, &mock)).expect("the child was created");
    assert_eq!(batch.sum_of_sums(), Err(Error::Panicked { id: 100, message: "boom".into() }));
    drop(batch);
    mock.assert_complete();
}

#[test]
fn the_mock_serves_a_real_parent_pool_on_its_worker_threads() -> Result<(), Box<dyn std::error::Error>> {
    let mock = Arc::new(
        Mock::new()
            .expect(add(100), AddResponse { id: 100 })
            .expect(SumRequest(100), SumResponse { id: 100, sum: 5 })
            .expect(RemoveRequest(100), RemoveResponse { id: 100, existed: true }),
    );
    let (reports, reported) = mpsc::channel();
    let parents = ThreadPool::<RandomsBatch<Mock>>::new(2)?;
    let init = RandomsBatchInit { shutdown_reports: Some(reports), ..init(1, &mock) };
    parents.send_and_receive_once(AddRequest::new(3, init))?;
    assert_eq!(parents.send_and_receive_once(SumOfSumsRequest(3))?.result, Ok(5));
    parents.shutdown()?;
    let report = reported.recv()?;
    assert_eq!(
        report,
        BatchShutdown { id: 3, children: vec![Ok(RemoveResponse { id: 100, existed: true })] }
    );
    mock.assert_complete();
    Ok(())
}

#[test]
fn a_mismatch_inside_a_pool_is_a_panic_there_and_a_failure_here() -> Result<(), Box<dyn std::error::Error>> {
    // The batch will ask for the sum of child 100, not 999.
    let mock = Arc::new(
        Mock::new().respond(AddResponse { id: 100 }).expect(SumRequest(999), SumResponse { id: 999, sum: 5 }),
    );
    let parents = ThreadPool::<RandomsBatch<Mock>>::new(1)?;
    parents.send_and_receive_once(AddRequest::new(3, init(1, &mock)))?;
    // The worker catches the mock's panic: the parent's caller sees it.
    let outcome = parents.send_and_receive_once(SumOfSumsRequest(3));
    assert!(
        matches!(&outcome, Err(Error::Panicked { id: 3, message }) if message.contains("SumRequest(999)")),
        "{outcome:?}"
    );
    // And the mock remembers it.
    assert!(!mock.is_complete());
    let report = catch_unwind(AssertUnwindSafe(|| mock.assert_complete())).expect_err("the script failed");
    let report = panic_text(report);
    assert!(report.contains("request #2 was a call to item 100"), "{report}");
    Ok(())
}

#[test]
fn a_request_other_than_the_expected_one_panics() {
    let mock = Mock::new().expect(MeanRequest(1), MeanResponse { id: 1, mean: 1 });
    let caught = catch_unwind(AssertUnwindSafe(|| mock.send_and_receive_once(MeanRequest(2))));
    let text = panic_text(caught.expect_err("the request differs"));
    assert!(text.contains("Mean(MeanRequest(2))") && text.contains("Mean(MeanRequest(1))"), "{text}");

    // Another kind of message with the same id differs too.
    let mock = Mock::new().expect(RemoveRequest(1), RemoveResponse { id: 1, existed: true });
    assert!(catch_unwind(AssertUnwindSafe(|| mock.send_and_receive_once(add(1)))).is_err());
}

#[test]
fn a_request_after_the_script_panics() {
    let mock = Mock::with_responses([MeanResponse { id: 1, mean: 1 }]);
    assert_eq!(mock.send_and_receive_once(MeanRequest(1)), Ok(MeanResponse { id: 1, mean: 1 }));
    let caught = catch_unwind(AssertUnwindSafe(|| mock.send_and_receive_once(MeanRequest(1))));
    assert!(panic_text(caught.expect_err("nothing is left")).contains("request #2"));
    assert_eq!(mock.calls(), 2);
    assert!(!mock.is_complete());
}

#[test]
fn an_unused_step_fails_the_completeness_check() {
    let mock = Mock::with_expected_requests(
        [SumRequest(1), SumRequest(2)],
        [SumResponse { id: 1, sum: 1 }, SumResponse { id: 2, sum: 2 }],
    );
    mock.send_and_receive_once(SumRequest(1)).expect("scripted");
    assert_eq!(mock.remaining(), 1);
    let report = catch_unwind(AssertUnwindSafe(|| mock.assert_complete())).expect_err("one step is left");
    let report = panic_text(report);
    assert!(report.contains("request #2 never came") && report.contains("SumRequest(2)"), "{report}");
}

#[test]
#[should_panic(expected = "one response for each expected request")]
fn expected_requests_need_as_many_responses() {
    let _ = Mock::with_expected_requests([SumRequest(1)], Vec::<SumResponse>::new());
}

#[test]
fn a_reply_of_the_wrong_kind_is_an_unexpected_response() {
    let mock = Mock::with_responses([SumResponse { id: 4, sum: 1 }]);
    assert_eq!(mock.send_and_receive_once(MeanRequest(4)), Err(Error::UnexpectedResponse { id: 4 }));
}

#[test]
fn a_batch_is_answered_in_order_each_request_its_own_result() -> Result<(), Error> {
    let mock = Mock::new()
        .respond(SumResponse { id: 1, sum: 10 })
        .respond_err(Error::UnknownId { id: 2 })
        .respond(SumResponse { id: 3, sum: 30 });
    let sums: Vec<_> = mock.send_and_receive([1, 2, 3].map(SumRequest))?.collect();
    assert_eq!(
        sums,
        [
            Ok(SumResponse { id: 1, sum: 10 }),
            Err(Error::UnknownId { id: 2 }),
            Ok(SumResponse { id: 3, sum: 30 })
        ]
    );
    assert!(mock.is_complete());
    Ok(())
}

#[test]
fn the_mock_is_shared_across_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    const THREADS: u64 = 8;
    let mock = Arc::new(Mock::with_responses((0..THREADS).map(|id| MeanResponse { id, mean: 0 })));
    send_sync(&mock);
    let handles: Vec<_> = (0..THREADS)
        .map(|id| {
            let mock = Arc::clone(&mock);
            std::thread::spawn(move || mock.send_and_receive_once(MeanRequest(id)).map(|m| m.mean))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("no panic"), Ok(0));
    }
    assert_eq!(mock.calls(), THREADS as usize);
    mock.assert_complete();
}

/// The same generic code runs against the real pool and against the mock.
fn total<S: SenderAndReceiver<Randoms>>(pool: &S, ids: &[u64]) -> Result<u128, Error> {
    pool.send_and_receive(ids.iter().copied().map(SumRequest))?.map(|s| s.map(|s| s.sum)).sum()
}

#[test]
fn code_written_against_the_trait_runs_on_both() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::<Randoms>::new(2)?;
    pool.send_and_receive([1, 2].map(add))?.collect::<Result<Vec<_>, _>>()?;
    let real = total(&pool, &[1, 2])?;
    assert_eq!(real, Randoms::new(1, 10).sum() + Randoms::new(2, 10).sum());

    let mock = Mock::new().respond(SumResponse { id: 1, sum: 1 }).respond(SumResponse { id: 2, sum: 2 });
    assert_eq!(total(&mock, &[1, 2])?, 3);
    assert_eq!(total(&Arc::new(pool), &[3]), Err(Error::UnknownId { id: 3 }));
    Ok(())
}
