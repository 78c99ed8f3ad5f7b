//! Audit records: one JSON line per authentication attempt, in CloudEvents 1.0 shape, modelled
//! on Confluent's `io.confluent.kafka.server/authentication` events.
//!
//! Records go through a bounded queue to one writer task, so a slow disk never stalls a
//! handshake. If the queue is full the record is counted as dropped and an error is logged —
//! the data path never waits on the audit log.
//!
//! The writer task (`writer.rs`) rotates the file by size (`audit.max_file_bytes`,
//! `audit.max_files`) and re-opens it on SIGHUP ([`AuditReopen`]), for logrotate.
//!
//! A record (pretty-printed here; on disk it is one line):
//! ```json
//! {"specversion":"1.0","id":"6c0f…","source":"kafka-mtls-proxy","type":"io.confluent.kafka.server/authentication",
//!  "time":"2026-11-22T10:00:00.123Z","datacontenttype":"application/json","subject":"conn-7",
//!  "data":{"methodName":"kafka.Authentication","serviceName":"kafka-mtls-proxy",
//!          "authenticationInfo":{"principal":"User:pool-acme-all","principals":["User:pool-payments","User:pool-acme-all"],
//!                                "mechanism":"SSL","identifier":"acme-client","identifierType":"CN"},
//!          "identityPoolIds":["pool-payments","pool-acme-all"],"primaryPoolId":"pool-acme-all",
//!          "certificateAuthorityIds":["ca-acme"],
//!          "connectionId":"conn-7","clientAddress":"127.0.0.1:50432","listener":"bootstrap",
//!          "certificate":{"subject":"CN=acme-client,OU=payments,O=Acme Inc,C=US","issuer":"…","serial":"…","sha256":"…"},
//!          "result":{"status":"SUCCESS"}}}
//! ```
//! `principal` is the primary pool's (highest `priority`, then smallest id: the identity the
//! broker sees upstream); `principals` lists every matched pool's, in match order.
//! A refusal has `"result":{"status":"UNAUTHENTICATED","reason":"no_pool_matched","message":"…"}`
//! and no principal. When the broker refuses the upstream identity of the connection's primary
//! pool, the reason is `upstream_identity_refused` (at connect) or
//! `upstream_reauthentication_failed` (KIP-368 re-authentication on a live connection, which is
//! then closed), with that pool as the principal.

mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{AuditConfig, AuditDestination};
use crate::identity::CertIdentity;
use crate::metrics::Metrics;
use crate::pools::Resolved;
use crate::tls::{RefusalReason, Verdict};

pub use writer::AuditReopen;
use writer::{AuditFile, Entry, Output};

pub const EVENT_TYPE: &str = "io.confluent.kafka.server/authentication";
/// The type of authorization records (proxy ACL denials).
pub const AUTHORIZATION_EVENT_TYPE: &str = "io.confluent.kafka.server/authorization";

/// Where audit records are sent. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: Option<mpsc::Sender<Entry>>,
    source: Arc<str>,
    dropped: Arc<AtomicU64>,
    metrics: Option<Arc<Metrics>>,
    reopen: AuditReopen,
}

/// What happened on one authentication attempt.
pub struct AuthenticationAttempt<'a> {
    pub connection_id: &'a str,
    pub client_address: SocketAddr,
    /// The load balancer that relayed the client (PROXY protocol): `viaAddress`, only when set.
    pub via: Option<SocketAddr>,
    /// The TLS server name the client asked for (SNI routing): `serverName`, only when set.
    pub server_name: Option<&'a str>,
    pub listener: &'a str,
    pub outcome: AttemptOutcome<'a>,
}

