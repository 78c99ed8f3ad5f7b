//! The shared pool store's metrics (the `store` module).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use prometheus_client::encoding::EncodeLabelSet;

/// The store's topic: one per proxy (`store.topic`), so one series each; none without a store,
/// so a proxy without one shows no `pool_store_up 0` to alert on.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabels {
    topic: String,
    reason: &'static str,
}

/// `pool_store_*`: whether the topic is being read, what was applied, what was refused.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    up: Family<TopicLabels, Gauge>,
    applied: Family<TopicLabels, Counter>,
    rejected: Family<RejectedLabels, Counter>,
    lag: Family<TopicLabels, Gauge>,
}

fn topic(topic: &str) -> TopicLabels {
    TopicLabels {
        topic: topic.to_string(),
    }
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

    pub fn set_up(&self, store: &str, up: bool) {
        self.up.get_or_create(&topic(store)).set(i64::from(up));
    }

    pub fn applied(&self, store: &str) {
        self.applied.get_or_create(&topic(store)).inc();
    }

    /// `reason` is one of a fixed set (`RecordError::label`).
    pub fn rejected(&self, store: &str, reason: &'static str) {
        self.rejected
            .get_or_create(&RejectedLabels {
                topic: store.to_string(),
                reason,
            })
            .inc();
    }

    pub fn set_lag(&self, store: &str, lag: i64) {
        self.lag.get_or_create(&topic(store)).set(lag.max(0));
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::Metrics;

    #[test]
    fn no_store_series_without_a_store_and_one_per_topic_with_one() {
        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("pool_store_up{"));
        metrics.store().set_up("_pools", true);
        metrics.store().rejected("_pools", "invalid");
        let text = metrics.encode();
        assert!(
            text.contains(r#"kafka_mtls_proxy_pool_store_up{topic="_pools"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kafka_mtls_proxy_pool_store_records_rejected_total{topic="_pools",reason="invalid"} 1"#
            ),
            "{text}"
        );
    }
}
