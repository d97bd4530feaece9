use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[messaging(TakeRequest, TakeResponse)]
    pub fn take(self) -> u32 {
        1
    }
}

fn main() {}
