//! The samples on real pools: the chat room, the `!Send` session, nested
//! pools (shared and owned child pools), and the id provider.

use shardpool::{AddRequest, Error, IdProvider, RemoveRequest, RemoveResponse, ThreadPool};
use shardpool_samples::{
    BatchShutdown, ChatRoom, ChatRoomInit, ChildrenRequest, HistoryRequest, LogActionRequest, LogRequest,
    PostRequest, Randoms, RandomsBatch, RandomsBatchInit, SumOfSumsRequest, SumRequest, UserSession,
    UserSessionInit,
};
use std::collections::HashSet;
use std::sync::{mpsc, Arc};

type Res = Result<(), Box<dyn std::error::Error>>;

#[test]
fn chat_rooms_keep_their_own_history_in_post_order() -> Res {
    let pool = ThreadPool::<ChatRoom>::new(3)?;
    pool.send_and_receive((0..6).map(ChatRoomInit))?.collect::<Result<Vec<_>, _>>()?;
    // Interleave posts to all rooms in one batch.
    let posts =
        (0..4).flat_map(|n| (0..6).map(move |room| PostRequest(room, format!("u{n}"), format!("m{n}"))));
    let lengths: Vec<usize> =
        pool.send_and_receive(posts)?.map(|r| r.map(|r| r.result)).collect::<Result<_, _>>()?;
    assert_eq!(lengths, (1..=4).flat_map(|n| [n; 6]).collect::<Vec<_>>());
    for room in 0..6 {
        let history = pool.send_and_receive_once(HistoryRequest(room))?.result;
        assert_eq!(history, ["u0: m0", "u1: m1", "u2: m2", "u3: m3"]);
    }
    assert_eq!(pool.send_and_receive_once(HistoryRequest(6)), Err(Error::UnknownId { id: 6 }));
    Ok(())
}

#[test]
fn sessions_with_rc_state_work_from_many_threads() -> Res {
    let pool = Arc::new(ThreadPool::<UserSession>::new(2)?);
    pool.send_and_receive((0..4).map(UserSessionInit))?.collect::<Result<Vec<_>, _>>()?;
    let handles: Vec<_> = (0..4)
        .map(|session| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || -> Result<Vec<usize>, Error> {
                (0..5)
                    .map(|n| {
                        pool.send_and_receive_once(LogActionRequest(session, format!("{n}")))
                            .map(|r| r.result)
                    })
                    .collect()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("no panic")?, [1, 2, 3, 4, 5]);
    }
    for session in 0..4 {
        let log = pool.send_and_receive_once(LogRequest(session))?.result;
        assert_eq!(log, (0..5).map(|n| format!("action: {n}")).collect::<Vec<_>>());
    }
    Ok(())
}

type Batches = ThreadPool<RandomsBatch<ThreadPool<Randoms>>>;

#[test]
fn batches_share_a_child_pool_and_report_their_children_at_shutdown() -> Res {
    let children = Arc::new(ThreadPool::<Randoms>::new(2)?);
    let batches = Batches::new(2)?;
    let ids = Arc::new(IdProvider::new(0));
    let (reports, reported) = mpsc::channel();
    let adds = (0..4).map(|id| {
        AddRequest::new(
            id,
            RandomsBatchInit {
                children: 5,
                numbers: 20,
                ids: Arc::clone(&ids),
                pool: Arc::clone(&children),
                shutdown_reports: Some(reports.clone()),
            },
        )
    });
    batches.send_and_receive(adds)?.collect::<Result<Vec<_>, _>>()?;
    assert_eq!(ids.peek(), 20, "each batch took five ids");

    let owned: Vec<Vec<u64>> = batches
        .send_and_receive((0..4).map(ChildrenRequest))?
        .map(|r| r.map(|r| r.result))
        .collect::<Result<_, _>>()?;
    let all: HashSet<u64> = owned.iter().flatten().copied().collect();
    assert_eq!(all, (0..20).collect(), "no child id was handed out twice");

    let sums: Vec<Result<u128, Error>> = batches
        .send_and_receive((0..4).map(SumOfSumsRequest))?
        .map(|r| r.map(|r| r.result))
        .collect::<Result<_, _>>()?;
    for (batch, sum) in owned.iter().zip(sums) {
        let expected: u128 = batch.iter().map(|&c| Randoms::new(c, 20).sum()).sum();
        assert_eq!(sum, Ok(expected));
    }

    batches.shutdown()?;
    drop(reports);
    let mut shut: Vec<BatchShutdown> = reported.iter().collect();
    shut.sort_by_key(|r| r.id);
    assert_eq!(shut.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1, 2, 3]);
    for (report, batch) in shut.iter().zip(&owned) {
        let expected: Vec<_> = batch.iter().map(|&id| Ok(RemoveResponse { id, existed: true })).collect();
        assert_eq!(report.children, expected);
    }
    // Every child is gone from the shared pool.
    let left: Vec<_> = children.send_and_receive((0..20).map(SumRequest))?.collect();
    assert!(left.iter().enumerate().all(|(id, r)| *r == Err(Error::UnknownId { id: id as u64 })));
    Ok(())
}

