//! One ACL rule, as Kafka spells it: permission, operations, resource type, pattern.
//!
//! The principal is implied: a rule on a pool applies to the pool's connections, a rule on a
//! certificate authority to every pool of it, a global rule to every connection.
//!
//! ```yaml
//! acls:
//!   - permission: allow              # or deny; default allow
//!     operations: [write, describe]  # or [all]
//!     resource_type: topic           # topic, group, cluster, transactional_id
//!     pattern_type: prefixed         # literal (default) or prefixed
//!     resource_name: payments-       # "*" (literal) is every resource of the type
//! ```

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Kafka's resource types that the proxy authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
            ResourceType::TransactionalId => "transactional_id",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "topic" => ResourceType::Topic,
            "group" => ResourceType::Group,
            "cluster" => ResourceType::Cluster,
            "transactional_id" => ResourceType::TransactionalId,
            other => {
                return Err(format!(
                    "unknown resource type `{other}` (expected topic, group, cluster or \
                     transactional_id)"
                ));
            }
        })
    }
}

/// Kafka's ACL operations (the ones a client request can need).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::All => "all",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Alter => "alter",
            Operation::Describe => "describe",
            Operation::DescribeConfigs => "describe_configs",
            Operation::AlterConfigs => "alter_configs",
            Operation::IdempotentWrite => "idempotent_write",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "all" => Operation::All,
            "read" => Operation::Read,
            "write" => Operation::Write,
            "create" => Operation::Create,
            "delete" => Operation::Delete,
            "alter" => Operation::Alter,
            "describe" => Operation::Describe,
            "describe_configs" => Operation::DescribeConfigs,
            "alter_configs" => Operation::AlterConfigs,
            "idempotent_write" => Operation::IdempotentWrite,
            other => {
                return Err(format!(
                    "unknown operation `{other}` (expected read, write, create, delete, alter, \
                     describe, describe_configs, alter_configs, idempotent_write or all)"
                ));
            }
        })
    }
}

/// A set of operations, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Operations(u16);

impl Operations {
    pub fn of(ops: &[Operation]) -> Self {
        Operations(ops.iter().fold(0, |bits, op| bits | op.bit()))
    }

    pub fn contains(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }

    /// Does an ALLOW rule with these operations grant `op`? Kafka's implications: `all` grants
    /// everything; read, write, delete and alter each grant describe; alter_configs grants
    /// describe_configs.
    pub fn allow_grants(self, op: Operation) -> bool {
        if self.contains(Operation::All) || self.contains(op) {
            return true;
        }
        match op {
            Operation::Describe => [
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ]
            .iter()
            .any(|implied_by| self.contains(*implied_by)),
            Operation::DescribeConfigs => self.contains(Operation::AlterConfigs),
            _ => false,
        }
    }

    /// Does a DENY rule with these operations deny `op`? Only the operation itself or `all`
    /// (a deny of read does not deny describe — Kafka's rule).
    pub fn deny_covers(self, op: Operation) -> bool {
        self.contains(Operation::All) || self.contains(op)
    }

    pub fn iter(self) -> impl Iterator<Item = Operation> {
        [
            Operation::All,
            Operation::Read,
            Operation::Write,
            Operation::Create,
            Operation::Delete,
            Operation::Alter,
            Operation::Describe,
            Operation::DescribeConfigs,
            Operation::AlterConfigs,
            Operation::IdempotentWrite,
        ]
        .into_iter()
        .filter(move |op| self.contains(*op))
    }
}

impl Serialize for Operations {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Which resource names a rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(
    tag = "pattern_type",
    content = "resource_name",
    rename_all = "snake_case"
)]
pub enum Pattern {
    /// Literal `*`: every resource of the type.
    Any,
    Literal(String),
    Prefixed(String),
}

impl Pattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Literal(n) => n == name,
            Pattern::Prefixed(p) => name.starts_with(p.as_str()),
        }
    }

    /// Does this pattern cover every name `other` covers?
    pub fn covers(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Any, _) => true,
            (_, Pattern::Any) => false,
            (Pattern::Literal(a), Pattern::Literal(b)) => a == b,
            (Pattern::Literal(_), Pattern::Prefixed(_)) => false,
            (Pattern::Prefixed(p), Pattern::Literal(n) | Pattern::Prefixed(n)) => {
                n.starts_with(p.as_str())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Allow,
    Deny,
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AclRule {
    pub permission: Permission,
    pub operations: Operations,
    pub resource_type: ResourceType,
    #[serde(flatten)]
    pub pattern: Pattern,
}

/// The name of the cluster resource, as Kafka calls it.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// A rule as written, before checking (see `config::raw::RawAclRule`).
pub struct RuleSpec<'a> {
    pub permission: Option<&'a str>,
    pub operations: &'a [String],
    pub resource_type: &'a str,
    pub pattern_type: Option<&'a str>,
    pub resource_name: Option<&'a str>,
}

