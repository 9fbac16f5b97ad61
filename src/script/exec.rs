//! Driving the backend's futures from the script's (synchronous) thread.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// How primitives run async backend calls.
#[derive(Debug, Clone)]
pub enum Exec {
    /// Poll on this thread. For the simulator on a virtual clock, whose futures never wait.
    Inline,
    /// Block on a tokio runtime from a blocking thread (real clock, network backends).
    Runtime(tokio::runtime::Handle),
}

impl Exec {
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match self {
            Exec::Inline => block_on(fut),
            Exec::Runtime(handle) => handle.block_on(fut),
        }
    }
}

/// Polls a future to completion on this thread, yielding while it is pending. Cheap for
/// futures that are ready at once, which is what the virtual-clock simulator returns.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