#[test]
fn a_removed_batch_takes_its_children_with_it() -> Res {
    let children = Arc::new(ThreadPool::<Randoms>::new(1)?);
    let batches = Batches::new(1)?;
    let init = RandomsBatchInit {
        children: 3,
        numbers: 1,
        ids: Arc::new(IdProvider::new(10)),
        pool: Arc::clone(&children),
        shutdown_reports: None,
    };
    batches.send_and_receive_once(AddRequest::new(1, init))?;
    assert!(children.send_and_receive_once(SumRequest(10)).is_ok());
    assert!(batches.send_and_receive_once(RemoveRequest(1))?.existed);
    let left: Vec<_> = children.send_and_receive((10..13).map(SumRequest))?.collect();
    assert!(left.iter().all(|r| matches!(r, Err(Error::UnknownId { .. }))), "{left:?}");
    Ok(())
}

#[test]
fn each_batch_may_own_its_child_pool() -> Res {
    let batches = Batches::new(2)?;
    let ids = Arc::new(IdProvider::default());
    for id in 0..2 {
        let init = RandomsBatchInit {
            children: 4,
            numbers: 5,
            ids: Arc::clone(&ids),
            pool: Arc::new(ThreadPool::<Randoms>::new(1)?),
            shutdown_reports: None,
        };
        batches.send_and_receive_once(AddRequest::new(id, init))?;
    }
    for id in 0..2 {
        let mine = batches.send_and_receive_once(ChildrenRequest(id))?.result;
        let expected: u128 = mine.iter().map(|&c| Randoms::new(c, 5).sum()).sum();
        assert_eq!(batches.send_and_receive_once(SumOfSumsRequest(id))?.result, Ok(expected));
    }
    // Shutting the batches down drops the last handle of each child pool,
    // on the batch's worker, which shuts it down in turn.
    batches.shutdown()?;
    Ok(())
}

#[test]
fn a_batch_whose_children_cannot_be_created_is_not_created() -> Res {
    let children = Arc::new(ThreadPool::<Randoms>::new(1)?);
    let ids = Arc::new(IdProvider::new(0));
    // Child 1 exists already: the batch's second child collides with it.
    children.send_and_receive_once(AddRequest::new(1, shardpool_samples::RandomsInit { count: 1 }))?;
    let batches = Batches::new(1)?;
    let init = RandomsBatchInit {
        children: 3,
        numbers: 1,
        ids,
        pool: Arc::clone(&children),
        shutdown_reports: None,
    };
    let added = batches.send_and_receive_once(AddRequest::new(9, init));
    assert!(
        matches!(&added, Err(Error::InitFailed { id: 9, error }) if error.to_string().contains("id 1")),
        "{added:?}"
    );
    // Its other children were removed again; the item that was there stays.
    let left: Vec<_> = children.send_and_receive([0, 1, 2].map(SumRequest))?.map(|r| r.is_ok()).collect();
    assert_eq!(left, [false, true, false]);
    Ok(())
}

#[test]
fn ids_from_many_threads_are_distinct() {
    let ids = Arc::new(IdProvider::new(1));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ids = Arc::clone(&ids);
            std::thread::spawn(move || {
                let mut mine: Vec<u64> = (0..500).map(|_| ids.next_id()).collect();
                mine.extend(ids.next_ids(10));
                mine
            })
        })
        .collect();
    let all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("no panic")).collect();
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len());
    assert_eq!(distinct, (1..=2040).collect());
    assert_eq!(ids.peek(), 2041);
}
