use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64, _name: String, _size: usize) -> Self {
        Shelf
    }
}

fn main() {}
