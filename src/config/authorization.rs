//! `authorization` (global) and the ACL rules of certificate authorities and pools: proxy-side
//! ACLs, checked into [`AclRule`]s.

use super::Issues;
use super::authorities::CertificateAuthority;
use super::raw::{RawAclRule, RawConfig};
use crate::acl::{AclRule, RuleSpec};

/// `authorization` at the top level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationConfig {
    /// Enforce ACLs for certificate authorities that do not say otherwise.
    pub enabled: bool,
    /// Rules for every connection.
    pub rules: Vec<AclRule>,
}

/// `certificate_authorities[].authorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaAuthorization {
    /// `None`: as the global setting.
    pub enabled: Option<bool>,
    /// Rules for every pool of this certificate authority.
    pub rules: Vec<AclRule>,
}

/// Check a list of ACL rules; every problem names the rule's index and field.
pub(super) fn acl_rules(issues: &mut Issues, at: &str, raw: &[RawAclRule]) -> Vec<AclRule> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let spec = RuleSpec {
            permission: r.permission.as_deref(),
            operations: &r.operations,
            resource_type: &r.resource_type,
            pattern_type: r.pattern_type.as_deref(),
            resource_name: r.resource_name.as_deref(),
        };
        match AclRule::parse(&spec) {
            Ok(rule) => out.push(rule),
            Err(errors) => {
                for e in errors {
                    issues.error(format!("{at}[{i}].{}", e.field), e.reason);
                }
            }
        }
    }
    out
}

/// The global `authorization` section. Warns when ACLs are enforced somewhere but a pool
/// that would be checked has no rule at all: its clients can do nothing.
pub(super) fn check(
    issues: &mut Issues,
    raw: &RawConfig,
    authorities: &[CertificateAuthority],
) -> AuthorizationConfig {
    let config = AuthorizationConfig {
        enabled: raw
            .authorization
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(false),
        rules: raw
            .authorization
            .as_ref()
            .map(|a| acl_rules(issues, "authorization.rules", &a.rules))
            .unwrap_or_default(),
    };
    for (i, ca) in authorities.iter().enumerate() {
        if !ca.authorization.enabled.unwrap_or(config.enabled) {
            continue;
        }
        if !config.rules.is_empty() || !ca.authorization.rules.is_empty() {
            continue;
        }
        for (j, pool) in ca.pools.pools.iter().enumerate() {
            if pool.acls.is_empty() {
                issues.warn(
                    format!("certificate_authorities[{i}].identity_pools[{j}].acls"),
                    format!(
                        "ACLs are enforced for certificate authority `{}` but pool `{}` has                              no rule: its clients will be refused every request",
                        ca.id, pool.id
                    ),
                );
            }
        }
    }
    config
}
