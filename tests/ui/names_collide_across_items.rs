use shardpool::pool_item;

pub struct Book;

#[pool_item]
impl Book {
    pub fn new(_id: u64) -> Self {
        Book
    }

    #[messaging(GetRequest, GetResponse)]
    pub fn get(&self) -> u32 {
        1
    }
}

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[messaging(GetRequest, GetResponse)]
    pub fn get(&self) -> u32 {
        2
    }
}

fn main() {}
