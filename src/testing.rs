//! An item for the crate's own unit tests.

use crate::error::NewItemError;
use crate::item::PoolItem;
use std::time::Duration;

/// An item whose handler sleeps the number of microseconds it is sent, and
/// answers with it.
pub(crate) struct Sleepy;

impl PoolItem for Sleepy {
    type Init = ();
    type Api = u64;
    type Response = u64;
    type ThreadState = ();

    fn new_pool_item(_: u64, _: ()) -> Result<Self, NewItemError> {
        Ok(Sleepy)
    }

    fn process_message(&mut self, micros: u64) -> u64 {
        std::thread::sleep(Duration::from_micros(micros));
        micros
    }
}
