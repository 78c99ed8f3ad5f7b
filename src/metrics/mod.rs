//! The proxy's Prometheus metrics: one [`Metrics`], created at start, shared as `Arc<Metrics>`.
//!
//! The core reports what happened through methods named for the event
//! ([`Metrics::connection_opened`], [`Metrics::handshake_refused`], [`Metrics::request`], …);
//! nothing outside this module sees a registry, a label set or a metric name, so names and
//! labels stay consistent and cardinality stays bounded in one place:
//!
//! | metric | labels | bounded by |
//! | --- | --- | --- |
//! | `kafka_mtls_proxy_connections_active` (gauge) | `listener` | `bootstrap` or `broker-<id>`: `limits.max_broker_listeners` |
//! | `kafka_mtls_proxy_connections_total` | `listener` | same |
//! | `kafka_mtls_proxy_connections_refused_total` | `listener`, `reason` | same × [`ConnectionRefusal`] |
//! | `kafka_mtls_proxy_handshakes_total` | `result`, `reason` | `success` or `refused` × [`RefusalReason`] |
//! | `kafka_mtls_proxy_proxy_protocol_refusals_total` | `reason` | [`ProxyProtocolRefusal`] |
//! | `kafka_mtls_proxy_sni_unrecognized_names_total` | — | |
//! | `kafka_mtls_proxy_pool_matches_total` | `pool` | the pool ids in the configuration |
//! | `kafka_mtls_proxy_requests_total` | `api_key` | [`API_KEY_SLOTS`] + 1 |
//! | `kafka_mtls_proxy_request_duration_seconds` (histogram) | `api_key` | same |
//! | `kafka_mtls_proxy_bytes_total` | `direction` | [`Direction`] |
//! | `kafka_mtls_proxy_upstream_connect_errors_total` | — | |
//! | `kafka_mtls_proxy_upstream_reauthentications_total` | `result` | `success` or `failure` |
//! | `kafka_mtls_proxy_reloads_total` | `result` | `success` or `failure` |
//! | `kafka_mtls_proxy_audit_records_dropped_total` | — | |
//! | `kafka_mtls_proxy_request_budget_held_bytes` (gauge) | — | |
//! | `kafka_mtls_proxy_request_budget_waits_total` | — | |
//! | `kafka_mtls_proxy_clients_stalled_total` | — | |
//! | `kafka_mtls_proxy_pool_store_up`, `…_pool_store_lag_records` (gauges), `…_pool_store_records_applied_total` | `topic` | `store.topic`: one |
//! | `kafka_mtls_proxy_pool_store_records_rejected_total` | `topic`, `reason` | one × `key`, `document`, `too_large`, `invalid` |
//!
//! Inputs are typed where the label set is fixed ([`Target`], [`RefusalReason`], [`Direction`]),
//! so a caller cannot invent a label value. The api key is the one label a client controls
//! (any `i16`): known keys are labelled with their name, other small keys with their number,
//! and everything else shares one `invalid` series.
//!
//! Cost: per-request events ([`Metrics::request`], [`Metrics::bytes`]) use handles built once
//! (the api-key handles on first use of each key) and only touch atomics and one histogram
//! mutex. Per-connection events look their series up in a [`Family`] (a read-locked hash map),
//! which is negligible next to a TLS handshake.

mod labels;
mod store;

pub use labels::{
    CertificateKind, ConnectionRefusal, Direction, ProxyProtocolRefusal,
    UNVERIFIED_BROKER_LISTENER, listener_label,
};
pub use store::StoreMetrics;

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::kafka::ApiKey;
use crate::kafka::budget::BudgetMetrics;
use crate::tls::RefusalReason;
use crate::upstream::Target;
use labels::{
    ApiLabels, CaLabels, CertificateLabels, DenialLabels, DirectionLabels, HandshakeLabels,
    ListenerLabels, PoolLabels, ReasonLabels, RefusedLabels, ResultLabels,
};

/// The `Content-Type` of [`Metrics::encode`]'s output (OpenMetrics 1.0 text, which Prometheus
/// asks for first and parses natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this.
pub const PREFIX: &str = "kafka_mtls_proxy";

