use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[messaging(ReadRequest, ReadResponse)]
    pub fn read(&self) -> u32 {
        1
    }

    #[messaging(ReadRequest, PeekResponse)]
    pub fn peek(&self) -> u32 {
        2
    }
}

fn main() {}
