use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[hook]
    fn pre_process(&mut self) {}
}

fn main() {}
