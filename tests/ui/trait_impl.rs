use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Default for Shelf {
    fn default() -> Self {
        Shelf
    }
}

fn main() {}
