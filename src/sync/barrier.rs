//! The two barriers of the shutdown gate (`src/gate/`): a cheap one that
//! callers pass on every request and workers pass while quiescing, and an
//! expensive one that shutdown passes once. Why they pair is argued in
//! `src/gate/README.md`; this file only says what each one is.
//!
//! Each pool picks its form at build time ([`Barrier::new`]):
//!
//! - **membarrier** (Linux, unless opted out): [`Barrier::light`] is a
//!   compiler fence and [`Barrier::heavy`] is
//!   `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every running
//!   thread of the process execute a full memory barrier before the call
//!   returns (a thread not running passes one when it is switched in).
//! - **fences** (other systems, a kernel without the command, or opted out):
//!   both are SeqCst fences.
//! - **loom**: both are loom's SeqCst fence, which loom models exactly.
//!   (`heavy` does not also yield: loom never resumes a thread that yielded
//!   while another can run, so a yield there would hide every schedule in
//!   which shutdown carries on at once; `loom-tests/README.md`.)
//!
//! Once a pool's callers rely on compiler fences, `heavy` must never become a
//! local fence: a failed `membarrier` is retried, and if it keeps failing
//! `heavy` reports the error instead of pretending ([`BarrierFailed`]).

#[cfg(not(shardpool_loom))]
use std::sync::atomic::{compiler_fence, fence, Ordering};

/// The environment variable that keeps every pool of the process off
/// `membarrier` when set to anything but `0` or the empty string (for
/// sandboxes whose seccomp policy kills a process that calls it).
#[cfg(not(shardpool_loom))]
const NO_MEMBARRIER_ENV: &str = "SHARDPOOL_NO_MEMBARRIER";

/// `membarrier` kept failing after the process registered for it; the errno
/// of the last try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BarrierFailed(pub(crate) i32);

/// One pool's pair of barriers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Barrier {
    #[cfg(not(shardpool_loom))]
    membarrier: bool,
    /// Under loom: whether the pool models lazy announcements (the
    /// membarrier form's protocol) or rings every push (the fence form's).
    #[cfg(shardpool_loom)]
    lazy: bool,
}

impl Barrier {
    /// The membarrier form if `allowed` (and the environment does not opt
    /// out) and the process can register for it; the fence form otherwise.
    pub(crate) fn new(allowed: bool) -> Self {
        #[cfg(not(shardpool_loom))]
        {
            let opted_out = std::env::var_os(NO_MEMBARRIER_ENV).is_some_and(|v| !v.is_empty() && v != "0");
            Self { membarrier: allowed && !opted_out && imp::registered() }
        }
        #[cfg(shardpool_loom)]
        {
            Self { lazy: allowed }
        }
    }

    /// Whether [`light`](Self::light) is cheap enough to pass after every
    /// push, so that batches may announce their pushes lazily
    /// (`src/doorbell.rs`): in the membarrier form. Under loom, the pool's
    /// `membarrier` setting chooses which of the two shipped behaviours a
    /// model explores (lazy announcements, checked in their fence form, or
    /// a ring per push), since both together multiply a model's executions.
    #[inline]
    pub(crate) fn lazy_announcements(&self) -> bool {
        #[cfg(not(shardpool_loom))]
        return self.membarrier;
        #[cfg(shardpool_loom)]
        self.lazy
    }

    /// The cheap side: a compiler fence in the membarrier form, a SeqCst
    /// fence otherwise.
    #[inline(always)]
    pub(crate) fn light(&self) {
        #[cfg(not(shardpool_loom))]
        if self.membarrier {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        #[cfg(shardpool_loom)]
        loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
    }

    /// The expensive side: a barrier on every thread of the process in the
    /// membarrier form, a SeqCst fence otherwise. Fails only in the
    /// membarrier form, when the kernel refuses the call even after retries;
    /// the caller must then not rely on the barrier having happened.
    #[cold]
    pub(crate) fn heavy(&self) -> Result<(), BarrierFailed> {
        #[cfg(not(shardpool_loom))]
        {
            if !self.membarrier {
                fence(Ordering::SeqCst);
                return Ok(());
            }
            let mut last = 0;
            for _ in 0..8 {
                match imp::membarrier() {
                    Ok(()) => return Ok(()),
                    Err(errno) => last = errno,
                }
                std::thread::yield_now();
            }
            Err(BarrierFailed(last))
        }
        #[cfg(shardpool_loom)]
        {
            loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }
}

#[cfg(all(not(shardpool_loom), target_os = "linux"))]
mod imp {
    use std::sync::OnceLock;

    /// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (linux/membarrier.h).
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    /// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED` (linux/membarrier.h).
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    /// Registers the process for expedited `membarrier` on first use;
    /// whether it is registered. Registration cannot be undone, and is only
    /// attempted by a pool that may use it.
    pub(super) fn registered() -> bool {
        static REGISTERED: OnceLock<bool> = OnceLock::new();
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        *REGISTERED.get_or_init(|| unsafe {
            libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0 as libc::c_long) == 0
        })
    }

    /// One expedited barrier, or the errno it failed with.
    pub(super) fn membarrier() -> Result<(), i32> {
        // SAFETY: as in `registered`.
        let r = unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0 as libc::c_long) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    }
}

#[cfg(all(not(shardpool_loom), not(target_os = "linux")))]
mod imp {
    pub(super) fn registered() -> bool {
        false
    }

    pub(super) fn membarrier() -> Result<(), i32> {
        Err(0)
    }
}
