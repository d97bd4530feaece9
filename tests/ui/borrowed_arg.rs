use shardpool::pool_item;

pub struct Shelf;

#[pool_item]
impl Shelf {
    pub fn new(_id: u64) -> Self {
        Shelf
    }

    #[messaging(FindRequest, FindResponse)]
    pub fn find(&self, title: &str) -> bool {
        title.is_empty()
    }
}

fn main() {}
