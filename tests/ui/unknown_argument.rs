use shardpool::pool_item;

pub struct Shelf;

#[pool_item(threads = 4)]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }
}

fn main() {}
