//! What each API needs, for the fast path: a connection allowed every one of an API's
//! (operation, resource type) pairs on **every** resource name, with no deny in the way, needs
//! no check for that API — its requests are forwarded without decoding their bodies.
//!
//! A pool with `all` on `*` (an administrator) then costs nothing per request; a pool limited to
//! some topics pays for the decode only on the APIs that name topics.

use kafka_protocol::messages::ApiKey;

use super::permissions::Permissions;
use super::rules::{Operation as Op, ResourceType as R};

/// The (operation, resource type) pairs an API's check can ask for; `None` for APIs that are
/// always checked (or refused).
pub fn needs(api_key: i16) -> Option<&'static [(Op, R)]> {
    let key = ApiKey::try_from(api_key).ok()?;
    Some(match key {
        ApiKey::Produce => &[(Op::Write, R::Topic), (Op::Write, R::TransactionalId)],
        // Fetch and OffsetForLeaderEpoch are always decoded: a replica's request (replica id
        // >= 0) is refused whatever the topic permissions say.
        ApiKey::ListOffsets => &[(Op::Describe, R::Topic)],
        // Creation too: otherwise auto-creation must be switched off in the request.
        ApiKey::Metadata => &[(Op::Describe, R::Topic), (Op::Create, R::Topic)],
        ApiKey::OffsetCommit => &[(Op::Read, R::Group), (Op::Read, R::Topic)],
        ApiKey::OffsetFetch => &[(Op::Describe, R::Group), (Op::Describe, R::Topic)],
        ApiKey::FindCoordinator => &[(Op::Describe, R::Group), (Op::Describe, R::TransactionalId)],
        ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup => {
            &[(Op::Read, R::Group)]
        }
        ApiKey::DescribeGroups => &[(Op::Describe, R::Group)],
        ApiKey::ListGroups => &[(Op::Describe, R::Cluster), (Op::Describe, R::Group)],
        ApiKey::DeleteGroups => &[(Op::Delete, R::Group)],
        ApiKey::OffsetDelete => &[(Op::Delete, R::Group), (Op::Read, R::Topic)],
        ApiKey::CreateTopics => &[(Op::Create, R::Topic)],
        ApiKey::DeleteTopics | ApiKey::DeleteRecords => &[(Op::Delete, R::Topic)],
        ApiKey::CreatePartitions => &[(Op::Alter, R::Topic)],
        ApiKey::DescribeConfigs => &[
            (Op::DescribeConfigs, R::Topic),
            (Op::DescribeConfigs, R::Cluster),
        ],
        ApiKey::AlterConfigs | ApiKey::IncrementalAlterConfigs => {
            &[(Op::AlterConfigs, R::Topic), (Op::AlterConfigs, R::Cluster)]
        }
        // Without a transactional id, InitProducerId needs idempotent_write on the cluster or
        // write on some topic: write on every topic covers the latter.
        ApiKey::InitProducerId => &[(Op::Write, R::TransactionalId), (Op::Write, R::Topic)],
        ApiKey::EndTxn => &[(Op::Write, R::TransactionalId)],
        ApiKey::AddPartitionsToTxn => &[(Op::Write, R::TransactionalId), (Op::Write, R::Topic)],
        ApiKey::AddOffsetsToTxn => &[(Op::Write, R::TransactionalId), (Op::Read, R::Group)],
        ApiKey::TxnOffsetCommit => &[
            (Op::Write, R::TransactionalId),
            (Op::Read, R::Group),
            (Op::Read, R::Topic),
        ],
        _ => return None,
    })
}

/// Whether requests of `api_key` need no check for a connection with `permissions` (at a
/// version offered under ACLs: the caller checks that, see [`super::apis::range_with_acls`]).
pub fn unconditionally_allowed(permissions: &Permissions, api_key: i16) -> bool {
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
        assert!(unconditionally_allowed(&admin, ApiKey::Produce as i16));
        assert!(unconditionally_allowed(&admin, ApiKey::ListOffsets as i16));
        // Replica fetches must still be refused: Fetch is always checked.
        assert!(!unconditionally_allowed(&admin, ApiKey::Fetch as i16));
        let mut rules = all.clone();
        rules.push(rule(
            Permission::Deny,
            Op::Write,
            R::Topic,
            Pattern::Literal("hr".into()),
        ));
        let denied = Permissions::from_rules(&rules, vec![]);
        assert!(!unconditionally_allowed(&denied, ApiKey::Produce as i16));
        assert!(unconditionally_allowed(&denied, ApiKey::ListOffsets as i16));
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
        assert!(!unconditionally_allowed(&p, ApiKey::Produce as i16));
        assert!(!unconditionally_allowed(&p, ApiKey::ApiVersions as i16));
        assert!(!unconditionally_allowed(&p, ApiKey::DescribeAcls as i16));
        assert!(!unconditionally_allowed(&p, 999));
    }
}
