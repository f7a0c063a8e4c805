//! The run's stop flag: set by SIGTERM/SIGINT, read between writes. Once set, no new write
//! starts; the batch in flight finishes, state is committed, the run is recorded as
//! interrupted, and calsync exits 143 (SIGTERM) or 130 (SIGINT).

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// True once a stop was asked for.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The signal that asked for the stop (0 when none).
pub fn signal() -> i32 {
    SIGNAL.load(Ordering::SeqCst)
}

/// Asks the run to stop (called from the signal handler, or by tests).
pub fn request(signal: i32) {
    SIGNAL.store(signal, Ordering::SeqCst);
}