/// A rule that does not check, with the field at fault (relative to the rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RuleError {
    pub field: &'static str,
    pub reason: String,
}

fn rule_error(field: &'static str, reason: impl Into<String>) -> RuleError {
    RuleError {
        field,
        reason: reason.into(),
    }
}

impl AclRule {
    /// A rule from already-checked parts (rules from a configuration come from [`Self::parse`]).
    pub fn new(
        permission: Permission,
        operations: &[Operation],
        resource_type: ResourceType,
        pattern: Pattern,
    ) -> Self {
        Self {
            permission,
            operations: Operations::of(operations),
            resource_type,
            pattern,
        }
    }

    /// Check a rule as written. Every problem is reported, not just the first.
    pub fn parse(spec: &RuleSpec<'_>) -> Result<AclRule, Vec<RuleError>> {
        let mut errors = Vec::new();
        let permission = kept(&mut errors, check_permission(spec.permission));
        let resource_type = kept(
            &mut errors,
            spec.resource_type
                .parse::<ResourceType>()
                .map_err(|reason| rule_error("resource_type", reason)),
        );
        let ops = check_operations(spec.operations, resource_type, &mut errors);
        let pattern = kept(&mut errors, check_pattern(spec, resource_type));
        match (permission, resource_type, pattern) {
            (Some(permission), Some(resource_type), Some(pattern)) if errors.is_empty() => {
                Ok(AclRule {
                    permission,
                    operations: Operations::of(&ops),
                    resource_type,
                    pattern,
                })
            }
            _ => Err(errors),
        }
    }
}

/// The value of a checked field, or `None` with its error added to `errors`.
fn kept<T>(errors: &mut Vec<RuleError>, checked: Result<T, RuleError>) -> Option<T> {
    checked.map_err(|e| errors.push(e)).ok()
}

/// `permission`: allow (the default) or deny.
fn check_permission(permission: Option<&str>) -> Result<Permission, RuleError> {
    match permission.unwrap_or("allow") {
        "allow" => Ok(Permission::Allow),
        "deny" => Ok(Permission::Deny),
        other => Err(rule_error(
            "permission",
            format!("`{other}` is not allow or deny"),
        )),
    }
}

/// `operations`: at least one, each known, and `idempotent_write` only on the cluster. The
/// valid ones are returned; every problem goes to `errors`.
fn check_operations(
    operations: &[String],
    resource_type: Option<ResourceType>,
    errors: &mut Vec<RuleError>,
) -> Vec<Operation> {
    let mut ops = Vec::new();
    if operations.is_empty() {
        errors.push(rule_error(
            "operations",
            "list at least one operation (or `all`)",
        ));
    }
    for op in operations {
        match op.parse::<Operation>() {
            Ok(op) => ops.push(op),
            Err(reason) => errors.push(rule_error("operations", reason)),
        }
    }
    if let Some(ResourceType::Topic | ResourceType::Group | ResourceType::TransactionalId) =
        resource_type
        && ops.contains(&Operation::IdempotentWrite)
    {
        errors.push(rule_error(
            "operations",
            "idempotent_write applies to the cluster resource only",
        ));
    }
    ops
}

