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
        let _span = $crate::trace::Entered::new(|| {
            tracing::span!(target: "shardpool", tracing::Level::$level, $name $(, $($field)*)?)
        });
    };
}

/// An entered span whose every call into the subscriber (`new_span`,
/// `enter`, `exit`, `try_close`) runs under its own `catch_unwind`.
///
/// The span is never moved into a closure that may unwind: were `enter` to
/// panic inside `Span::entered`, the span would be dropped during the
/// unwinding, its `try_close` could panic again, and a second panic while
/// unwinding out of a destructor aborts the process. So it is entered and
/// exited through `with_subscriber`, by reference, and dropped on its own.
#[cfg(feature = "tracing")]
pub(crate) struct Entered {
    span: Option<tracing::Span>,
    entered: bool,
}

#[cfg(feature = "tracing")]
impl Entered {
    pub(crate) fn new(make: impl FnOnce() -> tracing::Span) -> Self {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        let span = catch_unwind(AssertUnwindSafe(make)).ok();
        let entered = span.as_ref().is_some_and(|span| {
            catch_unwind(AssertUnwindSafe(|| span.with_subscriber(|(id, d)| d.enter(id)))).is_ok()
        });
        Entered { span, entered }
    }
}

#[cfg(feature = "tracing")]
impl Drop for Entered {
    fn drop(&mut self) {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        let Some(span) = self.span.take() else { return };
        if self.entered {
            let _ = catch_unwind(AssertUnwindSafe(|| span.with_subscriber(|(id, d)| d.exit(id))));
        }
        // Dropping the span calls the subscriber's `try_close`. Nested in a
        // `catch_unwind`, a panic there is caught even while this thread is
        // already unwinding.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(span)));
    }
}

pub(crate) use {event, span};
