//! Resolution: every pool of every verifying CA against one certificate → principals.

use serde::Serialize;

use super::filter::{FilterOutcome, Interpreter};
use super::identifier::{CertIdentifier, ExternalIdentifier};
use super::{Attributes, CaPools};
use crate::identity::CertIdentity;

/// One pool's filter against the certificate (for `explain` and audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolResult {
    pub ca_id: String,
    pub pool_id: String,
    /// The filter's source.
    pub filter: String,
    /// Serialized as `"match"`, `"no_match"`, `"empty"` or `{"error": "..."}`.
    pub outcome: FilterOutcome,
}

/// A pool whose filter matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedPool {
    pub ca_id: String,
    pub pool_id: String,
    /// The pool's priority (for the choice of the primary pool).
    pub priority: i32,
}

/// What a certificate resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// Every matching pool, in evaluation order (CA order, then pool order).
    pub matched: Vec<MatchedPool>,
    /// `User:<pool-id>` for each matched pool, without duplicates, in match order.
    pub principals: Vec<String>,
    /// The reported certificate identifier; `None` exactly when nothing matched.
    pub identifier: Option<CertIdentifier>,
}

impl Resolution {
    /// Whether any pool matched: a certificate that matches no pool gets no principal and is
    /// refused.
    pub fn is_admitted(&self) -> bool {
        !self.matched.is_empty()
    }

    /// The primary pool: the matched pool with the highest priority, ties going to the
    /// smallest pool id. Its upstream identity is the one the broker sees; every matched pool
    /// is still a principal and goes to the audit record.
    pub fn primary(&self) -> Option<&MatchedPool> {
        self.matched.iter().min_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.pool_id.cmp(&b.pool_id))
        })
    }

    /// `User:<primary pool id>`: the one principal a record or the broker names for the
    /// connection (the others stay in `principals`).
    pub fn primary_principal(&self) -> Option<String> {
        self.primary().map(|p| format!("User:{}", p.pool_id))
    }

    /// The ids of the matched pools, in match order (duplicates across CAs kept).
    pub fn pool_ids(&self) -> Vec<&str> {
        self.matched
            .iter()
            .map(|matched| matched.pool_id.as_str())
            .collect()
    }
}

/// Every pool's outcome, and the resolution they add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub results: Vec<PoolResult>,
    pub resolution: Resolution,
}

/// Evaluates every pool of every verifying CA (a certificate verified by two CAs is evaluated
/// against both CAs' pools).
///
/// All matching pools count (a union, not first match). The reported identifier is the
/// highest-priority [`ExternalIdentifier`] among the matched pools, with that field's value.
/// A filter that fails at run time is a non-match, logged as a warning naming the pool.
///
/// Filter evaluation itself allocates nothing on the fast path; what is allocated per pool is
/// the [`PoolResult`] the caller asked for (its owned ids and source).
pub fn evaluate(cas: &[&CaPools], identity: &CertIdentity, attrs: &Attributes) -> Evaluation {
    let pool_count = cas.iter().map(|ca| ca.pools.len()).sum();
    let mut results = Vec::with_capacity(pool_count);
    let mut matched = Vec::new();
    let mut principals: Vec<String> = Vec::new();
    let mut best: Option<ExternalIdentifier> = None;
    let mut interpreter = Interpreter::new(attrs);

    for ca in cas {
        for pool in &ca.pools {
            let outcome = pool.filter.evaluate_with(&mut interpreter);
            match &outcome {
                FilterOutcome::Match => {
                    matched.push(MatchedPool {
                        ca_id: ca.ca_id.clone(),
                        pool_id: pool.id.clone(),
                        priority: pool.priority,
                    });
                    let principal = format!("User:{}", pool.id);
                    if !principals.contains(&principal) {
                        principals.push(principal);
                    }
                    best = best.max(Some(pool.external_identifier));
                }
                FilterOutcome::Error(error) => {
                    tracing::warn!(
                        ca = %ca.ca_id,
                        pool = %pool.id,
                        filter = %pool.filter.source(),
                        %error,
                        "identity pool filter failed at run time; treating it as no match"
                    );
                }
                FilterOutcome::NoMatch | FilterOutcome::Empty => {}
            }
            results.push(PoolResult {
                ca_id: ca.ca_id.clone(),
                pool_id: pool.id.clone(),
                filter: pool.filter.source().to_owned(),
                outcome,
            });
        }
    }

    let identifier = best.map(|kind| CertIdentifier {
        kind,
        value: kind.value_of(identity),
    });
    Evaluation {
        results,
        resolution: Resolution {
            matched,
            principals,
            identifier,
        },
    }
}
