//! How much the program says on stderr beyond errors and findings: `-q` silences progress
//! and informational lines. Set once by the command line, read where such lines are printed.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Sets `-q/--quiet` for the rest of the process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True under `-q/--quiet`: no progress of jobs and no informational lines (`wrote FILE`).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints an informational line on stderr, unless `-q` silences it.
macro_rules! inform {
    ($($arg:tt)*) => {
        if !$crate::verbosity::quiet() {
            errln!($($arg)*);
        }
    };
}
pub(crate) use inform;
