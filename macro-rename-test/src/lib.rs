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

/// What a facade crate does: re-export shardpool under a path of its own,
/// for crates that depend on the facade and not on shardpool.
pub mod facade {
    pub use sp as engine;
}

/// An item whose macro is told where shardpool is (`crate = ..`), as a
/// crate using the facade would write it.
pub struct Relay;

#[sp::pool_item(crate = crate::facade::engine)]
impl Relay {
    /// The relay.
    pub fn new(_id: u64) -> Self {
        Relay
    }

    /// Answers `x`.
    #[messaging(EchoRequest, EchoResponse)]
    pub fn echo(&self, x: u8) -> u8 {
        x
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

    #[test]
    fn the_generated_code_uses_the_crate_path_given() -> Result<(), Box<dyn std::error::Error>> {
        let pool = crate::facade::engine::ThreadPool::<Relay>::new(1)?;
        pool.send_and_receive_once(RelayInit(1))?;
        assert_eq!(pool.send_and_receive_once(EchoRequest(1, 7))?.result, 7);
        Ok(())
    }
}