pub enum AttemptOutcome<'a> {
    Admitted(&'a Verdict),
    /// The certificate was admitted, but the broker refused the upstream identity (SASL) of
    /// the connection's primary pool, so the client was refused after all.
    UpstreamRefused {
        resolved: &'a crate::pools::Resolved,
        verified_by: &'a [String],
        /// The primary pool whose broker credentials were refused.
        pool: &'a str,
        detail: &'a str,
    },
    /// The broker refused (or did not answer in time) the proxy's KIP-368 re-authentication
    /// as the connection's primary pool on a live connection, so the connection was closed.
    UpstreamReauthenticationFailed {
        resolved: &'a crate::pools::Resolved,
        verified_by: &'a [String],
        pool: &'a str,
        detail: &'a str,
    },
    Refused {
        reason: RefusalReason,
        detail: &'a str,
        verdict: Option<&'a Verdict>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
}

impl AuditSink {
    /// A sink that discards everything (`audit.path: off`, and tests that do not look).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            source: Arc::from("kafka-mtls-proxy"),
            dropped: Arc::new(AtomicU64::new(0)),
            metrics: None,
            reopen: AuditReopen::default(),
        }
    }

    /// Open the destination and start the writer task. The task ends, after writing everything
    /// queued, once every clone of the sink is dropped.
    pub fn start(
        config: &AuditConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Option<JoinHandle<()>>), AuditError> {
        let output = match &config.destination {
            AuditDestination::Off => {
                let mut sink = Self::disabled();
                sink.source = Arc::from(config.source.as_str());
                return Ok((sink, None));
            }
            AuditDestination::Stdout => Output::Stdout(std::io::stdout()),
            AuditDestination::File(path) => {
                Output::File(AuditFile::open(path, config.rotation).map_err(|source| {
                    AuditError::Open {
                        path: path.display().to_string(),
                        source,
                    }
                })?)
            }
        };
        let (tx, rx) = mpsc::channel::<Entry>(config.queue_capacity);
        let pending = Arc::new(AtomicBool::new(false));
        let reopen = AuditReopen::new(&tx, pending.clone());
        // Blocking file I/O runs on the blocking pool, never on a runtime worker.
        let handle = tokio::task::spawn_blocking(move || writer::run(output, rx, &pending));
        Ok((
            Self {
                tx: Some(tx),
                source: Arc::from(config.source.as_str()),
                dropped: Arc::new(AtomicU64::new(0)),
                metrics: Some(metrics),
                reopen,
            },
            Some(handle),
        ))
    }

    /// What re-opens the audit file (on SIGHUP); it does not keep the writer running.
    pub fn reopener(&self) -> AuditReopen {
        self.reopen.clone()
    }

    /// Records that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queue one authentication record; never waits.
    pub fn authentication(&self, attempt: &AuthenticationAttempt<'_>) {
        if self.tx.is_some() {
            self.queue(authentication_record(&self.source, attempt));
        }
    }
}

/// A request (or part of one) that proxy ACLs refused.
pub struct AuthorizationDenial<'a> {
    pub connection_id: &'a str,
    pub client_address: SocketAddr,
    pub listener: &'a str,
    /// `User:<primary pool id>`.
    pub principal: Option<String>,
    pub principals: &'a [String],
    pub pool_ids: &'a [String],
    pub denial: &'a crate::acl::Denial,
}

impl AuditSink {
    /// Queue one authorization (denial) record; never waits.
    pub fn authorization(&self, d: &AuthorizationDenial<'_>) {
        self.queue(authorization_record(&self.source, d));
    }

    fn queue(&self, record: Value) {
        let Some(tx) = &self.tx else { return };
        let mut line = record.to_string();
        line.push('\n');
        if tx.try_send(Entry::Line(line)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(m) = &self.metrics {
                m.audit_dropped(1);
            }
            tracing::error!(
                dropped_total = n,
                "audit queue full or closed: an audit record was dropped"
            );
        }
    }
}

/// Build the CloudEvents record for one denial: `methodName` `kafka.Authorization`, the Kafka
/// API, the resource and operation, and the connection's pools.
pub fn authorization_record(source: &str, d: &AuthorizationDenial<'_>) -> Value {
    let data = json!({
        "methodName": "kafka.Authorization",
        "serviceName": source,
        "apiName": d.denial.api_key.label(),
        "connectionId": d.connection_id,
        "clientAddress": d.client_address.to_string(),
        "listener": d.listener,
        "authenticationInfo": {
            "principal": d.principal,
            "principals": d.principals,
        },
        "identityPoolIds": d.pool_ids,
        "authorizationInfo": {
            "granted": false,
            "operation": d.denial.operation.as_str(),
            "resourceType": d.denial.resource_type.as_str(),
            "resourceName": d.denial.resource,
            "source": "proxy_acl",
        },
        "result": {"status": "DENIED"},
    });
    cloud_event(source, AUTHORIZATION_EVENT_TYPE, d.connection_id, data)
}

