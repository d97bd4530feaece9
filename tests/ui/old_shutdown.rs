use shardpool::pool_item;

pub struct Shelf;

#[pool_item(Shutdown = "shutdown_pool_impl")]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }
}

fn main() {}
