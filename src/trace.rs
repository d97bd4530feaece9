//! Optional `tracing` instrumentation (feature `tracing`, off by default).
//!
//! Without the feature every macro here expands to nothing, so the pool pays
//! nothing for it and pulls in no dependency.
//!
//! With it, the subscriber is user code like any other: it may panic, on a
//! worker or in a thread-local destructor (a caller thread retiring its
//! handle as it exits, when the subscriber's own thread-locals may already
//! be gone). So every event, and every span's creation, entry and exit,
//! runs under `catch_unwind`; a panicking subscriber loses that event or
//! span (the panic hook still prints it) and nothing else: no dead worker,
//! no abort.

/// An event at the given level: `event!(debug, id, "item added")`.
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                tracing::$level!(target: "shardpool", $($arg)*);
            }));
        }
    };
}

/// Enters a span for the rest of the enclosing block:
/// `span!(trace, "call", id)`.
macro_rules! span {
    ($level:ident, $name:literal $(, $($field:tt)*)?) => {
        #[cfg(feature = "tracing")]
        let _span = $crate::trace::Entered(
            ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                tracing::span!(target: "shardpool", tracing::Level::$level, $name $(, $($field)*)?).entered()
            }))
            .ok(),
        );
    };
}

/// An entered span whose exit (the subscriber's `exit` and `try_close`)
/// runs under `catch_unwind`.
#[cfg(feature = "tracing")]
pub(crate) struct Entered(pub(crate) Option<tracing::span::EnteredSpan>);

#[cfg(feature = "tracing")]
impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(span) = self.0.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(span)));
        }
    }
}

pub(crate) use {event, span};
