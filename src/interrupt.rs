//! The run's stop flag: set by SIGTERM/SIGINT, read before every request and between batches.
//! Once set, no new write starts; what is in flight finishes, state is committed, the run is
//! recorded as interrupted, and calsync exits 143 (SIGTERM) or 130 (SIGINT). A second signal
//! ends the process at once (an operator who presses Ctrl-C twice means it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

static SIGNAL: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));
static ANY: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// True once a stop was asked for.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The signal that asked for the stop (0 when none).
pub fn signal() -> i32 {
    SIGNAL.load(Ordering::SeqCst) as i32
}

/// The exit code a stop asked for: 130 for SIGINT, 143 for SIGTERM; `None` when no stop was
/// asked for.
pub fn exit_code() -> Option<i32> {
    match signal() {
        0 => None,
        2 => Some(crate::exit::INTERRUPTED),
        _ => Some(crate::exit::TERMINATED),
    }
}

/// Asks the run to stop (the signal handlers do this; tests may too).
pub fn request(signal: i32) {
    SIGNAL.store(signal as usize, Ordering::SeqCst);
    ANY.store(true, Ordering::SeqCst);
}

/// Installs the SIGTERM and SIGINT handlers.
///
/// # Errors
/// When the handlers cannot be registered.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGTERM, SIGINT] {
        // Runs first: if a stop was already asked for, this second signal exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&ANY))?;
        signal_hook::flag::register_usize(sig, Arc::clone(&SIGNAL), sig as usize)?;
        signal_hook::flag::register(sig, Arc::clone(&ANY))?;
    }
    Ok(())
}
