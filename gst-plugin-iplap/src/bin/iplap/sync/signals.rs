//! Stopping `iplap sync` from outside: SIGINT (Ctrl-C), SIGTERM (`kill`, service managers) and
//! SIGHUP (the terminal closed) only set a flag that the run polls, so that it stops the
//! pipeline, removes its temporary files and exits with 128 + the signal number, the shells'
//! convention (130, 143, 129). A second signal kills at once (the default action). SIGKILL cannot
//! be caught: what it leaves behind is swept by the next run (`output::sweep_stale`).

use std::sync::atomic::{AtomicI32, Ordering};

/// The first signal received since [`install_handlers`], 0 while none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The error a run ends with after a signal ([`exit_if_interrupted`] turns it into the exit
/// status).
#[derive(Debug, Clone, Copy)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let by = match SIGNAL.load(Ordering::SeqCst) {
            #[cfg(unix)]
            libc::SIGINT => " by Ctrl-C (SIGINT)",
            #[cfg(unix)]
            libc::SIGTERM => " by SIGTERM",
            #[cfg(unix)]
            libc::SIGHUP => " by SIGHUP",
            _ => "",
        };
        write!(f, "interrupted{by}: no output written")
    }
}

impl std::error::Error for Interrupted {}

/// Whether one of the handled signals arrived since [`install_handlers`].
pub fn interrupted() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

#[cfg(unix)]
const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

#[cfg(unix)]
extern "C" fn on_signal(signum: libc::c_int) {
    let _ = SIGNAL.compare_exchange(0, signum, Ordering::SeqCst, Ordering::SeqCst);
    // A second signal (of any of the three) kills at once, for when stopping takes too long.
    for s in HANDLED {
        // SAFETY: signal() is async-signal-safe; restoring the default disposition is valid.
        unsafe {
            libc::signal(s, libc::SIG_DFL);
        }
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP set the flag instead of killing the process while the MP4
/// is half written. Only an atomic exchange and signal() happen inside the handler.
pub fn install_handlers() {
    #[cfg(unix)]
    for signum in HANDLED {
        // SAFETY: the handler only touches an atomic and calls signal(), both async-signal-safe.
        unsafe {
            libc::signal(
                signum,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// Passes `result` through, except an error after a signal: that one is printed and the process
/// exits with 128 + the signal number. (Any error counts once a signal arrived: stopping the
/// pipeline may surface as some other error first.) Call it once everything the run made has
/// been dropped: its temporary files are removed on drop, and `exit` runs no destructors.
pub fn exit_if_interrupted<T>(result: anyhow::Result<T>) -> anyhow::Result<T> {
    match result {
        Err(err) if interrupted() || err.chain().any(|e| e.is::<Interrupted>()) => {
            if err.chain().any(|e| e.is::<Interrupted>()) {
                eprintln!("{err}");
            } else {
                eprintln!("{Interrupted} ({err:#})");
            }
            let signum = match SIGNAL.load(Ordering::SeqCst) {
                0 => 2, // no signal recorded (not on Unix): report it like Ctrl-C
                s => s,
            };
            std::process::exit(128 + signum);
        }
        other => other,
    }
}
