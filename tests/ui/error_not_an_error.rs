use shardpool::pool_item;

pub struct Shelf;

pub struct Broken;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Result<Self, Broken> {
        Err(Broken)
    }
}

fn main() {}
