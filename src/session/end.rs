//! How a session ended, and the one place that turns it into a log line, a metric and an
//! audit record.
//!
//! The variants say who is at fault (as rustls' errors do): the client, the broker, or the
//! proxy's policy. Their messages are the `reason` of the closing log line.

use crate::audit::{AttemptOutcome, AuditSink, AuthenticationAttempt};
use crate::kafka::ProtocolError;
use crate::kafka::frame::FrameError;
use crate::log_limit::{Level, warnings};
use crate::metrics::Metrics;
use crate::tls::{RefusalReason, Verdict};
use crate::upstream::UpstreamError;
use tracing::{info, warn};

// The rate-limited warnings (see `crate::log_limit`): their text is their key.
const CLIENT_REFUSED: &str = "client refused";
const POOL_REFUSED: &str = "closing: the broker refused the pool's upstream identity";
const NO_UPSTREAM: &str = "closing: no upstream connection";

use super::ConnectionIdentity;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionEnd {
    /// The client left, or the proxy stopped it, with every answer delivered.
    #[error(transparent)]
    Closed(ClosedBy),
    /// The TLS handshake refused the client (no, untrusted or revoked certificate, no pool).
    #[error("client refused ({reason}): {detail}")]
    Refused {
        reason: RefusalReason,
        detail: String,
        verdict: Option<Box<Verdict>>,
    },
    /// No upstream connection: the broker is unreachable, or refused the pool's identity (the
    /// client has been told in the Kafka protocol then).
    #[error("no upstream connection: {0}")]
    NoUpstream(UpstreamError),
    #[error(transparent)]
    Client(#[from] ClientFault),
    #[error(transparent)]
    Upstream(#[from] UpstreamFault),
    /// A reload no longer admits the connection's certificate or pools.
    #[error("no longer admitted ({0})")]
    NoLongerAdmitted(String),
    /// Proxy ACLs refused a request they cannot authorize.
    #[error("request refused by proxy ACLs: {0}")]
    Unauthorizable(String),
}

/// Who ended a session that ended without a fault, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClosedBy {
    /// The stream ended between two frames (with or without a TLS `close_notify`).
    #[error("client closed the connection")]
    Client,
    /// The stream ended inside a frame. Both counts include the 4-byte size prefix.
    #[error("client closed the connection in the middle of a frame ({read} of {expected} bytes)")]
    ClientMidFrame { read: usize, expected: usize },
    /// A TCP reset (or an abort): whatever the client had half-sent is lost with it.
    #[error("client reset the connection")]
    ClientReset,
    /// The proxy stopped reading requests to shut down.
    #[error("the proxy is shutting down")]
    Shutdown,
    /// The session ended with nothing unanswered and no other cause recorded (the requests
    /// side stopped because the answers side had ended, and that side ended cleanly).
    #[error("the session ended with every answer delivered")]
    Finished,
}

/// The client broke the protocol or went quiet.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientFault {
    #[error("client sent a bad frame: {0}")]
    Frame(FrameError),
    #[error("client sent a malformed request: {0}")]
    Protocol(ProtocolError),
    #[error("client I/O: {0}")]
    Io(std::io::Error),
    #[error("idle for {0} ms")]
    Idle(u128),
    /// A started frame got no byte for `limits.request_stall_timeout_ms`: whatever budget the
    /// frame held goes back to the other connections.
    #[error(
        "client stalled in the middle of a frame ({read} of {expected} bytes received, then \
         nothing for {waited_ms} ms)"
    )]
    Stalled {
        read: usize,
        expected: usize,
        waited_ms: u128,
    },
    #[error("client used SASL on the TLS listener")]
    SaslRefused,
}

