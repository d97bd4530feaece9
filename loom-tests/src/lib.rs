//! Loom models of shardpool protocols; see tests/.
