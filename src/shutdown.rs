//! The one shutdown signal: set once (by a signal handler in `main.rs`, or by a test), then
//! seen by source threads (polling or sleeping on it) and awaited by async tasks.

use event_listener::{Event, Listener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Cheap to clone; every clone sees the same signal.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    event: Event,
    /// Signals made by [`Shutdown::child`], triggered with this one. Weak, and pruned
    /// whenever a child is made, so stopped streams leave nothing behind.
    children: Mutex<Vec<Weak<Inner>>>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything to stop. Idempotent.
    pub fn trigger(&self) {
        self.inner.trigger();
    }

    /// A signal of its own (one stream's, say) that is also triggered when this one is:
    /// stopping a stream stops only it; shutting down stops every stream.
    pub fn child(&self) -> Shutdown {
        let child = Shutdown::new();
        let mut children = lock(&self.inner.children);
        children.retain(|c| c.strong_count() > 0);
        children.push(Arc::downgrade(&child.inner));
        drop(children);
        if self.is_triggered() {
            child.trigger();
        }
        child
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Completes once shutdown is triggered.
    pub async fn wait(&self) {
        loop {
            let listener = self.inner.event.listen();
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }

    /// Blocks the calling thread for `duration` or until shutdown, whichever is first.
    /// Returns true if shutdown was triggered.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        loop {
            let listener = self.inner.event.listen();
            if self.is_triggered() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            listener.wait_timeout(deadline - now);
        }
    }
}

impl Inner {
    fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
        let children: Vec<Arc<Inner>> = lock(&self.children)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for child in children {
            child.trigger();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_wakes_on_trigger_and_wait_completes() {
        let s = Shutdown::new();
        assert!(!s.sleep(Duration::from_millis(1)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.sleep(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        s.trigger();
        assert!(t.join().unwrap());
        smol::block_on(s.wait());
        assert!(s.is_triggered());
    }

    #[test]
    fn a_child_stops_alone_or_with_its_parent() {
        let parent = Shutdown::new();
        let (a, b) = (parent.child(), parent.child());
        a.trigger();
        assert!(a.is_triggered() && !b.is_triggered() && !parent.is_triggered());
        let c = b.child();
        parent.trigger();
        assert!(b.is_triggered() && c.is_triggered());
        assert!(
            parent.child().is_triggered(),
            "made after the parent stopped"
        );
        // Dropped children are pruned, not kept forever.
        let p = Shutdown::new();
        for _ in 0..100 {
            drop(p.child());
        }
        assert!(lock(&p.inner.children).len() <= 1);
    }
}
