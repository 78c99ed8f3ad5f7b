//! Identity pools: CEL filters over certificate attributes, and resolution to principals.
//!
//! Each configured certificate authority has identity pools. A pool's `filter` is a CEL
//! expression in the style of Confluent Cloud's mTLS identity pools:
//!
//! ```text
//! CN == "orders-service" && OU in ["payments", "billing"] && SAN.startsWith("spiffe://acme/")
//! ```
//!
//! Every pool of every CA that verified the client certificate is evaluated; *all* matching
//! pools become the connection's pools and each gives the principal `User:<pool-id>`.
//! A blank filter never matches. A filter that fails at run time is a non-match and a warning.
//!
//! The path of a certificate through this module:
//!
//! - [`Attributes::new`] prepares what filters can see, once per certificate; the identifiers
//!   are listed in [`attributes`].
//! - [`Filter::compile`] (at config load) parses with cel's grammar, rejects unknown names and
//!   obvious type errors, and picks the allocation-free fast path ([`fast`]) when the filter is
//!   in the Confluent subset, else the cel interpreter.
//! - [`evaluate`] runs every pool and adds the matches up into a [`Resolution`].
//! - [`ResolutionCache`] remembers resolutions per (certificate, verifying CAs).

pub mod attributes;
mod cache;
mod check;
mod fast;
mod filter;
mod identifier;
mod resolve;

pub use attributes::Attributes;
pub use cache::{DEFAULT_CACHE_CAPACITY, ResolutionCache, Resolved};
pub use filter::{Filter, FilterError, FilterOutcome};
pub use identifier::{CertIdentifier, ExternalIdentifier, UnknownExternalIdentifier};
pub use resolve::{Evaluation, MatchedPool, PoolResult, Resolution, evaluate};

use serde::Serialize;

/// An identity pool of one certificate authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    /// The pool id; matching clients get the principal `User:<id>`.
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// Which certificate field identifies clients of this pool in logs.
    pub external_identifier: ExternalIdentifier,
    pub filter: Filter,
    /// Higher wins the choice of the primary pool among several matches (see
    /// [`Resolution::primary`]); 0 by default.
    pub priority: i32,
    /// The pool's ACL rules (enforced when authorization is enabled for its CA).
    pub acls: Vec<crate::acl::AclRule>,
}

/// The identity pools of one certificate authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaPools {
    /// The certificate authority's id in the configuration.
    pub ca_id: String,
    pub pools: Vec<Pool>,
}

#[cfg(test)]
mod tests;
