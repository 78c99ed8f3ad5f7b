//! Proxy ACLs as a request filter: the permissions of the connection's pools under the current
//! configuration (derived again when a reload installs a new one), applied to each request.
//!
//! A request is forwarded as it came, forwarded narrowed (its answer patched so the client sees
//! what a broker would have said), answered by the proxy, or refused. Denials are counted, and
//! a bounded number per request logged and audited.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use super::{Flow, Request, RequestFilter};
use crate::acl::{Action, Denial, Operation, Permissions, ResourceType, StaleResolution};
use crate::audit::{AuditSink, AuthorizationDenial};
use crate::generation::Generation;
use crate::kafka::header::RequestHeader;
use crate::metrics::Metrics;
use crate::session::ConnectionIdentity;
use crate::session::end::{ClientFault, SessionEnd};

/// How many denials of one request are logged and audited one by one (all are counted).
const MAX_REPORTED_DENIALS: usize = 32;

/// See the module documentation.
pub(crate) struct AclFilter<'a> {
    identity: &'a ConnectionIdentity,
    listener: &'a str,
    audit: &'a AuditSink,
    metrics: &'a Metrics,
    /// The current configuration; a change means a reload.
    generations: watch::Receiver<Arc<Generation>>,
    /// `Ok(None)`: no certificate authority of the connection's pools enforces ACLs. `Err`: the
    /// configuration no longer has one of the connection's CAs or pools; the connection is
    /// closed at its next request.
    permissions: Result<Option<Arc<Permissions>>, StaleResolution>,
}

impl<'a> AclFilter<'a> {
    pub fn new(
        identity: &'a ConnectionIdentity,
        listener: &'a str,
        audit: &'a AuditSink,
        metrics: &'a Metrics,
        mut generations: watch::Receiver<Arc<Generation>>,
    ) -> Self {
        let permissions = permissions(&generations.borrow_and_update(), identity);
        AclFilter {
            identity,
            listener,
            audit,
            metrics,
            generations,
            permissions,
        }
    }

    /// The `kafka.Authorization` audit record of one denial.
    fn audit(&self, permissions: &Permissions, denial: &Denial) {
        let resolution = &self.identity.resolved.evaluation.resolution;
        self.audit.authorization(&AuthorizationDenial {
            connection_id: &self.identity.connection_id,
            client_address: self.identity.peer,
            listener: self.listener,
            principal: resolution.primary_principal(),
            principals: self.identity.principals(),
            pool_ids: &permissions.pool_ids,
            denial,
        });
    }

    fn report(&self, permissions: &Permissions, header: &RequestHeader, denials: &[Denial]) {
        for (i, denial) in denials.iter().enumerate() {
            self.metrics.authorization_denied(
                denial.api_key,
                denial.resource_type.as_str(),
                denial.operation.as_str(),
            );
            // One request can name many thousands of resources: log and audit a bounded
            // number of them. Names come from the client: `?` quotes and escapes them.
            if i < MAX_REPORTED_DENIALS {
                info!(
                    api = %denial.api_key.label(),
                    resource_type = %denial.resource_type,
                    resource = ?denial.resource,
                    operation = %denial.operation,
                    "denied by proxy ACLs"
                );
                self.audit(permissions, denial);
            }
        }
        if let Some(more) = denials.len().checked_sub(MAX_REPORTED_DENIALS)
            && more > 0
        {
            info!(
                api = %header.api_key.label(),
                more, "denied by proxy ACLs: further resources of this request not reported"
            );
        }
    }
}

/// The connection's permissions under `generation`'s configuration.
fn permissions(
    generation: &Generation,
    identity: &ConnectionIdentity,
) -> Result<Option<Arc<Permissions>>, StaleResolution> {
    generation
        .config
        .permissions_for(&identity.resolved.evaluation.resolution)
        .map(|p| p.map(Arc::new))
}

impl RequestFilter for AclFilter<'_> {
    /// Every request while ACLs apply, and the first after a reload (which may switch them on).
    /// With ACLs off this is one atomic load and a branch.
    fn wants(&self, _header: &RequestHeader) -> bool {
        !matches!(self.permissions, Ok(None)) || self.generations.has_changed().unwrap_or(false)
    }

    fn on_request(&mut self, request: &mut Request<'_>) -> Result<Flow, SessionEnd> {
        if self.generations.has_changed().unwrap_or(false) {
            let current = self.generations.borrow_and_update().clone();
            self.permissions = permissions(&current, self.identity);
        }
        let permissions = match &self.permissions {
            Ok(Some(permissions)) => permissions.clone(),
            Ok(None) => return Ok(Flow::Continue),
            Err(stale) => return Err(SessionEnd::NoLongerAdmitted(stale.to_string())),
        };
        let header = request.header;
        let offered = crate::acl::apis::range_with_acls(header.api_key)
            .is_some_and(|(min, max)| (min..=max).contains(&header.api_version));
        if offered && permissions.needs_no_check(header.api_key) {
            return Ok(Flow::Continue);
        }
        let checked = crate::acl::check_request(&permissions, header, &request.frame)
            .map_err(ClientFault::Protocol)?;
        self.report(&permissions, header, &checked.denials);
        match checked.action {
            Action::Forward { frame, patch } => {
                if let Some(narrowed) = frame {
                    request.frame = narrowed;
                }
                request.patch = patch;
                Ok(Flow::Continue)
            }
            Action::Answer(Some(answer)) => Ok(Flow::Answer(answer)),
            Action::Answer(None) => Ok(Flow::Swallow),
            Action::Refuse(reason) => {
                let key = header.api_key.known();
                // The resource names the request itself: which API, at which version.
                let resource = match key {
                    Some(key) => format!("{key:?} v{}", header.api_version),
                    None => format!("api key {} v{}", header.api_key, header.api_version),
                };
                warn!(request = %resource, %reason, "closing: request refused by proxy ACLs");
                let denial = Denial {
                    api_key: header.api_key,
                    resource_type: ResourceType::Cluster,
                    resource,
                    operation: Operation::All,
                };
                self.audit(&permissions, &denial);
                Ok(Flow::Refuse(reason))
            }
        }
    }
}