/// Api keys `0..API_KEY_SLOTS` get a series of their own (named if the protocol crate knows
/// them, numbered otherwise, so a key added by a newer Kafka still shows up readably). Kafka
/// uses fewer than 100 keys today; anything at or above this, or negative, is a client
/// sending garbage and goes to the one `invalid` series, so a client cycling through all
/// 65,536 values cannot blow up the number of series.
pub const API_KEY_SLOTS: usize = 128;

/// Request latency buckets, in seconds. From sub-millisecond (metadata from a warm broker) up
/// to the long waits Kafka does on purpose: Fetch parks for `fetch.max.wait.ms` (500 ms by
/// default) and JoinGroup waits for the whole group to rebalance (tens of seconds).
pub const REQUEST_DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A `fn` rather than a closure so the family's type can be named in the struct.
fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_DURATION_BUCKETS)
}

type HistogramFamily = Family<ApiLabels, Histogram, fn() -> Histogram>;

/// The handles of one api key, cloned out of the families (they share the same atomics).
#[derive(Debug)]
struct RequestHandles {
    count: Counter,
    duration: Histogram,
}

/// All of the proxy's metrics. `Send + Sync`: share one as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_active: Family<ListenerLabels, Gauge>,
    connections_total: Family<ListenerLabels, Counter>,
    /// Closed before the handshake because the listener's broker was known down.
    connections_refused: Family<RefusedLabels, Counter>,
    /// 1 while a listener is closed because everything it serves is down.
    listeners_closed: Family<ListenerLabels, Gauge>,
    handshakes: Family<HandshakeLabels, Counter>,
    proxy_protocol_refusals: Family<ReasonLabels, Counter>,
    /// SNI routing: ClientHellos refused with `unrecognized_name`.
    sni_unrecognized: Counter,
    pool_matches: Family<PoolLabels, Counter>,
    requests: Family<ApiLabels, Counter>,
    request_duration: HistogramFamily,
    /// Slot `k` holds api key `k`'s handles once a request with that key was seen; the last
    /// slot is the shared `invalid` series. Filled lazily so the exposition only lists the
    /// keys clients actually use.
    request_handles: Vec<OnceLock<RequestHandles>>,
    client_to_upstream_bytes: Counter,
    upstream_to_client_bytes: Counter,
    upstream_connect_errors: Counter,
    upstream_reauthentications: Family<ResultLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    audit_dropped: Counter,
    /// Kept current by the request memory budget itself.
    request_budget: BudgetMetrics,
    clients_stalled: Counter,
    authorization_denials: Family<DenialLabels, Counter>,
    /// Unix time of each CA's last successful CRL fetch (`time() - x` is the CRL's age).
    crl_fetched: Family<CaLabels, Gauge>,
    /// `notAfter` of every certificate the configuration names (server chain, CA bundles).
    certificate_expiry: Family<CertificateLabels, Gauge>,
    /// The earliest `notAfter` among the live connections of each pool.
    client_certificate_expiry: Family<PoolLabels, Gauge>,
    store: StoreMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Build every metric and register it. Call once at start.
    pub fn new() -> Self {
        let bytes = Family::<DirectionLabels, Counter>::default();
        let mut metrics = Self {
            registry: Registry::with_prefix(PREFIX),
            connections_active: Family::default(),
            connections_total: Family::default(),
            connections_refused: Family::default(),
            listeners_closed: Family::default(),
            handshakes: Family::default(),
            proxy_protocol_refusals: Family::default(),
            sni_unrecognized: Counter::default(),
            pool_matches: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            request_handles: (0..=API_KEY_SLOTS).map(|_| OnceLock::new()).collect(),
            // Both directions exist from the start: a dashboard's rate() sees 0, not "no data".
            client_to_upstream_bytes: bytes.get_or_create_owned(&DirectionLabels {
                direction: Direction::ClientToUpstream.as_str(),
            }),
            upstream_to_client_bytes: bytes.get_or_create_owned(&DirectionLabels {
                direction: Direction::UpstreamToClient.as_str(),
            }),
            upstream_connect_errors: Counter::default(),
            upstream_reauthentications: Family::default(),
            reloads: Family::default(),
            audit_dropped: Counter::default(),
            request_budget: BudgetMetrics::default(),
            clients_stalled: Counter::default(),
            authorization_denials: Family::default(),
            crl_fetched: Family::default(),
            certificate_expiry: Family::default(),
            client_certificate_expiry: Family::default(),
            store: StoreMetrics::default(),
        };
        // Registration order is the exposition's order.
        metrics.register_connection_metrics();
        metrics.register_request_metrics(bytes);
        metrics.register_operational_metrics();
        metrics.store.register(&mut metrics.registry);
        metrics
    }

    /// Registers the per-connection metrics: listeners, handshakes, pool matches.
    fn register_connection_metrics(&mut self) {
        self.registry.register(
            "connections_active",
            "Client connections open now, by listener",
            self.connections_active.clone(),
        );
        self.registry.register(
            "connections",
            "Client connections accepted, by listener",
            self.connections_total.clone(),
        );
        self.registry.register(
            "connections_refused",
            "Client connections closed before the TLS handshake, by listener and reason (max_connections, upstream_down)",
            self.connections_refused.clone(),
        );
        self.registry.register(
            "listener_closed",
            "1 while a listener is closed because its broker is down (connects refused by the kernel), by listener",
            self.listeners_closed.clone(),
        );
        self.registry.register(
            "handshakes",
            "mTLS handshakes by result (success or refused) and refusal reason",
            self.handshakes.clone(),
        );
        self.registry.register(
            "proxy_protocol_refusals",
            "Connections refused before the TLS handshake by listener.proxy_protocol, by reason",
            self.proxy_protocol_refusals.clone(),
        );
        self.registry.register(
            "sni_unrecognized_names",
            "Connections refused before the TLS handshake (alert unrecognized_name): their server name named no broker of the cluster (listener.sni)",
            self.sni_unrecognized.clone(),
        );
        self.registry.register(
            "pool_matches",
            "Admitted connections by identity pool (a connection matching several pools counts in each)",
            self.pool_matches.clone(),
        );
    }

    /// Registers the per-request metrics: counts, latency, bytes relayed. `bytes` is the family
    /// behind the two byte counters, which is all of it the hot path keeps.
    fn register_request_metrics(&mut self, bytes: Family<DirectionLabels, Counter>) {
        self.registry.register(
            "requests",
            "Kafka requests answered through the proxy, by api key",
            self.requests.clone(),
        );
        self.registry.register_with_unit(
            "request_duration",
            "Time from forwarding a Kafka request to delivering its response, by api key",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        self.registry
            .register("bytes", "Kafka frame bytes relayed, by direction", bytes);
        self.registry.register_with_unit(
            "request_budget_held",
            "Request bytes held now against limits.max_buffered_request_bytes, across every connection",
            Unit::Bytes,
            self.request_budget.held.clone(),
        );
        self.registry.register(
            "request_budget_waits",
            "Times a client connection stopped being read until the request memory budget had room",
            self.request_budget.waits.clone(),
        );
        self.registry.register(
            "clients_stalled",
            "Client connections closed for stalling in the middle of a request frame",
            self.clients_stalled.clone(),
        );
    }

    /// Registers the metrics of the proxy's own work: upstream connects and
    /// re-authentications, reloads, audit drops, ACL denials, CRL fetches.
    fn register_operational_metrics(&mut self) {
        self.registry.register(
            "upstream_connect_errors",
            "Failed attempts to connect to an upstream broker",
            self.upstream_connect_errors.clone(),
        );
        self.registry.register(
            "upstream_reauthentications",
            "KIP-368 re-authentications on live upstream connections, by result (success or failure)",
            self.upstream_reauthentications.clone(),
        );
        self.registry.register(
            "reloads",
            "Configuration reloads by result (success or failure)",
            self.reloads.clone(),
        );
        self.registry.register(
            "audit_records_dropped",
            "Audit records dropped because the audit queue was full",
            self.audit_dropped.clone(),
        );
        self.registry.register(
            "authorization_denials",
            "Resources refused by proxy ACLs, by api, resource type and operation",
            self.authorization_denials.clone(),
        );
        self.registry.register(
            "crl_last_fetch_timestamp_seconds",
            "Unix time of the last successful fetch of each certificate authority's crl_url",
            self.crl_fetched.clone(),
        );
        self.registry.register(
            "certificate_expiry_timestamp_seconds",
            "Unix time each certificate expires: the proxy's own chain (kind=server) and every CA bundle certificate (kind=ca)",
            self.certificate_expiry.clone(),
        );
        self.registry.register(
            "client_certificate_earliest_expiry_timestamp_seconds",
            "Unix time the soonest-expiring client certificate of each pool's live connections expires",
            self.client_certificate_expiry.clone(),
        );
    }

    /// A client connection was accepted on `target`'s listener. It counts as active until the
    /// returned guard is dropped, so every early return of a session closes it exactly once:
    /// bind it for the session's lifetime (`let _open = …`; `let _ = …` drops it at once).
    pub fn connection_opened(&self, target: Target) -> OpenConnection {
        self.connection_opened_on(&listener_label(target))
    }

    /// [`Self::connection_opened`] with the `listener` label given.
    pub fn connection_opened_on(&self, listener: &str) -> OpenConnection {
        let labels = ListenerLabels {
            listener: listener.to_string(),
        };
        self.connections_total.get_or_create(&labels).inc();
        let active = self.connections_active.get_or_create_owned(&labels);
        active.inc();
        OpenConnection { active }
    }

    /// A ClientHello's server name named no broker (`listener.sni`): refused before the
    /// handshake with `unrecognized_name`.
    pub fn sni_unrecognized(&self) {
        self.sni_unrecognized.inc();
    }

    /// A connection was refused before its handshake by the PROXY protocol policy.
    pub fn proxy_protocol_refused(&self, reason: ProxyProtocolRefusal) {
        self.proxy_protocol_refusals
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// A client connection on `target`'s listener was closed before its handshake for `reason`.
    pub fn connection_refused(&self, target: Target, reason: ConnectionRefusal) {
        self.connection_refused_on(&listener_label(target), reason);
    }

    /// [`Self::connection_refused`] with the `listener` label given.
    pub fn connection_refused_on(&self, listener: &str, reason: ConnectionRefusal) {
        self.connections_refused
            .get_or_create(&RefusedLabels {
                listener: listener.to_string(),
                reason: reason.as_str(),
            })
            .inc();
    }

    /// `listener` was closed (`true`) or opened again (`false`) while its broker was down.
    pub fn listener_closed(&self, listener: &str, closed: bool) {
        self.listeners_closed
            .get_or_create(&ListenerLabels {
                listener: listener.to_string(),
            })
            .set(i64::from(closed));
    }

    /// A client completed the mTLS handshake and was admitted.
    pub fn handshake_admitted(&self) {
        self.handshakes
            .get_or_create(&HandshakeLabels {
                result: "success",
                reason: "",
            })
            .inc();
    }

    /// A client was refused during or right after the handshake.
    pub fn handshake_refused(&self, reason: RefusalReason) {
        self.handshakes
            .get_or_create(&HandshakeLabels {
                result: "refused",
                reason: reason.as_str(),
            })
            .inc();
    }

    /// An admitted client matched the identity pool `pool_id` (call once per matched pool).
    /// Pool ids come from the configuration, which bounds this label.
    pub fn pool_matched(&self, pool_id: &str) {
        self.pool_matches
            .get_or_create(&PoolLabels {
                pool: pool_id.to_string(),
            })
            .inc();
    }

    /// A request with `api_key` was answered, `elapsed` after it was forwarded.
    pub fn request(&self, api_key: ApiKey, elapsed: Duration) {
        let handles = self.request_handles_for(api_key);
        handles.count.inc();
        handles.duration.observe(elapsed.as_secs_f64());
    }

    /// `n` bytes of Kafka frames went through in `direction`.
    pub fn bytes(&self, direction: Direction, n: u64) {
        match direction {
            Direction::ClientToUpstream => self.client_to_upstream_bytes.inc_by(n),
            Direction::UpstreamToClient => self.upstream_to_client_bytes.inc_by(n),
        };
    }

    /// The handles the request memory budget keeps current (`kafka::budget::RequestBudget`).
    pub fn request_budget(&self) -> BudgetMetrics {
        self.request_budget.clone()
    }

    /// A client was closed for stalling in the middle of a request frame.
    pub fn client_stalled(&self) {
        self.clients_stalled.inc();
    }

    /// A connection attempt to an upstream broker failed (refused, timed out, TLS failed).
    pub fn upstream_connect_error(&self) {
        self.upstream_connect_errors.inc();
    }

    /// A KIP-368 re-authentication on a live upstream connection ended; a failure closes it.
    pub fn upstream_reauthentication(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.upstream_reauthentications
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The shared pool store's metrics.
    pub fn store(&self) -> &StoreMetrics {
        &self.store
    }

    /// A configuration reload was applied.
    pub fn reload_succeeded(&self) {
        self.reloads
            .get_or_create(&ResultLabels { result: "success" })
            .inc();
    }

    /// A configuration reload was refused; the previous configuration stays in force.
    pub fn reload_failed(&self) {
        self.reloads
            .get_or_create(&ResultLabels { result: "failure" })
            .inc();
    }

    /// `n` audit records were dropped because the audit queue was full.
    pub fn audit_dropped(&self, n: u64) {
        self.audit_dropped.inc_by(n);
    }

    /// Proxy ACLs refused `operation` on a resource of `resource_type` in a request of
    /// `api_key`.
    pub fn authorization_denied(
        &self,
        api_key: ApiKey,
        resource_type: &'static str,
        operation: &'static str,
    ) {
        self.authorization_denials
            .get_or_create(&DenialLabels {
                api: api_key.label(),
                resource_type,
                operation,
            })
            .inc();
    }

    /// `ca_id`'s CRL was fetched successfully at `unix_seconds`.
    pub fn crl_fetched(&self, ca_id: &str, unix_seconds: u64) {
        self.crl_fetched
            .get_or_create(&CaLabels {
                ca: ca_id.to_string(),
            })
            .set(i64::try_from(unix_seconds).unwrap_or(i64::MAX));
    }

    /// Replace the configured certificates' expiry series: `(kind, ca id or "", subject,
    /// notAfter)`. Certificates no longer configured disappear.
    pub fn set_certificate_expiries<'a>(
        &self,
        certificates: impl IntoIterator<Item = (CertificateKind, &'a str, &'a str, i64)>,
    ) {
        self.certificate_expiry.clear();
        for (kind, ca, subject, not_after) in certificates {
            self.certificate_expiry
                .get_or_create(&CertificateLabels {
                    kind: kind.as_str(),
                    ca: ca.to_string(),
                    subject: subject.to_string(),
                })
                .set(not_after);
        }
    }

    /// Replace the per-pool earliest client certificate expiry: pools without live
    /// connections disappear.
    pub fn set_client_certificate_expiries<'a>(
        &self,
        earliest: impl IntoIterator<Item = (&'a str, i64)>,
    ) {
        self.client_certificate_expiry.clear();
        for (pool, not_after) in earliest {
            self.client_certificate_expiry
                .get_or_create(&PoolLabels {
                    pool: pool.to_string(),
                })
                .set(not_after);
        }
    }

    /// Every metric in the OpenMetrics text format; serve it with [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail and our label values always encode; should the
        // crate ever report an error, a partial exposition and a log line beat a panic.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }

    fn request_handles_for(&self, api_key: ApiKey) -> &RequestHandles {
        let slot = usize::try_from(api_key.0)
            .ok()
            .filter(|k| *k < API_KEY_SLOTS)
            .unwrap_or(API_KEY_SLOTS);
        self.request_handles[slot].get_or_init(|| {
            let api_key = if slot == API_KEY_SLOTS {
                Cow::Borrowed("invalid")
            } else {
                api_key.label()
            };
            let labels = ApiLabels { api_key };
            RequestHandles {
                count: self.requests.get_or_create_owned(&labels),
                duration: self.request_duration.get_or_create_owned(&labels),
            }
        })
    }
}

/// An open client connection; dropping it decrements `kafka_mtls_proxy_connections_active`.
#[derive(Debug)]
#[must_use = "the connection counts as active until this guard is dropped"]
pub struct OpenConnection {
    active: Gauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.active.dec();
    }
}

#[cfg(test)]
mod tests;
