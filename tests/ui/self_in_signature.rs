use shardpool::pool_item;

pub struct Node {
    next: Option<u64>,
}

#[pool_item]
impl Node {
    pub fn new(_id: u64) -> Self {
        Node { next: None }
    }

    #[messaging(CloneRequest, CloneResponse)]
    pub fn snapshot(&self) -> Option<Self> {
        self.next.map(|next| Node { next: Some(next) })
    }
}

fn main() {}
