//! The refusal memory: a SCRAM password the broker just refused is refused again from memory
//! for a moment, instead of costing the broker another login.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::UpstreamError;
use super::login::PoolLogin;

/// How long a broker's refusal of a pool's password is remembered. Clients reconnect at once
/// after a refusal (librdkafka every few tens of milliseconds); within this window they are
/// refused from memory instead of costing the broker a SCRAM login (a key derivation) each.
/// A different password (a rotated secret) is always tried at once.
pub(super) const REFUSAL_MEMORY: Duration = Duration::from_secs(2);

/// Pool id → the broker's last refusal of its credentials (see [`REFUSAL_MEMORY`]).
#[derive(Default)]
pub(super) struct RefusalMemory {
    /// A std mutex: held for a map lookup or insert only, never across an await.
    refusals: Mutex<HashMap<String, RememberedRefusal>>,
}

/// A refusal, and which password it was for (a SHA-256 digest; the password is not kept).
struct RememberedRefusal {
    at: Instant,
    password_digest: Vec<u8>,
    addr: String,
    user: String,
    reason: String,
}

impl RefusalMemory {
    /// Run a SCRAM sign-in (`exchange`) through the refusal memory (see [`REFUSAL_MEMORY`]): a
    /// password the broker just refused is refused from memory, without asking the broker.
    pub(super) async fn remembering(
        &self,
        login: &PoolLogin,
        exchange: impl std::future::Future<Output = Result<Option<Duration>, UpstreamError>>,
    ) -> Result<Option<Duration>, UpstreamError> {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(&login.password).to_vec();
        if let Ok(refusals) = self.refusals.lock()
            && let Some(r) = refusals.get(&login.pool)
            && r.password_digest == digest
            && r.at.elapsed() < REFUSAL_MEMORY
        {
            return Err(UpstreamError::SaslRefused {
                addr: r.addr.clone(),
                pool: login.pool.clone(),
                user: r.user.clone(),
                mechanism: login.mechanism.name(),
                reason: format!("{} (remembered for {:?})", r.reason, REFUSAL_MEMORY),
            });
        }
        let result = exchange.await;
        if let Ok(mut refusals) = self.refusals.lock() {
            match &result {
                Err(UpstreamError::SaslRefused {
                    addr, user, reason, ..
                }) => {
                    refusals.insert(
                        login.pool.clone(),
                        RememberedRefusal {
                            at: Instant::now(),
                            password_digest: digest,
                            addr: addr.clone(),
                            user: user.clone(),
                            reason: reason.clone(),
                        },
                    );
                }
                Ok(_) => {
                    refusals.remove(&login.pool);
                }
                Err(_) => {}
            }
        }
        result
    }
}
