use shardpool::pool_item;

/// Neither `Debug`, `Clone` nor `PartialEq`.
pub struct Handle(pub std::fs::File);

pub struct Store;

// Compiles: the request simply does not implement what its fields lack.
#[pool_item]
impl Store {
    pub fn new(_id: u64) -> Self {
        Store
    }

    #[messaging(AttachRequest, AttachResponse)]
    pub fn attach(&mut self, _handle: Handle) {}
}

fn main() {
    let request = AttachRequest(1, Handle(std::fs::File::open("/").unwrap()));
    // The error is here, where `Clone` is asked for, and names the field.
    let _copy = request.clone();
}
