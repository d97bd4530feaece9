use shardpool::pool_item;
use std::rc::Rc;

pub struct Shelf;

#[pool_item]
impl Shelf {
    // The init data travels to the item's worker: an `Rc` cannot.
    pub fn new(_id: u64, _label: Rc<String>) -> Self {
        Shelf
    }
}

fn main() {}
