//! A bounded queue from one sender to one receiver, for the two loops of one session (the
//! in-flight record, `session::in_flight`). It holds no room while empty: every idle
//! connection has one, and tokio's channel keeps a 512 B state and a block of 32 slots from the
//! start (~830 B per connection); this one is one small allocation while idle.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// What a queue keeps while empty, at most: a burst's room is given back once it is drained.
const IDLE_ROOM: usize = 4;

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the receiver: a value came, or the sender is gone.
    to_receiver: Notify,
    /// Wakes the sender: there is room again, or the receiver is gone.
    to_sender: Notify,
}

struct State<T> {
    queue: VecDeque<T>,
    capacity: usize,
    sender_gone: bool,
    receiver_gone: bool,
}

impl<T> Shared<T> {
    /// The state, even if a panic elsewhere poisoned the lock (no invariant spans the lock).
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side; dropping it ends the queue once the receiver has taken what is in it.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving side; dropping it drops what is queued and fails every later send.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    /// Nothing queued now.
    Empty,
    /// Nothing queued, and the sender is gone.
    Closed,
}

/// A queue of at most `capacity` values (at least one).
pub(crate) fn handoff<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            sender_gone: false,
            receiver_gone: false,
        }),
        to_receiver: Notify::new(),
        to_sender: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    /// Queue `value`, waiting while the queue is full; `Err(value)` once the receiver is gone.
    /// Cancel-safe: dropped while waiting, nothing was queued.
    pub async fn send(&self, value: T) -> Result<(), T> {
        loop {
            {
                let mut state = self.shared.state();
                if state.receiver_gone {
                    return Err(value);
                }
                if state.queue.len() < state.capacity {
                    state.queue.push_back(value);
                    drop(state);
                    self.shared.to_receiver.notify_one();
                    return Ok(());
                }
            }
            // A wake given between the check and this wait is kept as a permit (`notify_one`).
            self.shared.to_sender.notified().await;
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.state().sender_gone = true;
        self.shared.to_receiver.notify_one();
    }
}

impl<T> Receiver<T> {
    /// The next value; `None` once the queue is empty and the sender gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.try_recv() {
                Ok(value) => return Some(value),
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => self.shared.to_receiver.notified().await,
            }
        }
    }

    /// The next value if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.shared.state();
        match state.queue.pop_front() {
            Some(value) => {
                if state.queue.is_empty() {
                    state.queue.shrink_to(IDLE_ROOM);
                }
                drop(state);
                self.shared.to_sender.notify_one();
                Ok(value)
            }
            None if state.sender_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.shared.state();
            state.receiver_gone = true;
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock: a value may hold a channel whose other side is woken.
        drop(queued);
        self.shared.to_sender.notify_one();
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn values_arrive_in_order_and_the_end_after_them() {
        let (tx, mut rx) = handoff(4);
        for i in 0..3 {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        assert_eq!(rx.recv().await, Some(0));
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_holds_the_sender_until_the_receiver_takes_one() {
        let (tx, mut rx) = handoff(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let mut third = std::pin::pin!(tx.send(3));
        assert!(
            tokio::time::timeout(Duration::from_secs(60), &mut third)
                .await
                .is_err(),
            "a third value fits in a queue of two"
        );
        assert_eq!(rx.try_recv(), Ok(1));
        third.await.unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_receiver_wakes_for_a_value_and_for_the_end() {
        let (tx, mut rx) = handoff::<u8>(1);
        let receiver = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(7).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(tx);
        assert_eq!(receiver.await.unwrap(), (Some(7), None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_receiver_gone_fails_the_sender_and_drops_what_was_queued() {
        let (tx, rx) = handoff(1);
        let (held, watch) = tokio::sync::oneshot::channel::<()>();
        tx.send(Some(held)).await.unwrap();
        // The queue is full: this send waits, then fails when the receiver goes.
        let waiting = tokio::spawn(async move { tx.send(None).await.is_err() });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(rx);
        assert!(waiting.await.unwrap(), "a send to a gone receiver fails");
        assert!(
            watch.await.is_err(),
            "what was queued is dropped with the receiver"
        );
    }

    #[tokio::test]
    async fn a_drained_queue_gives_its_room_back() {
        let (tx, mut rx) = handoff(64);
        for i in 0..64 {
            tx.send(i).await.unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert!(tx.shared.state().queue.capacity() <= IDLE_ROOM);
    }
}
