//! An async service on tokio: accounts live on the pool's workers, and
//! request handlers (tokio tasks, moved between threads by the runtime)
//! call them with `.await`.
//!
//! Shows: awaitable calls and batches, a runtime timeout around a call
//! (cancelling it safely), sends without a reply and the error handler that
//! sees their failures, broadcast, `ids` and `contains`.
//!
//! Run with `cargo run --release --example async_service`.

use shardpool::{pool_item, Error, ThreadPool};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A bank account; it lives on one worker for life.
pub struct Account {
    id: u64,
    balance: i64,
    history: Vec<i64>,
}

#[pool_item]
impl Account {
    fn new(id: u64) -> Self {
        Account { id, balance: 0, history: Vec::new() }
    }

    /// Adds `amount` (negative to withdraw); answers the new balance.
    #[messaging(DepositRequest, DepositResponse)]
    fn deposit(&mut self, amount: i64) -> i64 {
        self.balance += amount;
        self.history.push(amount);
        self.balance
    }

    #[messaging(BalanceRequest, BalanceResponse)]
    fn balance(&self) -> (u64, i64, usize) {
        (self.id, self.balance, self.history.len())
    }

    /// An audit that takes a while.
    #[messaging(AuditRequest, AuditResponse)]
    fn audit(&self, millis: u64) -> bool {
        std::thread::sleep(Duration::from_millis(millis));
        self.history.iter().sum::<i64>() == self.balance
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let failed_sends = Arc::new(AtomicUsize::new(0));
    let seen = failed_sends.clone();
    let pool = Arc::new(
        ThreadPool::<Account>::builder()
            .workers(2)
            .error_handler(move |e| {
                eprintln!("a send failed: {e}");
                seen.fetch_add(1, Ordering::Relaxed);
            })
            .build()?,
    );

    // Open 100 accounts with one awaited batch.
    let mut opened = pool.send_and_receive_async((0..100).map(AccountInit));
    while let Some(r) = opened.next().await {
        r?;
    }

    // 20 request handlers, each depositing into its own five accounts and
    // awaiting every answer: per account, their deposits are applied in
    // order, whichever threads the runtime runs them on.
    let handlers: Vec<_> = (0..20u64)
        .map(|h| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for round in 1..=50 {
                    for account in (h * 5)..(h * 5 + 5) {
                        let balance =
                            pool.send_and_receive_once_async(DepositRequest(account, round)).await?;
                        assert_eq!(balance.result, (1..=round).sum::<i64>());
                    }
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for h in handlers {
        h.await??;
    }
    println!("20 handlers made 5,000 awaited deposits");

    // Deposits nobody waits for; one to an account that does not exist
    // reaches the error handler instead of vanishing.
    pool.send(DepositRequest(7, 1_000))?;
    pool.send(DepositRequest(1_000, 1))?;
    let seven = pool.send_and_receive_once_async(BalanceRequest(7)).await?.result;
    println!("account 7 after a send: balance {}, {} deposits", seven.1, seven.2);

    // A slow audit under a runtime timeout: the future is dropped, the
    // audit still runs, and its answer is dropped when it comes.
    let audit =
        tokio::time::timeout(Duration::from_millis(5), pool.send_and_receive_once_async(AuditRequest(3, 50)));
    println!("audit of account 3 within 5 ms: {}", if audit.await.is_err() { "timed out" } else { "done" });
    let audit = pool.send_and_receive_once_async(AuditRequest(3, 0)).await?;
    println!("audit of account 3 awaited: consistent = {}", audit.result);

    // Every account at once, and the set of ids. These three are blocking
    // calls (there is no async form of them yet): fine here, where `main`
    // runs on its own thread; inside a task on a runtime worker, wrap them
    // in `spawn_blocking`.
    let balances = pool.broadcast(BalanceRequest)?;
    let total: i64 = balances.iter().map(|(_, r)| r.as_ref().map_or(0, |b| b.result.1)).sum();
    println!("broadcast to {} accounts: total balance {total}", balances.len());
    println!(
        "{} ids; contains(99) = {}, contains(100) = {}",
        pool.ids()?.len(),
        pool.contains(99)?,
        pool.contains(100)?
    );
    println!("failed sends reported: {}", failed_sends.load(Ordering::Relaxed));
    Ok(())
}
