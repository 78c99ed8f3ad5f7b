//! What one connection may do: the union of its pools' allows, minus any matching deny.
//!
//! Built once per connection (and again after a reload changes the configuration) from the
//! global rules, the rules of every certificate authority whose pools matched, and the rules of
//! every matched pool. A check walks the few rules of one resource type; no allocation.

use serde::Serialize;

use super::rules::{AclRule, Operation, Pattern, Permission, ResourceType};
use crate::kafka::ApiKey;

/// A connection resolved to a certificate authority or pool that the configuration no longer
/// has (renamed or removed by a reload): its permissions cannot be derived, so the connection
/// must reconnect and be resolved again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaleResolution {
    #[error("its certificate authority `{0}` is no longer configured")]
    CertificateAuthority(String),
    #[error("its identity pool `{0}` is no longer configured")]
    Pool(String),
}

/// Rules of one resource type, split by permission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct TypeRules {
    allow: Vec<(super::rules::Operations, Pattern)>,
    deny: Vec<(super::rules::Operations, Pattern)>,
}

/// One connection's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Permissions {
    /// Indexed by [`ResourceType::index`].
    by_type: [TypeRules; 4],
    /// The pools these permissions were built for (audit records name them).
    pub pool_ids: Vec<String>,
    /// Bit `k`: requests of api key `k` need no check ([`super::needs`]); fixed with the rules.
    #[serde(skip)]
    unchecked_apis: u128,
}

