//! `UnsafeCell` with loom's closure API, and a write-once cell built on it.

use super::atomic::{AtomicBool, Ordering};

#[cfg(shardpool_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` behind the `with` / `with_mut` API of
/// `loom::cell::UnsafeCell`, so that loom can track every access.
#[cfg(not(shardpool_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(shardpool_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A value written at most once by one thread and read by others after they
/// saw it published (a tiny `OnceLock` that loom can see through).
pub(crate) struct SetOnce<T> {
    set: AtomicBool,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is written once, before `set` is released, and only read
// after `set` is acquired, so a shared `SetOnce` hands out `&T` across
// threads: that needs `T: Sync`, and moving the value in from another thread
// needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    pub(crate) fn new() -> Self {
        Self { set: AtomicBool::new(false), value: UnsafeCell::new(None) }
    }

    /// Stores the value. Must be called at most once, by one thread.
    pub(crate) fn set(&self, value: T) {
        assert!(!self.set.load(Ordering::Relaxed), "SetOnce::set called twice");
        // SAFETY: `set` is still false, so no reader dereferences the cell yet,
        // and the single-writer contract means no other writer exists.
        self.value.with_mut(|v| unsafe { *v = Some(value) });
        // Release: pairs with the Acquire in `get`, publishing the write above.
        self.set.store(true, Ordering::Release);
    }

    /// The value, if it has been published.
    pub(crate) fn get(&self) -> Option<&T> {
        // Acquire: pairs with the Release in `set`.
        if self.set.load(Ordering::Acquire) {
            // SAFETY: the value was written before `set` became true and is
            // never written again, so a shared reference is sound for as long
            // as `self` lives.
            self.value.with(|v| unsafe { (*v).as_ref() })
        } else {
            None
        }
    }
}
