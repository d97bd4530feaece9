use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    #[hook]
    pub fn new(_id: u64) -> Self {
        Shelf
    }
}

fn main() {}
