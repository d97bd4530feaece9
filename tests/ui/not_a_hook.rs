use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[hook]
    fn before_each(&mut self) {}
}

fn main() {}
