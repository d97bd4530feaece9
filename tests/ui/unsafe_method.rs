use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[messaging(PeekRequest, PeekResponse)]
    pub unsafe fn peek(&self) -> u8 {
        0
    }
}

fn main() {}
