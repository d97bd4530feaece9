use shardpool::pool_item;
use std::rc::Rc;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[messaging(PutRequest, PutResponse)]
    pub fn put(&self, _book: Rc<String>) {}
}

fn main() {}
