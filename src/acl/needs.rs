//! What each API needs, for the fast path: a connection allowed every one of an API's
//! (operation, resource type) pairs on **every** resource name, with no deny in the way, needs
//! no check for that API — its requests are forwarded without decoding their bodies.
//!
//! A pool with `all` on `*` (an administrator) then costs nothing per request; a pool limited to
//! some topics pays for the decode only on the APIs that name topics.

use crate::kafka::ApiKey;

use super::permissions::Permissions;
use super::rules::{Operation as Op, ResourceType as R};

/// The (operation, resource type) pairs an API's check can ask for; `None` for APIs that are
/// always checked (or refused).
pub fn needs(api_key: ApiKey) -> Option<&'static [(Op, R)]> {
    Some(match api_key {
        ApiKey::PRODUCE => &[(Op::Write, R::Topic), (Op::Write, R::TransactionalId)],
        // Fetch and OffsetForLeaderEpoch are always decoded: a replica's request (replica id
        // >= 0) is refused whatever the topic permissions say.
        ApiKey::LIST_OFFSETS => &[(Op::Describe, R::Topic)],
        // Creation too: otherwise auto-creation must be switched off in the request.
        ApiKey::METADATA => &[(Op::Describe, R::Topic), (Op::Create, R::Topic)],
        ApiKey::OFFSET_COMMIT => &[(Op::Read, R::Group), (Op::Read, R::Topic)],
        ApiKey::OFFSET_FETCH => &[(Op::Describe, R::Group), (Op::Describe, R::Topic)],
        ApiKey::FIND_COORDINATOR => &[(Op::Describe, R::Group), (Op::Describe, R::TransactionalId)],
        ApiKey::JOIN_GROUP | ApiKey::SYNC_GROUP | ApiKey::HEARTBEAT | ApiKey::LEAVE_GROUP => {
            &[(Op::Read, R::Group)]
        }
        ApiKey::DESCRIBE_GROUPS => &[(Op::Describe, R::Group)],
        ApiKey::LIST_GROUPS => &[(Op::Describe, R::Cluster), (Op::Describe, R::Group)],
        ApiKey::DELETE_GROUPS => &[(Op::Delete, R::Group)],
        ApiKey::OFFSET_DELETE => &[(Op::Delete, R::Group), (Op::Read, R::Topic)],
        ApiKey::CREATE_TOPICS => &[(Op::Create, R::Topic)],
        ApiKey::DELETE_TOPICS | ApiKey::DELETE_RECORDS => &[(Op::Delete, R::Topic)],
        ApiKey::CREATE_PARTITIONS => &[(Op::Alter, R::Topic)],
        ApiKey::DESCRIBE_CONFIGS => &[
            (Op::DescribeConfigs, R::Topic),
            (Op::DescribeConfigs, R::Cluster),
        ],
        ApiKey::ALTER_CONFIGS | ApiKey::INCREMENTAL_ALTER_CONFIGS => {
            &[(Op::AlterConfigs, R::Topic), (Op::AlterConfigs, R::Cluster)]
        }
        // Without a transactional id, InitProducerId needs idempotent_write on the cluster or
        // write on some topic: write on every topic covers the latter.
        ApiKey::INIT_PRODUCER_ID => &[(Op::Write, R::TransactionalId), (Op::Write, R::Topic)],
        ApiKey::END_TXN => &[(Op::Write, R::TransactionalId)],
        ApiKey::ADD_PARTITIONS_TO_TXN => &[(Op::Write, R::TransactionalId), (Op::Write, R::Topic)],
        ApiKey::ADD_OFFSETS_TO_TXN => &[(Op::Write, R::TransactionalId), (Op::Read, R::Group)],
        ApiKey::TXN_OFFSET_COMMIT => &[
            (Op::Write, R::TransactionalId),
            (Op::Read, R::Group),
            (Op::Read, R::Topic),
        ],
        _ => return None,
    })
}

/// Whether requests of `api_key` need no check for a connection with `permissions` (at a
/// version offered under ACLs: the caller checks that, see [`super::apis::range_with_acls`]).
pub fn unconditionally_allowed(permissions: &Permissions, api_key: ApiKey) -> bool {
    needs(api_key).is_some_and(|pairs| {
        pairs
            .iter()
            .all(|&(op, resource)| permissions.allows_every(op, resource))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::rules::{AclRule, Pattern, Permission};

    fn rule(permission: Permission, op: Op, resource: R, pattern: Pattern) -> AclRule {
        AclRule::new(permission, &[op], resource, pattern)
    }

    #[test]
    fn an_administrator_needs_no_check_but_a_deny_brings_it_back() {
        let all: Vec<AclRule> = R::ALL
            .iter()
            .map(|&r| rule(Permission::Allow, Op::All, r, Pattern::Any))
            .collect();
        let admin = Permissions::from_rules(&all, vec![]);
        assert!(unconditionally_allowed(&admin, ApiKey::PRODUCE));
        assert!(unconditionally_allowed(&admin, ApiKey::LIST_OFFSETS));
        // Replica fetches must still be refused: Fetch is always checked.
        assert!(!unconditionally_allowed(&admin, ApiKey::FETCH));
        let mut rules = all.clone();
        rules.push(rule(
            Permission::Deny,
            Op::Write,
            R::Topic,
            Pattern::Literal("hr".into()),
        ));
        let denied = Permissions::from_rules(&rules, vec![]);
        assert!(!unconditionally_allowed(&denied, ApiKey::PRODUCE));
        assert!(unconditionally_allowed(&denied, ApiKey::LIST_OFFSETS));
    }

    #[test]
    fn a_prefix_allow_is_not_enough_and_unknown_apis_are_always_checked() {
        let p = Permissions::from_rules(
            &[rule(
                Permission::Allow,
                Op::Write,
                R::Topic,
                Pattern::Prefixed("payments-".into()),
            )],
            vec![],
        );
        assert!(!unconditionally_allowed(&p, ApiKey::PRODUCE));
        assert!(!unconditionally_allowed(&p, ApiKey::API_VERSIONS));
        assert!(!unconditionally_allowed(&p, ApiKey::DESCRIBE_ACLS));
        assert!(!unconditionally_allowed(&p, ApiKey(999)));
    }
}
