//! KIP-368 re-authentication on a live upstream connection: a small user of the in-flight
//! manager's own requests.
//!
//! When the proxy logged in to the broker (`upstream.identity.mode: scram` or `oauthbearer`)
//! and the broker's final SaslAuthenticate answer carried `session_lifetime_ms > 0`, the broker
//! closes the connection at the first request it reads after the session expired. So the
//! requests loop logs in again on the same connection before that, at a random point between
//! 85% and 95% of the lifetime (as Java clients do, so that connections opened together do not
//! re-authenticate together):
//!
//! 1. It stops reading client requests (they wait in the socket, like back-pressure) and asks
//!    the in-flight manager to quiesce: once every earlier request is answered, it hands back a
//!    correlation id of the proxy's own.
//! 2. It runs the same login as the first connect (SaslHandshake v1, then the mechanism's
//!    SaslAuthenticate steps; the pool's secret is read again, so a rotated password is used, or
//!    a new token is signed) over [`LiveSession`]: each request is registered as the proxy's own
//!    before it is written, and its answer comes back here instead of going to the client.
//! 3. It schedules the next re-authentication from the new lifetime and reads client requests
//!    again.
//!
//! Waiting for earlier answers first costs one round trip per lifetime and matches what a Kafka
//! broker does anyway (it reads one request per connection at a time, so a SaslHandshake sent
//! behind a parked Fetch would wait for it too); it also means the SASL steps themselves are
//! bounded by the upstream connect timeout alone, like the first login. A refusal or a timeout
//! closes the connection with a log line, an audit record (`upstream_reauthentication_failed`)
//! and the `upstream_reauthentications_total{result="failure"}` counter, rather than letting the
//! broker cut it in the middle of a request. Without a lifetime (`mode: none`, or a broker that
//! grants sessions that never expire) no timer exists.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;
use tracing::info;

use super::ConnectionIdentity;
use super::end::{SessionEnd, UpstreamFault};
use super::in_flight::InFlightTx;
use crate::kafka::frame::write_frame;
use crate::metrics::Metrics;
use crate::upstream::{
    SaslTransport, SaslTransportError, UpstreamConnector, UpstreamError, stamp_correlation_id,
};

/// The re-authentication schedule of one session: none when its upstream session never
/// expires (`mode: none`, or a broker that grants sessions without a lifetime).
pub(crate) struct Reauthentication<'a> {
    scheduled: Option<Schedule<'a>>,
}

struct Schedule<'a> {
    connector: &'a UpstreamConnector,
    identity: &'a ConnectionIdentity,
    /// The broker's address, for log lines and errors.
    addr: &'a str,
    /// Bounds the wait for earlier answers (a parked Fetch, a rebalance's JoinGroup).
    idle: Duration,
    metrics: &'a Metrics,
    /// When the next re-authentication is due.
    next: Pin<Box<Sleep>>,
}

/// How a re-authentication ended, when it did not fail.
pub(crate) enum Renewal {
    /// Logged in again; the next one is scheduled (if the new session expires).
    Renewed,
    /// The responses loop ended first (the broker or the client went away).
    SessionGone,
}

impl<'a> Reauthentication<'a> {
    /// The schedule of a session whose login started at `login_started` and was granted
    /// `lifetime` (`None`: it never expires).
    pub fn new(
        connector: &'a UpstreamConnector,
        identity: &'a ConnectionIdentity,
        addr: &'a str,
        idle: Duration,
        metrics: &'a Metrics,
        login_started: tokio::time::Instant,
        lifetime: Option<Duration>,
    ) -> Self {
        let Some(lifetime) = lifetime else {
            return Self::none();
        };
        Self {
            scheduled: Some(Schedule {
                connector,
                identity,
                addr,
                idle,
                metrics,
                next: timer(login_started, lifetime),
            }),
        }
    }

    /// A session that never expires.
    pub fn none() -> Self {
        Self { scheduled: None }
    }

    pub fn is_scheduled(&self) -> bool {
        self.scheduled.is_some()
    }

    /// Completes when the timer fires; never when there is none.
    pub async fn due(&mut self) {
        match &mut self.scheduled {
            Some(schedule) => schedule.next.as_mut().await,
            None => std::future::pending().await,
        }
    }

