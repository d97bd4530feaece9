//! Optional `tracing` instrumentation (feature `tracing`, off by default).
//!
//! Without the feature every macro here expands to nothing, so the pool pays
//! nothing for it and pulls in no dependency.

/// An event at the given level: `event!(debug, id, "item added")`.
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "shardpool", $($arg)*);
    };
}

/// Enters a span for the rest of the enclosing block:
/// `span!(trace, "call", id)`.
macro_rules! span {
    ($level:ident, $name:literal $(, $($field:tt)*)?) => {
        #[cfg(feature = "tracing")]
        let _span = tracing::span!(target: "shardpool", tracing::Level::$level, $name $(, $($field)*)?).entered();
    };
}

pub(crate) use {event, span};
