//! Writing to standard output and standard error without ever failing: a reader that went
//! away (`runbook check ... | head -1`, a terminal closed during a run) loses the output,
//! never the command. Rust's `println!` panics on a closed pipe; every print of the program
//! goes through the macros below instead (clippy's `print_stdout` and `print_stderr` lints
//! keep it so), which catch that panic.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

/// Like `print!`, on standard output; errors are ignored.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}

/// Like `println!`, on standard output; errors are ignored.
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Like `eprint!`, on standard error; errors are ignored.
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!($($arg)*)) };
}

/// Like `eprintln!`, on standard error; errors are ignored.
macro_rules! errln {
    () => { $crate::output::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Set once a write to standard output or standard error failed: later ones are skipped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `args` to standard output, ignoring a reader that went away.
#[allow(clippy::print_stdout)] // the one place that prints: see `quietly`
pub fn stdout(args: fmt::Arguments) {
    quietly(&STDOUT_GONE, || print!("{args}"));
}

/// Writes `args` to standard error, ignoring a reader that went away.
#[allow(clippy::print_stderr)] // the one place that prints: see `quietly`
pub fn stderr(args: fmt::Arguments) {
    quietly(&STDERR_GONE, || eprint!("{args}"));
}

/// Prints with std's macros, which tests capture, and turns the panic they raise on a
/// failed write into silence: the stream is marked gone and never written again.
/// [`quiet_print_failures`] keeps the panic hook from reporting that panic.
fn quietly(gone: &AtomicBool, print: impl FnOnce()) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    if std::panic::catch_unwind(AssertUnwindSafe(print)).is_err() {
        gone.store(true, Ordering::Relaxed);
    }
}

/// Installs a panic hook that stays silent about std's "failed printing to stdout" (which
/// [`quietly`] catches) and reports every other panic as before.
pub fn quiet_print_failures() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if !message.starts_with("failed printing to std") {
            report(info);
        }
    }));
}

/// Keeps a run going when its terminal goes away: the hang-up signal is ignored (its output
/// is lost, its journal is complete; `runbook runs` and `resume` find it).
pub fn survive_hangup() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}