    /// Log in again on the live connection; counted in the re-authentication metric.
    pub async fn run<W: AsyncWrite + Unpin>(
        &mut self,
        in_flight: &InFlightTx,
        upstream: &mut W,
    ) -> Result<Renewal, SessionEnd> {
        let Some(schedule) = &mut self.scheduled else {
            return Ok(Renewal::Renewed);
        };
        let started = tokio::time::Instant::now();
        match schedule.renew(in_flight, upstream).await {
            Ok(Some(next)) => {
                schedule.metrics.upstream_reauthentication(true);
                info!(
                    upstream = %schedule.addr,
                    millis = started.elapsed().as_millis() as u64,
                    "re-authenticated to the broker"
                );
                match next {
                    Some(next) => schedule.next = next,
                    // The new session never expires: no more re-authentications.
                    None => self.scheduled = None,
                }
                Ok(Renewal::Renewed)
            }
            Ok(None) => Ok(Renewal::SessionGone),
            Err(e) => {
                schedule.metrics.upstream_reauthentication(false);
                Err(UpstreamFault::Reauthentication(e).into())
            }
        }
    }
}

impl Schedule<'_> {
    /// `Ok(None)`: the session ended meanwhile; `Ok(Some(next))`: renewed, with the next timer.
    #[allow(
        clippy::type_complexity,
        reason = "an option of the next timer, itself optional"
    )]
    async fn renew<W: AsyncWrite + Unpin>(
        &self,
        in_flight: &InFlightTx,
        upstream: &mut W,
    ) -> Result<Option<Option<Pin<Box<Sleep>>>>, UpstreamError> {
        let Ok(free_id) = in_flight.quiesce().await else {
            return Ok(None);
        };
        // Earlier requests are the client's (a Fetch parks up to fetch.max.wait.ms, a JoinGroup
        // for a rebalance): bounded by the idle timeout, like any wait on this connection.
        let correlation_id = match tokio::time::timeout(self.idle, free_id).await {
            Ok(Ok(id)) => id,
            Ok(Err(_)) => return Ok(None),
            Err(_) => {
                return Err(UpstreamError::Sasl {
                    addr: self.addr.to_string(),
                    pool: self.identity.primary_pool(),
                    reason: format!(
                        "earlier requests were still unanswered after {} ms",
                        self.idle.as_millis()
                    ),
                });
            }
        };
        let login_started = tokio::time::Instant::now();
        let mut transport = LiveSession {
            upstream,
            in_flight,
            correlation_id,
            ended: false,
        };
        let lifetime = self
            .connector
            .reauthenticate(
                &mut transport,
                self.addr,
                &self.identity.resolved.evaluation.resolution,
            )
            .await;
        if transport.ended {
            return Ok(None);
        }
        let lifetime = lifetime?;
        if in_flight.resume().await.is_err() {
            return Ok(None);
        }
        Ok(Some(
            lifetime.map(|lifetime| timer(login_started, lifetime)),
        ))
    }
}

/// Due at a random point between 85% and 95% of `lifetime` after `since`, as Java clients do:
/// late enough not to waste logins, early enough for a slow round trip, and spread so that
/// connections opened together do not re-authenticate together.
fn timer(since: tokio::time::Instant, lifetime: Duration) -> Pin<Box<Sleep>> {
    use rand::RngExt as _;
    let per_mille: u32 = rand::rng().random_range(850..=950);
    Box::pin(tokio::time::sleep_until(
        since + lifetime * per_mille / 1000,
    ))
}

/// The live session as a SASL transport: each request is registered as the proxy's own before
/// it is written (as client requests are), and its answer comes back here.
struct LiveSession<'a, W> {
    upstream: &'a mut W,
    in_flight: &'a InFlightTx,
    /// Free of every client id the broker may still answer.
    correlation_id: i32,
    /// The responses loop ended mid-exchange: the session is over for another reason.
    ended: bool,
}

impl<W: AsyncWrite + Unpin> SaslTransport for LiveSession<'_, W> {
    async fn round_trip(&mut self, request: Bytes) -> Result<Bytes, SaslTransportError> {
        let request = stamp_correlation_id(&request, self.correlation_id)?;
        let Ok(answer) = self.in_flight.own_request(self.correlation_id).await else {
            self.ended = true;
            return Err(SaslTransportError::SessionEnded);
        };
        write_frame(&mut *self.upstream, &request)
            .await
            .map_err(SaslTransportError::Write)?;
        self.upstream
            .flush()
            .await
            .map_err(SaslTransportError::Write)?;
        answer.await.map_err(|_| {
            self.ended = true;
            SaslTransportError::SessionEnded
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reauthentication_is_due_between_85_and_95_percent_of_the_lifetime() {
        let since = tokio::time::Instant::now();
        let lifetime = Duration::from_secs(100);
        for _ in 0..200 {
            let due = timer(since, lifetime).deadline() - since;
            assert!(
                (Duration::from_secs(85)..=Duration::from_secs(95)).contains(&due),
                "{due:?}"
            );
        }
    }
}
