use shardpool::pool_item;

pub struct Shelf;

// The two enums cannot share a name.
#[pool_item(api = ShelfMessages, response = ShelfMessages)]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }
}

fn main() {}
