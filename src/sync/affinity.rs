//! Which cores this process may use, and pinning a worker to one of them.
//!
//! `core_affinity::get_core_ids()` reports the *calling thread's* mask, and a
//! spawned thread inherits its creator's mask: a pool built from a pinned
//! thread would put every worker on that one core. So the candidate cores come
//! from the process (its main thread's mask), and a worker that is not pinned
//! resets its own mask to the process's.

/// The cores the process may run on, in ascending order (never empty).
pub(crate) fn process_cores() -> Vec<usize> {
    imp::process_cores()
}

/// Pins the calling thread to `core`; `false` if the OS refused.
pub(crate) fn pin_current(core: usize) -> bool {
    imp::pin_current(core)
}

/// The core the calling thread is running on right now, if the OS says.
#[inline]
pub(crate) fn current_cpu() -> Option<usize> {
    imp::current_cpu()
}

/// Lets the calling thread run on any of `cores` (undoes an inherited pin).
pub(crate) fn allow_current(cores: &[usize]) {
    imp::allow_current(cores)
}

#[cfg(all(not(shardpool_loom), target_os = "linux"))]
mod imp {
    fn mask_of(pid: libc::pid_t) -> Option<Vec<usize>> {
        // SAFETY: `cpu_set_t` is plain old data; all-zero is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable `cpu_set_t` of the size we pass.
        let rc = unsafe { libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return None;
        }
        let cores: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `i` is below CPU_SETSIZE, the bound CPU_ISSET requires.
            .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
            .collect();
        (!cores.is_empty()).then_some(cores)
    }

    pub(super) fn process_cores() -> Vec<usize> {
        // SAFETY: getpid has no preconditions. The process id names the main
        // thread, whose mask is the process's even when the caller is pinned.
        let pid = unsafe { libc::getpid() };
        mask_of(pid).or_else(|| mask_of(0)).unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n).collect()
        })
    }

    pub(super) fn pin_current(core: usize) -> bool {
        // core_affinity indexes a fixed-size set without a bounds check.
        core < libc::CPU_SETSIZE as usize
            && core_affinity::set_for_current(core_affinity::CoreId { id: core })
    }

    #[inline]
    pub(super) fn current_cpu() -> Option<usize> {
        // SAFETY: sched_getcpu has no preconditions (a vDSO call on x86-64).
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }

    pub(super) fn allow_current(cores: &[usize]) {
        // SAFETY: as in `mask_of`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            // SAFETY: `c` is below CPU_SETSIZE.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        // SAFETY: `set` is a valid `cpu_set_t`; pid 0 is the calling thread.
        // Failure leaves the inherited mask, which is still a working mask.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    }
}

#[cfg(all(not(shardpool_loom), not(target_os = "linux")))]
mod imp {
    pub(super) fn process_cores() -> Vec<usize> {
        match core_affinity::get_core_ids() {
            Some(ids) if !ids.is_empty() => ids.into_iter().map(|c| c.id).collect(),
            _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
        }
    }

    pub(super) fn pin_current(core: usize) -> bool {
        core_affinity::set_for_current(core_affinity::CoreId { id: core })
    }

    pub(super) fn allow_current(_cores: &[usize]) {}

    pub(super) fn current_cpu() -> Option<usize> {
        None
    }
}

#[cfg(shardpool_loom)]
mod imp {
    pub(super) fn process_cores() -> Vec<usize> {
        vec![0, 1]
    }

    pub(super) fn pin_current(_core: usize) -> bool {
        true
    }

    pub(super) fn allow_current(_cores: &[usize]) {}

    pub(super) fn current_cpu() -> Option<usize> {
        None
    }
}
