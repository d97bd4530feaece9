use shardpool::pool_item;

pub struct Shelf;

// `init_request` names the generated `ShelfInit(id)`, which an item
// created from init data does not get.
#[pool_item(init_request = NewShelf)]
impl Shelf {
    pub fn new(_id: u64, _rows: u32) -> Self {
        Shelf
    }
}

fn main() {}