/// The broker broke the protocol, went away, or refused the proxy.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamFault {
    #[error("upstream sent a bad frame: {0}")]
    Frame(FrameError),
    #[error("upstream sent a malformed response: {0}")]
    Protocol(ProtocolError),
    #[error("cannot rewrite the upstream response: {0}")]
    Rewrite(ProtocolError),
    #[error("cannot apply proxy ACLs to the upstream response: {0}")]
    Patch(ProtocolError),
    #[error("upstream answered correlation id {got}, expected {expected}")]
    CorrelationMismatch { expected: i32, got: i32 },
    #[error("upstream sent a response (correlation id {0}) to no request")]
    Unsolicited(i32),
    #[error("upstream closed the connection with {0} request(s) unanswered")]
    Closed(usize),
    #[error("upstream I/O: {0}")]
    Io(std::io::Error),
    #[error("re-authentication to the broker failed: {0}")]
    Reauthentication(UpstreamError),
    #[error(
        "no more requests were coming (the client closed, or the proxy is stopping), and \
         {unanswered} request(s) were still unanswered by the broker after {waited_ms} ms \
         (oldest: {oldest})"
    )]
    DrainTimeout {
        unanswered: usize,
        waited_ms: u128,
        oldest: String,
    },
}

/// Who the session was with, as far as it got.
pub(crate) enum Party<'a> {
    /// Before the handshake admitted the client.
    Unknown {
        connection_id: &'a str,
        peer: std::net::SocketAddr,
        via: Option<std::net::SocketAddr>,
        /// The TLS server name the client asked for (SNI routing), if known.
        server_name: Option<&'a str>,
    },
    Admitted(&'a ConnectionIdentity),
}

impl SessionEnd {
    /// The log lines, metric and audit record of this end: the one place that decides them.
    ///
    /// An admitted connection ends with exactly one `connection closed` line at info, whose
    /// `reason` is this end; a refused handshake with one `client refused` warning instead.
    pub(crate) fn report(
        &self,
        party: Party<'_>,
        listener: &str,
        audit: &AuditSink,
        metrics: &Metrics,
    ) {
        let (connection_id, peer, via, server_name) = match &party {
            Party::Unknown {
                connection_id,
                peer,
                via,
                server_name,
            } => (*connection_id, *peer, *via, *server_name),
            Party::Admitted(identity) => (
                identity.connection_id.as_str(),
                identity.peer,
                identity.via,
                identity.server_name.as_deref(),
            ),
        };
        let attempt = |outcome| AuthenticationAttempt {
            connection_id,
            client_address: peer,
            via,
            server_name,
            listener,
            outcome,
        };
        match (self, &party) {
            (
                SessionEnd::Refused {
                    reason,
                    detail,
                    verdict,
                },
                _,
            ) => {
                // Per listener and reason: one client retrying a bad certificate every 50 ms
                // writes one line per 10 s (the audit keeps every attempt).
                let key = format!("{listener}/{reason}");
                if warnings().admit(Level::Warn, CLIENT_REFUSED, &key) {
                    warn!(%reason, %detail, "{CLIENT_REFUSED}");
                }
                metrics.handshake_refused(*reason);
                audit.authentication(&attempt(AttemptOutcome::Refused {
                    reason: *reason,
                    detail,
                    verdict: verdict.as_deref(),
                }));
                // Never admitted: no connection to close.
                return;
            }
            (SessionEnd::NoUpstream(e), Party::Admitted(identity)) => {
                metrics.upstream_connect_error();
                match e.refused_pool() {
                    Some(pool) => {
                        if warnings().admit(Level::Warn, POOL_REFUSED, pool) {
                            warn!(%pool, error = %e, "{POOL_REFUSED}");
                        }
                        audit.authentication(&attempt(AttemptOutcome::UpstreamRefused {
                            resolved: &identity.resolved,
                            verified_by: &identity.verified_by,
                            pool,
                            detail: &e.to_string(),
                        }));
                    }
                    None => {
                        if warnings().admit(Level::Warn, NO_UPSTREAM, listener) {
                            warn!(error = %e, "{NO_UPSTREAM}");
                        }
                    }
                }
            }
            (
                SessionEnd::Upstream(UpstreamFault::Reauthentication(e)),
                Party::Admitted(identity),
            ) => {
                let pool = identity.primary_pool();
                warn!(
                    %pool,
                    error = %e,
                    "closing: re-authentication to the broker failed; the client will reconnect"
                );
                audit.authentication(&attempt(AttemptOutcome::UpstreamReauthenticationFailed {
                    resolved: &identity.resolved,
                    verified_by: &identity.verified_by,
                    pool: &pool,
                    detail: &e.to_string(),
                }));
            }
            (SessionEnd::Client(ClientFault::Stalled { .. }), _) => metrics.client_stalled(),
            _ => {}
        }
        info!(reason = %self, "connection closed");
    }
}
