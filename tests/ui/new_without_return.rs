use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) {}
}

fn main() {}
