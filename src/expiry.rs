//! Certificate expiry in view: gauges of when every configured certificate (the proxy's own
//! chain, each CA bundle) and the soonest admitted client certificate of each pool expire, and a
//! daily warning `tls.expiry_warning_days` before a CA or server certificate does (Confluent
//! Cloud e-mails this; a running proxy logs it). `check-config`, the start and every reload warn
//! too, through the configuration's own warnings.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::config::{ReloadableConfig, unix_now};
use crate::metrics::{CertificateKind, Metrics};
use crate::reload::Reloader;
use crate::session::LiveConnections;

/// How often the gauges are brought up to date (live connections come and go).
const GAUGE_INTERVAL: Duration = Duration::from_secs(10);

/// How often a running proxy repeats its expiry warnings.
const WARNING_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Keep the expiry gauges current, and warn once a day about certificates that expire soon.
/// The first warnings come from loading the configuration, so the first daily one is a day on.
pub async fn watch(ctx: Arc<Reloader>) {
    let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
    let mut warnings = tokio::time::interval(WARNING_INTERVAL);
    let mut generations = ctx.subscribe();
    warnings.tick().await;
    loop {
        tokio::select! {
            // A new generation may name other certificates: show them at once.
            changed = generations.changed() => {
                if changed.is_err() {
                    return;
                }
                generations.borrow_and_update();
                record(&ctx.current().config, ctx.live(), ctx.metrics());
            }
            _ = gauges.tick() => {
                let generation = ctx.current();
                record(&generation.config, ctx.live(), ctx.metrics());
            }
            _ = warnings.tick() => {
                for line in warnings_now(&ctx.current().config) {
                    warn!("{line}");
                }
            }
        }
    }
}

/// Set the expiry gauges from `config` and the live connections.
pub fn record(config: &ReloadableConfig, live: &LiveConnections, metrics: &Metrics) {
    let server = config.server_tls.expiries();
    let authorities: Vec<_> = config
        .authorities
        .iter()
        .map(|ca| (ca.id.as_str(), ca.expiries()))
        .collect();
    metrics.set_certificate_expiries(
        server
            .iter()
            .map(|e| (CertificateKind::Server, "", e.subject.as_str(), e.not_after))
            .chain(authorities.iter().flat_map(|(ca, expiries)| {
                expiries.iter().map(|e| {
                    (
                        CertificateKind::Authority,
                        *ca,
                        e.subject.as_str(),
                        e.not_after,
                    )
                })
            })),
    );
    let earliest = live.earliest_expiry_by_pool();
    metrics.set_client_certificate_expiries(earliest.iter().map(|(p, t)| (p.as_str(), *t)));
}

/// The warnings due now: each server or CA certificate within `tls.expiry_warning_days` of its
/// expiry, or past it.
pub fn warnings_now(config: &ReloadableConfig) -> Vec<String> {
    let now = unix_now();
    let days = config.server_tls.expiry_warning_days;
    let server = config
        .server_tls
        .expiries()
        .into_iter()
        .filter_map(|e| e.warning(now, days))
        .map(|w| format!("tls.certificate_chain: {w}"));
    let authorities = config.authorities.iter().flat_map(|ca| {
        ca.expiries()
            .into_iter()
            .filter_map(move |e| e.warning(now, days))
            .map(move |w| format!("certificate authority `{}`: {w}", ca.id))
    });
    server.chain(authorities).collect()
}
