use shardpool::{pool_item, AddRequest, ThreadPool};

pub struct Ledger {
    total: u64,
}

// The one mistake: the constructor is called `create`.
#[pool_item]
impl Ledger {
    pub fn create(_id: u64, start: u64) -> Self {
        Ledger { total: start }
    }

    #[messaging(TotalRequest, TotalResponse)]
    pub fn total(&self) -> u64 {
        self.total
    }
}

// No follow-up errors here: the item still implements `PoolItem`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::<Ledger>::new(1)?;
    pool.send_and_receive_once(AddRequest::new(1, ()))?;
    assert_eq!(pool.send_and_receive_once(TotalRequest(1))?.result, 0);
    Ok(())
}
