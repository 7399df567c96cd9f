//! A single-threaded "something changed" signal: waiters hold a slot with
//! their waker and are all woken by `notify_all`. A waiter that goes away
//! (a fetch that timed out) frees its slot on drop, so idle long-polls leave
//! nothing behind and there is no cap to overflow.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Slots {
    /// `Some(None)`: taken, not yet polled or already woken.
    wakers: Vec<Option<Option<Waker>>>,
    free: Vec<usize>,
}

/// Wakes every waiting task when `notify_all` is called.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    slots: RefCell<Slots>,
}

impl Notify {
    /// Wakes everybody waiting.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        let woken: Vec<Waker> =
            self.slots.borrow_mut().wakers.iter_mut().filter_map(|s| s.as_mut().and_then(Option::take)).collect();
        for w in woken {
            w.wake();
        }
    }

    /// Resolves after the next `notify_all` (counting from this call).
    pub fn notified(self: &Rc<Self>) -> Notified {
        Notified { notify: self.clone(), generation: self.generation.get(), slot: None }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.slots.borrow().wakers.iter().filter(|s| s.is_some()).count()
    }
}

/// Future returned by [`Notify::notified`].
pub struct Notified {
    notify: Rc<Notify>,
    generation: u64,
    slot: Option<usize>,
}

impl Future for Notified {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let waker = Some(cx.waker().clone());
        let mut slots = self.notify.slots.borrow_mut();
        match self.slot {
            Some(i) => slots.wakers[i] = Some(waker),
            None => {
                let i = match slots.free.pop() {
                    Some(i) => {
                        slots.wakers[i] = Some(waker);
                        i
                    }
                    None => {
                        slots.wakers.push(Some(waker));
                        slots.wakers.len() - 1
                    }
                };
                drop(slots);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut slots = self.notify.slots.borrow_mut();
            slots.wakers[i] = None;
            slots.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    /// Records that it was woken.
    struct AtomicFlag(std::sync::atomic::AtomicBool);
    impl Wake for AtomicFlag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    #[test]
    fn wakes_waiters_and_frees_slots_of_dropped_ones() {
        let n = Rc::new(Notify::default());
        let flag = std::sync::Arc::new(AtomicFlag(Default::default()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..10_000 {
            let mut f = Box::pin(n.notified());
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(n.waiting(), 0, "dropped waiters leave no slot behind");
        let mut f = Box::pin(n.notified());
        assert!(f.as_mut().poll(&mut cx).is_pending());
        assert_eq!(n.waiting(), 1);
        n.notify_all();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
}
