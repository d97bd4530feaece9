use shardpool::pool_item;

pub struct Stock;

#[pool_item]
impl Stock {
    pub fn new(id: u64) -> Option<Self> {
        (id > 0).then_some(Stock)
    }
}

fn main() {}
