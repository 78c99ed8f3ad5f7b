//! The request memory budget: a total for the request bytes the proxy holds across every
//! client connection, as Kafka's `queued.max.request.bytes` is for a broker.
//!
//! A frame small enough for the reader's own buffer ([`super::frame::FREE_FRAME_BYTES`]) needs
//! nothing from the budget: every connection has that much anyway, nor does a large frame
//! streamed to the broker as it arrives. A large frame read whole takes its whole size from the
//! budget before the rest of its body is read, and gives it back once it has been forwarded. All or nothing, as Kafka's memory pool does: two
//! connections each holding half a frame could otherwise wait on each other for ever.
//!
//! Unlike Kafka's pool, which lets one allocation overdraw it, the budget is strict: the held
//! total never exceeds it, and configuration checks that the largest frame fits it
//! (`limits.max_frame_bytes` ≤ `limits.max_buffered_request_bytes`).
//!
//! When the budget is spent, only the connections that need more of it wait (the proxy stops
//! reading from them: back-pressure); connections whose frames fit their own buffer go on.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

/// Kafka's default `queued.max.request.bytes` is unlimited; 256 MiB holds two frames of
/// the default `socket.request.max.bytes` (100 MiB) with room to spare.
pub const DEFAULT_MAX_BUFFERED_REQUEST_BYTES: usize = 256 * 1024 * 1024;

/// The metric handles the budget keeps current (the metrics module builds and exposes them).
#[derive(Debug, Clone, Default)]
pub struct BudgetMetrics {
    /// Bytes held against the budget now.
    pub held: Gauge,
    /// Times a connection had to wait for the budget.
    pub waits: Counter,
}

/// A frame that can never fit the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {size} bytes exceeds the request memory budget of {budget} bytes")]
pub struct OverBudget {
    pub size: usize,
    pub budget: usize,
}

/// The shared budget. One per process; share it as `Arc<RequestBudget>`.
#[derive(Debug)]
pub struct RequestBudget {
    /// One permit per byte not held. FIFO: a large frame waiting first is not overtaken by a
    /// stream of smaller ones.
    available: Semaphore,
    total: usize,
    metrics: BudgetMetrics,
}

impl RequestBudget {
    pub fn new(total: usize, metrics: BudgetMetrics) -> Arc<Self> {
        // The semaphore's own ceiling (far above any memory); a larger setting means "that".
        let total = total.min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            available: Semaphore::new(total),
            total,
            metrics,
        })
    }

    /// The budget's size in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes held now, across every connection. (Not the semaphore's count: that also lacks
    /// the bytes set aside for the first waiter while it waits for the rest.)
    pub fn held(&self) -> usize {
        usize::try_from(self.metrics.held.get()).unwrap_or(0)
    }

    /// Take `bytes` from the budget, waiting while it is spent. Cancel-safe: a cancelled wait
    /// holds nothing.
    pub async fn acquire(self: &Arc<Self>, bytes: usize) -> Result<Held, OverBudget> {
        let over = OverBudget {
            size: bytes,
            budget: self.total,
        };
        if bytes > self.total {
            return Err(over);
        }
        // A Kafka frame is at most i32::MAX bytes, so this never fails for one.
        let permits = u32::try_from(bytes).map_err(|_| over)?;
        let permit = match self.available.try_acquire_many(permits) {
            Ok(permit) => permit,
            Err(_) => {
                self.metrics.waits.inc();
                // The semaphore is never closed.
                self.available
                    .acquire_many(permits)
                    .await
                    .map_err(|_| over)?
            }
        };
        permit.forget();
        self.metrics.held.inc_by(bytes as i64);
        Ok(Held {
            budget: self.clone(),
            bytes,
        })
    }

    fn release(&self, bytes: usize) {
        // The gauge first, so that it never shows more than is held.
        self.metrics.held.dec_by(bytes as i64);
        self.available.add_permits(bytes);
    }
}

/// Bytes taken from the budget, given back when dropped (so a connection that dies mid-frame
/// gives back what it held).
#[derive(Debug)]
#[must_use = "the bytes are given back as soon as this is dropped"]
pub struct Held {
    budget: Arc<RequestBudget>,
    bytes: usize,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget(total: usize) -> (Arc<RequestBudget>, BudgetMetrics) {
        let metrics = BudgetMetrics::default();
        (RequestBudget::new(total, metrics.clone()), metrics)
    }

    #[tokio::test]
    async fn acquire_and_release_move_the_gauge() {
        let (b, m) = budget(100);
        let a = b.acquire(60).await.unwrap();
        let c = b.acquire(40).await.unwrap();
        assert_eq!((b.held(), m.held.get()), (100, 100));
        drop(a);
        assert_eq!((b.held(), m.held.get()), (40, 40));
        drop(c);
        assert_eq!((b.held(), m.held.get()), (0, 0));
        assert_eq!(m.waits.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_makes_the_next_taker_wait_until_bytes_come_back() {
        let (b, m) = budget(100);
        let first = b.acquire(70).await.unwrap();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(50).await.map(|h| h.bytes()) }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!waiter.is_finished(), "took 50 bytes with only 30 left");
        assert_eq!(m.waits.get(), 1);
        assert_eq!(b.held(), 70);
        drop(first);
        assert_eq!(waiter.await.unwrap().unwrap(), 50);
        // The waiter's bytes came back when its `Held` was dropped inside the task.
        assert_eq!((b.held(), m.held.get()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_dies_waiting_or_holding_leaks_nothing() {
        let (b, m) = budget(100);
        let holder = tokio::spawn({
            let b = b.clone();
            async move {
                let _held = b.acquire(80).await.unwrap();
                std::future::pending::<()>().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(b.held(), 80);
        let waiter = tokio::spawn({
            let b = b.clone();
            async move {
                let _held = b.acquire(50).await.unwrap();
                std::future::pending::<()>().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Both connections die: one mid-frame holding bytes, one while waiting for them.
        waiter.abort();
        holder.abort();
        let _ = waiter.await;
        let _ = holder.await;
        assert_eq!((b.held(), m.held.get()), (0, 0));
        assert_eq!(b.acquire(100).await.unwrap().bytes(), 100);
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_whole_budget_is_refused_not_waited_for() {
        let (b, m) = budget(100);
        assert_eq!(
            b.acquire(101).await.unwrap_err(),
            OverBudget {
                size: 101,
                budget: 100
            }
        );
        assert_eq!((b.held(), m.waits.get()), (0, 0));
    }

    #[tokio::test]
    async fn a_budget_above_the_semaphore_ceiling_is_that_ceiling() {
        let (b, _) = budget(usize::MAX);
        assert_eq!(b.total(), Semaphore::MAX_PERMITS);
    }
}