/// The CloudEvents 1.0 envelope shared by every record, stamped now.
fn cloud_event(source: &str, event_type: &str, subject: &str, data: Value) -> Value {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": source,
        "type": event_type,
        "time": time,
        "datacontenttype": "application/json",
        "subject": subject,
        "data": data,
    })
}

fn certificate_json(identity: &CertIdentity) -> Value {
    json!({
        "subject": identity.subject.rfc4514,
        "issuer": identity.issuer.rfc4514,
        "serial": identity.serial,
        "sha1": identity.sha1,
        "sha256": identity.sha256,
        "notBefore": identity.not_before,
        "notAfter": identity.not_after,
    })
}

/// Build the CloudEvents record for one attempt.
pub fn authentication_record(source: &str, a: &AuthenticationAttempt<'_>) -> Value {
    let mut data = json!({
        "methodName": "kafka.Authentication",
        "serviceName": source,
        "connectionId": a.connection_id,
        "clientAddress": a.client_address.to_string(),
        "listener": a.listener,
    });
    if let Some(via) = a.via {
        data["viaAddress"] = Value::String(via.to_string());
    }
    if let Some(name) = a.server_name {
        data["serverName"] = Value::String(name.to_string());
    }
    match &a.outcome {
        AttemptOutcome::Admitted(Verdict::Admitted {
            resolved,
            verified_by,
        }) => {
            let res = &resolved.evaluation.resolution;
            let primary_pool = res.primary().map(|p| p.pool_id.as_str());
            add_resolved(
                &mut data,
                resolved,
                verified_by,
                json!(res.primary_principal()),
                json!(primary_pool),
            );
            data["result"] = json!({"status": "SUCCESS"});
        }
        AttemptOutcome::UpstreamRefused {
            resolved,
            verified_by,
            pool,
            detail,
        }
        | AttemptOutcome::UpstreamReauthenticationFailed {
            resolved,
            verified_by,
            pool,
            detail,
        } => {
            let reason = match a.outcome {
                AttemptOutcome::UpstreamReauthenticationFailed { .. } => {
                    "upstream_reauthentication_failed"
                }
                _ => "upstream_identity_refused",
            };
            // The broker refused the primary pool, so that pool is the principal of record.
            add_resolved(
                &mut data,
                resolved,
                verified_by,
                json!(format!("User:{pool}")),
                json!(pool),
            );
            data["result"] = json!({
                "status": "UNAUTHENTICATED",
                "reason": reason,
                "message": detail,
            });
        }
        AttemptOutcome::Admitted(Verdict::Refused { .. }) => {
            // Not reachable by construction; keep the record honest if it ever is.
            data["result"] = json!({"status": "UNAUTHENTICATED", "reason": "internal"});
        }
        AttemptOutcome::Refused {
            reason,
            detail,
            verdict,
        } => add_refused(&mut data, *reason, detail, *verdict),
    }
    cloud_event(source, EVENT_TYPE, a.connection_id, data)
}

/// The fields of an attempt whose certificate resolved to pools: the principal of record and
/// every matched one, the pools, the CAs that verified the chain, and the certificate.
fn add_resolved(
    data: &mut Value,
    resolved: &Resolved,
    verified_by: &[String],
    principal: Value,
    primary_pool_id: Value,
) {
    let res = &resolved.evaluation.resolution;
    data["authenticationInfo"] = json!({
        "principal": principal,
        "principals": res.principals,
        "mechanism": "SSL",
        "identifier": res.identifier.as_ref().map(|i| i.value.as_str()),
        "identifierType": res.identifier.as_ref().map(|i| i.kind.to_string()),
    });
    data["identityPoolIds"] = json!(res.pool_ids());
    data["primaryPoolId"] = primary_pool_id;
    data["certificateAuthorityIds"] = json!(verified_by);
    data["certificate"] = certificate_json(&resolved.identity);
}

/// The fields of a refused handshake: no principal or pools, the certificate if it parsed,
/// and why.
fn add_refused(data: &mut Value, reason: RefusalReason, detail: &str, verdict: Option<&Verdict>) {
    data["authenticationInfo"] = json!({ "mechanism": "SSL" });
    data["identityPoolIds"] = json!([]);
    if let Some(Verdict::Refused {
        identity: Some(identity),
        ..
    }) = verdict
    {
        data["certificate"] = certificate_json(identity);
    }
    data["result"] = json!({
        "status": "UNAUTHENTICATED",
        "reason": reason.as_str(),
        "message": detail,
    });
}
