//! A bounded cache of resolutions, so a client reconnecting with the same certificate skips
//! parsing and filter evaluation.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::CaPools;
use super::resolve::Evaluation;
use crate::identity::{CertIdentity, IdentityError};

/// The default number of cached resolutions.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// A certificate's identity and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub identity: CertIdentity,
    pub evaluation: Evaluation,
    /// The certificate's usable CRL distribution point URLs, read in the parse that gave
    /// `identity` (a CA that learns CRL URLs fetches them; the leaf is not parsed again).
    #[serde(skip)]
    pub crl_urls: Vec<String>,
}

/// SHA-256 over the leaf DER and the verifying CA ids (see [`cache_key`]).
type Key = [u8; 32];

/// Resolutions keyed by (leaf certificate, verifying CA ids), at most `capacity` of them.
///
/// The same certificate verified by a different set of CAs is a different entry, since it is
/// evaluated against different pools. The pools themselves are not part of the key: build a
/// new cache (or [`clear`](Self::clear) this one) when the pool configuration changes.
///
/// Eviction is CLOCK (second chance): an entry read since the hand last passed survives one
/// more round, so hot certificates stay while one-off ones cycle out, without the write a
/// strict LRU needs on every hit. A hit takes a shared lock only.
#[derive(Debug)]
pub struct ResolutionCache {
    capacity: usize,
    /// Readers (hits) share the lock; inserts and evictions take it exclusively.
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// The CLOCK ring: every key in `entries`, oldest first.
    ring: VecDeque<Key>,
}

#[derive(Debug)]
struct Entry {
    resolved: Arc<Resolved>,
    /// Set on every hit, cleared when the clock hand passes: the second chance.
    referenced: AtomicBool,
}

impl ResolutionCache {
    /// A cache holding at most `capacity` resolutions; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        ResolutionCache {
            capacity,
            inner: RwLock::new(Inner {
                entries: HashMap::with_capacity(capacity.min(1024)),
                ring: VecDeque::new(),
            }),
        }
    }

    /// The cached resolution of `leaf_der` under `cas`, or `resolve()`'s, which is then cached.
    ///
    /// `resolve` runs without any lock held, so a slow resolution never blocks other
    /// connections. Errors are not cached. If two connections resolve the same certificate at
    /// once, the first result stored wins and both get it.
    pub fn get_or_resolve(
        &self,
        leaf_der: &[u8],
        cas: &[&CaPools],
        resolve: impl FnOnce() -> Result<Arc<Resolved>, IdentityError>,
    ) -> Result<Arc<Resolved>, IdentityError> {
        if self.capacity == 0 {
            return resolve();
        }
        let key = cache_key(leaf_der, cas);
        {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = inner.entries.get(&key) {
                entry.referenced.store(true, Ordering::Relaxed);
                return Ok(Arc::clone(&entry.resolved));
            }
        }
        let resolved = resolve()?;
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = inner.entries.get(&key) {
            return Ok(Arc::clone(&entry.resolved));
        }
        if inner.entries.len() >= self.capacity {
            inner.evict_one();
        }
        inner.entries.insert(
            key,
            Entry {
                resolved: Arc::clone(&resolved),
                referenced: AtomicBool::new(false),
            },
        );
        inner.ring.push_back(key);
        Ok(resolved)
    }

    /// The number of cached resolutions.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most resolutions this cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets everything (e.g. after the pool configuration changed).
    pub fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.entries.clear();
        inner.ring.clear();
    }
}

impl Default for ResolutionCache {
    fn default() -> Self {
        ResolutionCache::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl Inner {
    /// Removes one entry, giving recently read ones a second chance.
    fn evict_one(&mut self) {
        // Each pass either evicts or clears a bit, so this ends within two turns of the ring.
        while let Some(key) = self.ring.pop_front() {
            match self.entries.get(&key) {
                Some(entry) if entry.referenced.swap(false, Ordering::Relaxed) => {
                    self.ring.push_back(key);
                }
                Some(_) => {
                    self.entries.remove(&key);
                    return;
                }
                // Not expected (ring and map change together); just drop the stale key.
                None => {}
            }
        }
    }
}

/// One digest for (leaf DER, verifying CA ids), so a lookup needs no allocation.
///
/// Every part is length-prefixed, so no two different (certificate, CA list) pairs feed the
/// hash the same bytes; SHA-256 makes a collision between them practically impossible.
fn cache_key(leaf_der: &[u8], cas: &[&CaPools]) -> Key {
    let mut hasher = Sha256::new();
    hasher.update((leaf_der.len() as u64).to_be_bytes());
    hasher.update(leaf_der);
    for ca in cas {
        hasher.update((ca.ca_id.len() as u64).to_be_bytes());
        hasher.update(ca.ca_id.as_bytes());
    }
    hasher.finalize().into()
}
