use shardpool::{pool_item, ThreadPool};
use std::rc::Rc;

pub struct Stack<T> {
    items: Vec<T>,
}

// No bounds written: the macro adds what the pool needs.
#[pool_item]
impl<T> Stack<T> {
    pub fn new(_id: u64) -> Self {
        Stack { items: Vec::new() }
    }

    #[messaging(PushRequest, PushResponse)]
    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }
}

fn main() {
    // An `Rc` cannot travel in a request.
    let _ = ThreadPool::<Stack<Rc<u8>>>::new(1);
}
