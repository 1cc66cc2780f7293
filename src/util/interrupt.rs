//! Ctrl-C (SIGINT), SIGTERM and SIGHUP as a flag: long in-process work
//! (box packing, lock waits, steps, fleet renders, checks) polls it to stop
//! and clean up instead of dying mid-write and leaving temp files or a
//! build VM behind.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signal to act on, 0 when none (or it was acknowledged).
static PENDING: AtomicI32 = AtomicI32::new(0);
/// The last signal caught, kept for messages after [`acknowledge`].
static LAST: AtomicI32 = AtomicI32::new(0);
static CATCH: Once = Once::new();

/// Whether Ctrl-C was pressed (or SIGTERM or SIGHUP came) since
/// [`catch_interrupts`] and not yet [`acknowledge`]d.
pub fn interrupted() -> bool {
    PENDING.load(Ordering::SeqCst) != 0
}

/// What stopped regbake, for messages: "interrupted ({what})".
pub fn what() -> &'static str {
    match LAST.load(Ordering::SeqCst) {
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP: the terminal closed",
        _ => "Ctrl-C",
    }
}

/// Forget an interrupt once it has been acted on, before the cleanup it
/// calls for: the cleanup's own commands then run to completion, and only a
/// further Ctrl-C stops them.
pub fn acknowledge() {
    PENDING.store(0, Ordering::SeqCst);
}

/// An error once [`interrupted`]: for `?` at the points where long work
/// may stop.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        anyhow::bail!("interrupted ({})", what());
    }
    Ok(())
}

/// Whether `sig` is ignored, as `nohup` does for SIGHUP and a
/// non-interactive shell for SIGINT of a `&` job: that choice is the
/// caller's and stays.
fn ignored(sig: i32) -> bool {
    // SAFETY: sigaction(2) with a null new action only reads the current one
    // into `old`, which is zeroed plain data.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &raw mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// The signals that stop regbake: SIGINT, SIGTERM and SIGHUP, but not
/// those ignored when it started ([`ignored`]).
pub fn stop_signals() -> impl Iterator<Item = i32> {
    [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|&sig| !ignored(sig))
}

/// Whether writes to `fd` may fail once the terminal is gone: the terminal
/// itself, or a pipe or socket to a reader in its session (`| tee log`,
/// which the hangup ends too). Files and /dev/null keep working.
fn gone_with_terminal(fd: i32) -> bool {
    // SAFETY: fstat(2) into zeroed plain data.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &raw mut st) != 0 {
            return false;
        }
        matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK) || libc::isatty(fd) == 1
    }
}

/// Point the descriptors in `fds` at /dev/null. Called in a signal handler,
/// so only async-signal-safe calls (open, dup2, close).
fn to_dev_null(fds: &[i32]) {
    // SAFETY: a NUL-terminated path; the descriptors are ours.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            for &fd in fds {
                libc::dup2(null, fd);
            }
            libc::close(null);
        }
    }
}

/// Catch Ctrl-C (SIGINT), SIGTERM and SIGHUP from now on, unless ignored
/// when regbake started: they only set [`interrupted`], so long work can
/// stop and clean up instead of dying mid-write.
///
/// A SIGHUP means the terminal is gone: writing to it (or to a pipe whose
/// reader went with it) would fail, and `eprintln!` panic, while the
/// cleanup runs; so stdout and stderr, where they were such, go to
/// /dev/null. The step logs in out/logs stay.
pub fn catch_interrupts() {
    CATCH.call_once(|| {
        let ttys: Vec<i32> = [1, 2]
            .into_iter()
            .filter(|&fd| gone_with_terminal(fd))
            .collect();
        for sig in stop_signals() {
            let ttys = ttys.clone();
            let action = move || {
                if sig == SIGHUP {
                    to_dev_null(&ttys);
                }
                LAST.store(sig, Ordering::SeqCst);
                PENDING.store(sig, Ordering::SeqCst);
            };
            // SAFETY: the action only makes async-signal-safe calls and
            // stores atomics; it allocates nothing (the Vec is moved in).
            // If a handler cannot be installed, the signal simply ends
            // regbake.
            let _ = unsafe { signal_hook::low_level::register(sig, action) };
        }
    });
}