impl Permissions {
    /// Permissions from a list of rules.
    pub fn from_rules<'a>(
        rules: impl IntoIterator<Item = &'a AclRule>,
        pool_ids: Vec<String>,
    ) -> Self {
        let mut p = Permissions {
            pool_ids,
            ..Permissions::default()
        };
        for rule in rules {
            let entry = (rule.operations, rule.pattern.clone());
            let t = &mut p.by_type[rule.resource_type.index()];
            let list = match rule.permission {
                Permission::Allow => &mut t.allow,
                Permission::Deny => &mut t.deny,
            };
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
        p.unchecked_apis = (0..128u8)
            .filter(|&key| super::needs::unconditionally_allowed(&p, ApiKey(i16::from(key))))
            .fold(0, |bits, key| bits | 1u128 << key);
        p
    }

    /// Whether requests of `api_key` need no check: the connection may do what they need on
    /// every resource ([`super::needs`]). Answered from a bit set made with the rules.
    pub fn needs_no_check(&self, api_key: ApiKey) -> bool {
        u8::try_from(api_key.0)
            .ok()
            .and_then(|key| 1u128.checked_shl(u32::from(key)))
            .is_some_and(|bit| self.unchecked_apis & bit != 0)
    }

    /// May the connection perform `op` on the resource `name` of type `resource`? Any matching
    /// deny wins; otherwise some allow must grant it.
    pub fn allows(&self, op: Operation, resource: ResourceType, name: &str) -> bool {
        let rules = &self.by_type[resource.index()];
        if rules
            .deny
            .iter()
            .any(|(ops, pattern)| ops.deny_covers(op) && pattern.matches(name))
        {
            return false;
        }
        rules
            .allow
            .iter()
            .any(|(ops, pattern)| ops.allow_grants(op) && pattern.matches(name))
    }

    /// May the connection perform `op` on every possible resource of this type? (A topic that a
    /// request names only by id can be authorized only this way.)
    pub fn allows_every(&self, op: Operation, resource: ResourceType) -> bool {
        let rules = &self.by_type[resource.index()];
        rules.deny.iter().all(|(ops, _)| !ops.deny_covers(op))
            && rules
                .allow
                .iter()
                .any(|(ops, pattern)| ops.allow_grants(op) && *pattern == Pattern::Any)
    }

    /// May the connection perform `op` on at least one resource of this type? Kafka's
    /// `authorizeByResourceType`: some allow whose names are not wholly denied.
    pub fn allows_some(&self, op: Operation, resource: ResourceType) -> bool {
        let rules = &self.by_type[resource.index()];
        rules.allow.iter().any(|(ops, allowed)| {
            ops.allow_grants(op)
                && !rules
                    .deny
                    .iter()
                    .any(|(deny_ops, denied)| deny_ops.deny_covers(op) && denied.covers(allowed))
        })
    }

    /// Cluster-level check.
    pub fn allows_cluster(&self, op: Operation) -> bool {
        self.allows(
            op,
            ResourceType::Cluster,
            super::rules::CLUSTER_RESOURCE_NAME,
        )
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    fn payments_and_hr() -> Vec<AclRule> {
        vec![
            AclRule::new(
                Permission::Allow,
                &[Operation::Write],
                ResourceType::Topic,
                Pattern::Prefixed("payments-".into()),
            ),
            AclRule::new(
                Permission::Allow,
                &[Operation::Read],
                ResourceType::Topic,
                Pattern::Literal("hr".into()),
            ),
        ]
    }

    #[test]
    fn the_union_of_allows_grants_both_pools_rights() {
        let p = Permissions::from_rules(&payments_and_hr(), vec![]);
        assert!(p.allows(Operation::Write, ResourceType::Topic, "payments-eu"));
        assert!(p.allows(Operation::Read, ResourceType::Topic, "hr"));
        assert!(!p.allows(Operation::Write, ResourceType::Topic, "hr"));
        assert!(!p.allows(Operation::Read, ResourceType::Topic, "payments-eu"));
        // Describe is implied by read and write.
        assert!(p.allows(Operation::Describe, ResourceType::Topic, "hr"));
        assert!(p.allows(Operation::Describe, ResourceType::Topic, "payments-us"));
        assert!(!p.allows(Operation::Describe, ResourceType::Topic, "other"));
    }

    #[test]
    fn a_matching_deny_wins_over_any_allow() {
        let mut rules = payments_and_hr();
        rules.push(AclRule::new(
            Permission::Deny,
            &[Operation::Write],
            ResourceType::Topic,
            Pattern::Literal("payments-secret".into()),
        ));
        let p = Permissions::from_rules(&rules, vec![]);
        assert!(!p.allows(Operation::Write, ResourceType::Topic, "payments-secret"));
        assert!(p.allows(Operation::Write, ResourceType::Topic, "payments-eu"));
        // A deny of write does not deny describe.
        assert!(p.allows(Operation::Describe, ResourceType::Topic, "payments-secret"));
    }

    #[test]
    fn nothing_is_allowed_without_rules() {
        let p = Permissions::default();
        assert!(!p.allows(Operation::Describe, ResourceType::Topic, "x"));
        assert!(!p.allows_cluster(Operation::Create));
        assert!(!p.allows_some(Operation::Write, ResourceType::Topic));
    }

    #[test]
    fn allows_some_ignores_allows_wholly_denied() {
        let mut rules = payments_and_hr();
        rules.push(AclRule::new(
            Permission::Deny,
            &[Operation::All],
            ResourceType::Topic,
            Pattern::Prefixed("pay".into()),
        ));
        let p = Permissions::from_rules(&rules, vec![]);
        assert!(!p.allows_some(Operation::Write, ResourceType::Topic));
        assert!(p.allows_some(Operation::Read, ResourceType::Topic));
    }

    #[test]
    fn allows_every_needs_a_wildcard_allow_and_no_deny() {
        let mut rules = vec![AclRule::new(
            Permission::Allow,
            &[Operation::Describe],
            ResourceType::Topic,
            Pattern::Any,
        )];
        assert!(
            Permissions::from_rules(&rules, vec![])
                .allows_every(Operation::Describe, ResourceType::Topic)
        );
        rules.push(AclRule::new(
            Permission::Deny,
            &[Operation::Describe],
            ResourceType::Topic,
            Pattern::Literal("hr".into()),
        ));
        assert!(
            !Permissions::from_rules(&rules, vec![])
                .allows_every(Operation::Describe, ResourceType::Topic)
        );
    }
}
