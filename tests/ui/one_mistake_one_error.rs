use shardpool::{pool_item, ThreadPool};

pub struct Library {
    books: Vec<String>,
}

#[pool_item]
impl Library {
    pub fn new(_id: u64) -> Self {
        Library { books: Vec::new() }
    }

    #[messaging(AddBookRequest, AddBookResponse)]
    pub fn add_book(&mut self, title: String) -> usize {
        self.books.push(title);
        self.books.len()
    }

    // The one mistake: a borrowed argument.
    #[messaging(FindRequest, FindResponse)]
    pub fn find(&self, title: &str) -> bool {
        self.books.iter().any(|b| b == title)
    }
}

// The rest of the crate uses the item and its other types, and compiles:
// the macro still generated them.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::<Library>::new(1)?;
    pool.send_and_receive_once(LibraryInit(1))?;
    let added: AddBookResponse = pool.send_and_receive_once(AddBookRequest(1, "Dune".into()))?;
    assert_eq!(added.result, 1);
    Ok(())
}
