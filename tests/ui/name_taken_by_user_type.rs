use shardpool::pool_item;

/// The user's own type, which the generated init request would shadow.
pub struct BookInit {
    pub title: String,
}

pub struct Book;

#[pool_item]
impl Book {
    pub fn new(_id: u64) -> Self {
        Book
    }
}

fn main() {}
