//! The admin HTTP server: health, readiness, metrics and the IAM API, on a port of its own.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /healthz` | `200 ok`: the process is alive and its runtime answers |
//! | `GET /readyz` | `200` when ready, else `503`; a JSON [`ReadinessReport`] either way |
//! | `GET /metrics` | the [`Metrics`] in the OpenMetrics text format |
//! | `/iam/v2/...` | certificate authorities and identity pools, Confluent's API ([`iam`]) |
//! | `GET /.well-known/jwks.json` | the oauthbearer signing keys (JWKS), only in that mode |
//! | anything else | `404` (`405` for another method on a known path) |
//!
//! It is configured by the optional `admin.listen` key and binds loopback by default: reads
//! have no authentication, and they are for the machine's own agents (a Prometheus sidecar,
//! the kubelet, an operator with curl). Writes to the IAM API need the bearer token of
//! `admin.token_file` / `admin.token_env` ([`auth`]); without one the API is read-only. It is separate from the Kafka listeners so
//! that a flood of Kafka clients cannot starve probes, and so that it never speaks TLS with
//! client certificates.
//!
//! Wiring, for the core: bind a [`TcpListener`] on `config.admin.listen`, build an
//! [`AdminState`] from the shared [`Metrics`] and [`Readiness`] handles, and spawn
//! [`serve`] with the same shutdown signal as the proxy.

pub mod auth;
pub mod iam;
mod readiness;
mod upstream_probe;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::UpstreamConfig;
use crate::metrics::{self, Metrics};

pub use readiness::{NotReady, Readiness, ReadinessReport};
pub use upstream_probe::{CACHE_TTL, MAX_CHECK_TIME, UpstreamProbe};

/// After shutdown, how long requests already being answered may take before the server stops
/// anyway. Every handler finishes well within it (the slowest, `/readyz`, within
/// [`MAX_CHECK_TIME`]); it is here for clients that stall mid-request.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin handlers read. Cheap to clone: every field is shared.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The proxy's metrics, rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The flags the core sets, read by `/readyz`.
    pub readiness: Arc<Readiness>,
    /// The upstream reachability check of `/readyz`; keep a clone to call
    /// [`UpstreamProbe::set_targets`] after a reload.
    pub upstream: Arc<UpstreamProbe>,
    /// The IAM API (`/iam/v2/...`); `None` serves no such routes (an admin server without a
    /// proxy behind it).
    pub iam: Option<Arc<iam::IamApi>>,
    /// The oauthbearer signing keys, published at [`crate::oauth::JWKS_PATH`]; `None` in the
    /// other upstream identity modes (the path is then a 404).
    pub jwks: Option<Arc<crate::oauth::KeyRing>>,
}

impl AdminState {
    /// The state for a proxy whose upstream section is `upstream`.
    pub fn new(
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        upstream: &UpstreamConfig,
    ) -> Self {
        Self {
            metrics,
            readiness,
            upstream: Arc::new(UpstreamProbe::from_config(upstream)),
            iam: None,
            jwks: None,
        }
    }
}

/// The routes, without a listener (what [`serve`] runs).
pub fn router(state: AdminState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));
    if state.jwks.is_some() {
        router = router.route(crate::oauth::JWKS_PATH, get(jwks));
    }
    if state.iam.is_some() {
        router = router.merge(iam::routes());
    }
    router.fallback(not_found).with_state(state)
}

/// Serve the admin endpoints on `listener` until `shutdown` completes.
///
/// Then no new connection is accepted, idle connections are closed, and requests in progress
/// get up to [`DRAIN_TIMEOUT`] to finish. Errors only if the server itself fails; a failed
/// accept (e.g. out of file descriptors) is retried after a pause.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        let iam = if state.iam.is_some() { ", /iam/v2" } else { "" };
        info!(%addr, "admin server listening (/healthz, /readyz, /metrics{iam})");
    }
    // axum's graceful shutdown wants a `Send + 'static` signal; ours is any future, so it is
    // relayed through a channel.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result,
        Err(_) => {
            warn!("admin server: requests still open after the drain timeout; stopping anyway");
            Ok(())
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let report = state.readiness.report(state.upstream.check().await);
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Serializing strings into a String cannot fail; were it to, the status code and a
    // minimal body still carry the verdict.
    let body = serde_json::to_string(&report)
        .unwrap_or_else(|_| format!(r#"{{"status":"{}"}}"#, report.status));
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

/// The public signing keys. No authentication: they are public by design, and the brokers
/// fetch them anonymously.
async fn jwks(State(state): State<AdminState>) -> Response {
    let Some(keys) = &state.jwks else {
        return not_found().await.into_response();
    };
    // Serializing strings into a Vec cannot fail; an empty set is what a broker would
    // refuse tokens against, which is the honest answer were it to.
    let body = serde_json::to_vec(&keys.jwks()).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, crate::oauth::jwks::CACHE_CONTROL),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}
