use shardpool::pool_item;

pub struct Stock {
    symbol: String,
}

#[pool_item]
impl Stock {
    pub fn new(symbol: String) -> Self {
        Stock { symbol }
    }

    #[messaging(SymbolRequest, SymbolResponse)]
    pub fn symbol(&self) -> String {
        self.symbol.clone()
    }
}

fn main() {}
