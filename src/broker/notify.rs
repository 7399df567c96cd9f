//! A single-threaded "something changed" signal for long-polling fetches:
//! waiters register a waker and are all woken by `notify_all`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Most registered wakers kept at once.
const MAX_WAKERS: usize = 4096;

/// Wakes every waiting task when data arrives on the shard.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    /// Wakes everybody waiting.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves after the next `notify_all`.
    pub fn notified(self: &Rc<Self>) -> Notified {
        Notified { notify: self.clone(), generation: self.generation.get() }
    }
}

/// Future returned by [`Notify::notified`].
pub struct Notified {
    notify: Rc<Notify>,
    generation: u64,
}

impl Future for Notified {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if wakers.len() >= MAX_WAKERS {
            // Waiters that timed out leave their wakers behind; rather than
            // grow without bound, wake them all (a spurious wake-up only makes
            // a fetch re-check its partitions).
            for w in wakers.drain(..) {
                w.wake();
            }
        }
        wakers.push(cx.waker().clone());
        Poll::Pending
    }
}