/// `pattern_type` and `resource_name` together: the names the rule covers. The cluster has one
/// name, so any spelling of it is [`Pattern::Any`].
fn check_pattern(
    spec: &RuleSpec<'_>,
    resource_type: Option<ResourceType>,
) -> Result<Pattern, RuleError> {
    match (
        resource_type,
        spec.pattern_type.unwrap_or("literal"),
        spec.resource_name,
    ) {
        (_, "literal" | "prefixed", None) if resource_type != Some(ResourceType::Cluster) => {
            Err(rule_error(
                "resource_name",
                "required (`*` for every resource of the type)",
            ))
        }
        (Some(ResourceType::Cluster), "literal", None | Some("*")) => Ok(Pattern::Any),
        (Some(ResourceType::Cluster), "literal", Some(CLUSTER_RESOURCE_NAME)) => Ok(Pattern::Any),
        (Some(ResourceType::Cluster), _, Some(other)) => Err(rule_error(
            "resource_name",
            format!(
                "the cluster resource is named `{CLUSTER_RESOURCE_NAME}` (or `*`), not `{other}`"
            ),
        )),
        (_, "literal", Some("*")) => Ok(Pattern::Any),
        (_, "literal", Some(name)) if !name.is_empty() => Ok(Pattern::Literal(name.to_string())),
        (_, "prefixed", Some(name)) if !name.is_empty() && name != "*" => {
            Ok(Pattern::Prefixed(name.to_string()))
        }
        (_, "literal" | "prefixed", Some(name)) => Err(rule_error(
            "resource_name",
            format!("`{name}` is not a usable name for this pattern type"),
        )),
        (_, other, _) => Err(rule_error(
            "pattern_type",
            format!("`{other}` is not literal or prefixed"),
        )),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    fn spec<'a>(
        ops: &'a [String],
        resource_type: &'a str,
        pattern_type: Option<&'a str>,
        name: Option<&'a str>,
    ) -> RuleSpec<'a> {
        RuleSpec {
            permission: None,
            operations: ops,
            resource_type,
            pattern_type,
            resource_name: name,
        }
    }

    #[test]
    fn a_prefixed_topic_rule_parses_with_allow_by_default() {
        let ops = vec!["write".to_string(), "describe".to_string()];
        let rule =
            AclRule::parse(&spec(&ops, "topic", Some("prefixed"), Some("payments-"))).unwrap();
        assert_eq!(rule.permission, Permission::Allow);
        assert_eq!(rule.pattern, Pattern::Prefixed("payments-".into()));
        assert!(rule.operations.contains(Operation::Write));
        assert!(!rule.operations.contains(Operation::Read));
    }

    #[test]
    fn a_literal_star_is_every_resource() {
        let ops = vec!["read".to_string()];
        let rule = AclRule::parse(&spec(&ops, "group", None, Some("*"))).unwrap();
        assert_eq!(rule.pattern, Pattern::Any);
    }

    #[test]
    fn the_cluster_resource_needs_no_name() {
        let ops = vec!["create".to_string()];
        let rule = AclRule::parse(&spec(&ops, "cluster", None, None)).unwrap();
        assert_eq!(rule.pattern, Pattern::Any);
        let err = AclRule::parse(&spec(&ops, "cluster", None, Some("prod"))).unwrap_err();
        assert_eq!(err[0].field, "resource_name");
    }

    #[test]
    fn every_problem_of_a_rule_is_reported() {
        let ops = vec!["fly".to_string()];
        let errors = AclRule::parse(&RuleSpec {
            permission: Some("maybe"),
            operations: &ops,
            resource_type: "table",
            pattern_type: Some("regex"),
            resource_name: Some("x"),
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert!(fields.contains(&"permission"), "{errors:?}");
        assert!(fields.contains(&"operations"), "{errors:?}");
        assert!(fields.contains(&"resource_type"), "{errors:?}");
    }

    #[test]
    fn a_topic_rule_without_a_name_is_refused() {
        let ops = vec!["read".to_string()];
        let err = AclRule::parse(&spec(&ops, "topic", None, None)).unwrap_err();
        assert_eq!(err[0].field, "resource_name");
    }

    #[test]
    fn allow_implications_follow_kafka() {
        let write = Operations::of(&[Operation::Write]);
        assert!(write.allow_grants(Operation::Describe));
        assert!(!write.allow_grants(Operation::Read));
        let alter_configs = Operations::of(&[Operation::AlterConfigs]);
        assert!(alter_configs.allow_grants(Operation::DescribeConfigs));
        assert!(Operations::of(&[Operation::All]).allow_grants(Operation::Create));
    }

    #[test]
    fn a_deny_covers_only_its_operation_or_all() {
        let read = Operations::of(&[Operation::Read]);
        assert!(read.deny_covers(Operation::Read));
        assert!(!read.deny_covers(Operation::Describe));
        assert!(Operations::of(&[Operation::All]).deny_covers(Operation::Describe));
    }

    #[test]
    fn pattern_cover_is_set_inclusion() {
        let any = Pattern::Any;
        let pay = Pattern::Prefixed("pay".into());
        let payments = Pattern::Prefixed("payments-".into());
        let eu = Pattern::Literal("payments-eu".into());
        assert!(any.covers(&pay));
        assert!(pay.covers(&payments));
        assert!(payments.covers(&eu));
        assert!(!payments.covers(&pay));
        assert!(!eu.covers(&payments));
        assert!(!pay.covers(&any));
    }
}
