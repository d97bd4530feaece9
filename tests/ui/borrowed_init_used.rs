use shardpool::{pool_item, AddRequest, ThreadPool};

pub struct Shelf;

#[pool_item]
impl Shelf {
    // The one mistake: borrowed init data.
    pub fn new(_id: u64, _title: &String) -> Self {
        Shelf
    }
}

// No second error here: the item's `Init` is still `String`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::<Shelf>::new(1)?;
    pool.send_and_receive_once(AddRequest::new(1, String::from("Dune")))?;
    Ok(())
}
