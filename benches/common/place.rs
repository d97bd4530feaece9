//! Where threads run.
//!
//! The measuring ("caller") thread is pinned to the last core and
//! single-worker subjects run on the first, so every subject of a round-trip
//! or batch comparison crosses the same two cores. Pinning the measuring
//! thread must not leak: a spawned thread inherits its creator's mask, and
//! shardpool reads the process's cores from the *main* thread's mask. So the
//! measuring thread is never the main thread ([`on_driver`]), and threads we
//! do not place ourselves (messaging_thread_pool's workers, rayon's) are
//! started from a thread whose mask is the whole process's ([`unpinned`]).

use std::thread;

/// The cores this process may use (the main thread's mask), ascending.
pub fn process_cores() -> Vec<usize> {
    imp::process_cores()
}

/// The core the measuring thread is pinned to: the process's last.
pub fn caller_core() -> usize {
    process_cores().last().copied().unwrap_or(0)
}

/// The core worker `i` of a baseline is pinned to; the same core shardpool's
/// best-effort pinning gives its worker `i`.
pub fn worker_core(i: usize) -> usize {
    let cores = process_cores();
    cores.get(i % cores.len().max(1)).copied().unwrap_or(0)
}

/// Pins the calling thread to `core`; `false` if the OS refused.
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// Lets the calling thread run on every core of the process again.
pub fn unpin_current() {
    imp::allow_current(&process_cores());
}

/// Runs `f` on a fresh thread (16 MiB of stack) pinned to `core`, or on
/// every core of the process with `None`, and returns its result. The
/// benches run criterion itself this way, so the measuring thread is placed
/// and the main thread is left alone.
pub fn on_driver<R: Send>(core: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| {
        let driver = thread::Builder::new()
            .name("bench-driver".into())
            .stack_size(16 << 20)
            .spawn_scoped(s, move || {
                match core {
                    Some(c) => {
                        pin_current(c);
                    }
                    None => unpin_current(),
                }
                f()
            })
            .expect("spawn the driver thread");
        match driver.join() {
            Ok(r) => r,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

/// Runs `f` on a helper thread with the whole process's mask, so that the
/// threads `f` starts do not inherit the measuring thread's pin (used to
/// build messaging_thread_pool pools, whose threads we cannot place).
pub fn unpinned<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| {
        let helper = s.spawn(move || {
            unpin_current();
            f()
        });
        match helper.join() {
            Ok(r) => r,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

#[cfg(target_os = "linux")]
mod imp {
    fn mask_of(pid: libc::pid_t) -> Option<Vec<usize>> {
        // SAFETY: `cpu_set_t` is plain old data; all-zero is an empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed.
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
        // SAFETY: getpid has no preconditions; the process id names the main
        // thread, which these programs never pin.
        let pid = unsafe { libc::getpid() };
        mask_of(pid)
            .unwrap_or_else(|| (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect())
    }

    pub(super) fn allow_current(cores: &[usize]) {
        // SAFETY: as in `mask_of`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            // SAFETY: `c` is below CPU_SETSIZE.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        // SAFETY: `set` is a valid `cpu_set_t`; pid 0 is the calling thread.
        // On failure the thread keeps its mask, which still works.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn process_cores() -> Vec<usize> {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    }

    pub(super) fn allow_current(_cores: &[usize]) {}
}
