//! `#[pool_item]` in a crate that depends on shardpool under another name
//! (`sp`, in `Cargo.toml`) and imports nothing: the generated code must
//! reach the crate as `::sp`, since `::shardpool` does not exist here.
#![warn(missing_docs)]

/// A counter, written with the renamed crate's macro.
pub struct Counter {
    total: i64,
}

#[sp::pool_item]
impl Counter {
    /// A counter at `start`.
    pub fn new(_id: u64, start: i64) -> Self {
        Counter { total: start }
    }

    /// Adds `by`; returns the new total.
    #[messaging(AddRequest, AddResponse)]
    pub fn add(&mut self, by: i64) -> i64 {
        self.total += by;
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_code_finds_the_renamed_crate() -> Result<(), Box<dyn std::error::Error>> {
        let pool = sp::ThreadPool::<Counter>::new(1)?;
        pool.send_and_receive_once(sp::AddRequest::new(1, 40))?;
        assert_eq!(pool.send_and_receive_once(AddRequest(1, 2))?.result, 42);
        Ok(())
    }
}
