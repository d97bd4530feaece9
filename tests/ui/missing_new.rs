use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    #[messaging(ReadRequest, ReadResponse)]
    pub fn read(&self) -> u32 {
        1
    }
}

fn main() {}
