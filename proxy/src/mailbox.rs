//! The queue from the link to one session task: what the core routes to that player.
//!
//! Why not a tokio mpsc channel: one keeps its blocks of 32 slots for as long as the session
//! lives, and a session holds them after any burst of output (over 4 KiB per idle session, a
//! large share of what an idle player costs). Here the receiver takes the whole backlog at once,
//! so the queue's memory leaves with it and an idle session holds an empty `VecDeque`. The
//! bound works as before: a session that does not take its messages is told it overflowed,
//! instead of the proxy buffering for it forever.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// A queue for `limit` messages: the sending half goes to the link, the receiving half stays
/// with the session.
pub fn mailbox<T>(limit: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            limit,
            senders: 1,
            receiver_alive: true,
            overflowed: false,
        }),
        ready: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the receiver; only ever one waiter, so `notify_one` keeps a wake-up that comes
    /// before the receiver waits.
    ready: Notify,
}

struct State<T> {
    queue: VecDeque<T>,
    limit: usize,
    senders: usize,
    receiver_alive: bool,
    /// Messages were refused for want of room: the receiver must give up.
    overflowed: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section below leaves the state consistent at each step: a panic
        // elsewhere while holding the lock cannot have broken it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The link's half. Dropping the last one closes the mailbox.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `message`. It is dropped if the receiver is gone, or if the queue is full, in
    /// which case the receiver hears that it overflowed.
    pub fn send(&self, message: T) {
        let mut state = self.shared.lock();
        if !state.receiver_alive || state.overflowed {
            return;
        }
        if state.queue.len() >= state.limit {
            state.overflowed = true;
            state.queue = VecDeque::new();
        } else {
            state.queue.push_back(message);
        }
        drop(state);
        self.shared.ready.notify_one();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let closed = state.senders == 0;
        drop(state);
        if closed {
            self.shared.ready.notify_one();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Sender")
            .field("queued", &state.queue.len())
            .field("overflowed", &state.overflowed)
            .finish()
    }
}

/// What [`Receiver::recv`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<T> {
    /// Everything queued, oldest first.
    Messages(VecDeque<T>),
    /// Messages were dropped for want of room.
    Overflowed,
    /// Every sender is gone and nothing is left.
    Closed,
}

/// The session's half.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// Waits for messages. Cancel safe: nothing is taken until it returns.
    pub async fn recv(&mut self) -> Delivery<T> {
        loop {
            {
                let mut state = self.shared.lock();
                if state.overflowed {
                    return Delivery::Overflowed;
                }
                if !state.queue.is_empty() {
                    return Delivery::Messages(std::mem::take(&mut state.queue));
                }
                if state.senders == 0 {
                    return Delivery::Closed;
                }
            }
            self.shared.ready.notified().await;
        }
    }
}

impl<T> Receiver<T> {
    /// Everything queued now, without waiting (a session handing itself over). After an
    /// overflow there is nothing: the session was going to close.
    pub fn take_queued(&mut self) -> Vec<T> {
        std::mem::take(&mut self.shared.lock().queue).into()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_alive = false;
        // Nobody will read these; the link may keep its sender a while longer.
        state.queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_arrive_in_order_and_all_at_once() {
        let (tx, mut rx) = mailbox(10);
        tx.send(1);
        tx.send(2);
        assert_eq!(rx.recv().await, Delivery::Messages(VecDeque::from([1, 2])));
        tx.send(3);
        assert_eq!(rx.recv().await, Delivery::Messages(VecDeque::from([3])));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken() {
        let (tx, mut rx) = mailbox(10);
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.send("hi");
        assert_eq!(
            waiter.await.ok(),
            Some(Delivery::Messages(VecDeque::from(["hi"])))
        );
    }

    #[tokio::test]
    async fn a_full_queue_overflows_instead_of_growing() {
        let (tx, mut rx) = mailbox(2);
        for i in 0..5 {
            tx.send(i);
        }
        assert_eq!(rx.recv().await, Delivery::Overflowed);
        assert_eq!(rx.recv().await, Delivery::Overflowed, "for good");
    }

    #[tokio::test]
    async fn closes_when_the_last_sender_goes_after_the_rest_is_delivered() {
        let (tx, mut rx) = mailbox(10);
        let other = tx.clone();
        tx.send(1);
        drop(tx);
        other.send(2);
        drop(other);
        assert_eq!(rx.recv().await, Delivery::Messages(VecDeque::from([1, 2])));
        assert_eq!(rx.recv().await, Delivery::Closed);
    }

    #[tokio::test]
    async fn a_cancelled_recv_loses_nothing() {
        let (tx, mut rx) = mailbox(10);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(5), rx.recv()).await;
        assert!(timed_out.is_err());
        tx.send(7);
        assert_eq!(rx.recv().await, Delivery::Messages(VecDeque::from([7])));
    }

    #[test]
    fn messages_for_a_gone_receiver_are_dropped() {
        let (tx, rx) = mailbox(10);
        drop(rx);
        tx.send(1);
        assert!(tx.shared.lock().queue.is_empty());
    }
}
