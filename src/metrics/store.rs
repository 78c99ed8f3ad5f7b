//! The shared pool store's metrics (the `store` module).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::ReasonLabels;

/// `pool_store_*`: whether the topic is being read, what was applied, what was refused.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    up: Gauge,
    applied: Counter,
    rejected: Family<ReasonLabels, Counter>,
    lag: Gauge,
}

impl StoreMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "pool_store_up",
            "1 while the shared pool store's topic is being read, 0 when it cannot be (the last applied state is served)",
            self.up.clone(),
        );
        registry.register(
            "pool_store_records_applied",
            "Records of the shared pool store's topic applied",
            self.applied.clone(),
        );
        registry.register(
            "pool_store_records_rejected",
            "Records of the shared pool store's topic skipped because they do not validate, by reason (key, document, too_large, invalid)",
            self.rejected.clone(),
        );
        registry.register(
            "pool_store_lag_records",
            "Offsets between the last record applied and the topic's end seen at the last fetch",
            self.lag.clone(),
        );
    }

    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    pub fn applied(&self) {
        self.applied.inc();
    }

    /// `reason` is one of a fixed set (`RecordError::label`).
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn set_lag(&self, lag: i64) {
        self.lag.set(lag.max(0));
    }
}
