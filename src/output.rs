//! Writing to standard output and standard error without ever failing: a reader that went
//! away (`runbook check ... | head -1`, a terminal closed during a run) loses the output,
//! never the command. Rust's `println!` panics on a closed pipe; every print of the program
//! goes through the macros below instead (clippy's `print_stdout` and `print_stderr` lints
//! keep it so).

use std::fmt;
use std::io::Write;

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

/// Writes `args` to standard output, ignoring a reader that went away.
pub fn stdout(args: fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args);
}

/// Writes `args` to standard error, ignoring a reader that went away.
pub fn stderr(args: fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
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
