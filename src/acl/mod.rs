//! Proxy-side ACLs: what each pool may do, enforced on every request.
//!
//! Operators who do not run broker-side ACLs can give pools Kafka-style rules (see
//! [`rules`]); a connection's permissions are the union of its pools' allows, and any matching
//! deny wins ([`permissions`]). With authorization enabled (globally or per certificate
//! authority), every request is checked ([`check`]) and refused the way a broker refuses it:
//! per-topic TOPIC_AUTHORIZATION_FAILED inside Produce/Fetch/ListOffsets/OffsetCommit/
//! OffsetFetch/CreateTopics/DeleteTopics/DeleteRecords/CreatePartitions/OffsetForLeaderEpoch
//! responses, GROUP_/CLUSTER_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED where Kafka uses them
//! (group membership and offsets, DescribeGroups/DeleteGroups/OffsetDelete, the config APIs,
//! InitProducerId and the transaction APIs), and Metadata and ListGroups listings filtered to
//! what the connection may describe. APIs (and versions) the proxy cannot authorize are hidden
//! from ApiVersions and refused ([`apis`]). What a check changes in the broker's answer is a
//! [`ResponsePatch`] on the decoded response ([`patch`]).
//!
//! With authorization off nothing here runs: requests pass through as raw frames. With it on, an
//! API whose needs the connection holds on every resource ([`needs`]) is not decoded either.

pub mod apis;
pub mod check;
pub mod needs;
pub mod patch;
pub mod permissions;
pub mod rules;

pub use check::{Action, Checked, Denial, check_request};
pub use patch::{Patched, ResponsePatch, apply_patch};
pub use permissions::{Permissions, StaleResolution};
pub use rules::{AclRule, Operation, Operations, Pattern, Permission, ResourceType, RuleSpec};
