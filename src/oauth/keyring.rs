//! The signing keys: which one signs now, which ones the JWKS publishes, and their rotation.
//!
//! # The schedule
//!
//! Every key has an `active_from` time. At any moment the **signer** is the key with the
//! latest `active_from` that has passed; a key whose `active_from` is still ahead is
//! **pending**: published, not yet signing.
//!
//! - **Publish before use.** A new key is generated `publish_ahead` before it becomes the
//!   signer, and is in the JWKS from the moment it exists. `publish_ahead` defaults to 65
//!   minutes, longer than the 1-hour default of Kafka's `sasl.oauthbearer.jwks.endpoint.refresh.ms`,
//!   so a broker has fetched it before any token names it. It must stay longer than the
//!   brokers' refresh: Kafka (measured: 4.4.0) refuses a token whose `kid` it has not fetched,
//!   and refetches the JWKS only then, so a shorter `publish_ahead` costs a refused login after
//!   every rotation (the client retries and the next login works).
//! - **Rotation.** The signer is replaced every `rotate_every` (default 24 hours): the next
//!   key is due at `signer.active_from + rotate_every`, generated `publish_ahead` earlier. A key
//!   generated late (the proxy was down) becomes active `publish_ahead` after it was generated,
//!   never sooner; the old key signs until then.
//! - **Retirement.** A key stops signing when its successor becomes active; the last token it
//!   signed expires at most `token_lifetime` later. It stays in the JWKS until then, plus
//!   [`CLOCK_SKEW_ALLOWANCE`] for brokers whose clocks are behind, and is then forgotten (and
//!   its file deleted).
//! - **The first key** cannot be published ahead: with no key at all (first start, or an
//!   empty `keys_dir`) a key is made that signs at once. This is safe because no token of it
//!   exists yet; a broker that does not know its `kid` refuses the first login and refetches
//!   the JWKS, and the retry succeeds. (Brokers fetch the JWKS when they start, so a proxy
//!   started first, or a persistent `keys_dir`, avoids even that.) The newest key
//!   never retires, so after a long downtime the old signer signs on until its successor has
//!   been published for `publish_ahead`.
//!
//! Which key signs and which are published is computed from the clock when asked, so it is
//! exact between rotation ticks; [`KeyRing::rotate`] only generates, loads and deletes keys.
//!
//! # Persistence
//!
//! Without `keys_dir` keys live in memory: a restart makes a new first key, and tokens signed
//! before it no longer verify (brokers keep sessions already authenticated; new logins get
//! new tokens, so the effect is limited to re-authentication, KIP-368, of live sessions).
//!
//! With `keys_dir`, every key is a PKCS#8 PEM file `es256-<active_from_ms>-<kid>.pem`, mode
//! 0600, written to a temporary name and renamed, so a reader never sees half a key. Keys are
//! loaded at start (a restart keeps signing with the same key, and keeps publishing the
//! retired ones whose tokens are still live), and the directory is read again at every tick.
//!
//! **Several replicas may share one `keys_dir`** (a shared volume): each one publishes every
//! key in the directory and signs with the same signer, because the schedule is a function of
//! the files alone. A replica sees a key another one wrote at its next tick, well within
//! `publish_ahead`. Two replicas may generate the next key at the same tick; then both keys
//! are published, the later `active_from` wins, and the other retires like any old key, so
//! nothing breaks. What does not work: replicas with *separate* `keys_dir`s (or none) behind
//! one JWKS URL — each publishes only its own keys, so a broker that fetched the JWKS from one
//! replica refuses tokens of another. Point the brokers at a JWKS that all replicas agree on.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::clock::Clock;
use super::jwks::JwkSet;
use super::signing_key::{KeyMaterialError, SigningKey};

/// How long a retired key outlives its last token's `exp`: Kafka allows
/// `sasl.oauthbearer.clock.skew.seconds` (30 s by default) of clock difference when checking
/// `exp`; twice that covers it.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);
/// A key file is a few hundred bytes; a larger file in `keys_dir` is not one of ours.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;
const FILE_PREFIX: &str = "es256-";
const FILE_SUFFIX: &str = ".pem";
/// Bounds of the rotation tick (see [`KeyRing::tick_interval`]).
const MIN_TICK: Duration = Duration::from_millis(100);
const MAX_TICK: Duration = Duration::from_secs(60);

/// The settings that shape the schedule. They take effect at restart only: the retirement of
/// keys in use depends on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// How long each key is the signer.
    pub rotate_every: Duration,
    /// How long a new key is published before it signs. Less than `rotate_every`.
    pub publish_ahead: Duration,
    /// The lifetime of every token (`exp - iat`), and so how long a retired key stays
    /// published.
    pub token_lifetime: Duration,
    /// Where keys persist; `None`: in memory only.
    pub keys_dir: Option<PathBuf>,
}

/// The defaults of `upstream.identity.*_ms` in `mode: oauthbearer`.
pub mod defaults {
    /// oauthbearer: short, so a leaked token is worth little; brokers re-authenticate
    /// (KIP-368) within it when `connections.max.reauth.ms` is set.
    pub const OAUTH_TOKEN_LIFETIME_MS: u64 = 15 * 60 * 1_000;
    pub const OAUTH_ROTATE_EVERY_MS: u64 = 24 * 60 * 60 * 1_000;
    /// Longer than Kafka's default JWKS refresh (`sasl.oauthbearer.jwks.endpoint.refresh.ms`,
    /// 1 hour), so every broker has the next key before a token names it.
    pub const OAUTH_PUBLISH_AHEAD_MS: u64 = 65 * 60 * 1_000;
}

impl Default for KeySettings {
    /// The configuration's defaults (`upstream.identity.*_ms`), with keys in memory only.
    fn default() -> Self {
        Self {
            rotate_every: Duration::from_millis(defaults::OAUTH_ROTATE_EVERY_MS),
            publish_ahead: Duration::from_millis(defaults::OAUTH_PUBLISH_AHEAD_MS),
            token_lifetime: Duration::from_millis(defaults::OAUTH_TOKEN_LIFETIME_MS),
            keys_dir: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("oauth keys_dir {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("oauth key file {}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("oauth signing key: {0}")]
    Key(#[from] KeyMaterialError),
}

/// What one [`KeyRing::rotate`] changed, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// A key generated by this tick, and when it starts signing.
    pub generated: Option<(String, u64)>,
    /// Keys another replica wrote to `keys_dir`, now published here too.
    pub loaded: Vec<String>,
    /// Keys whose last token has expired: no longer published.
    pub retired: Vec<String>,
}

/// The key ring. One per process: it survives configuration reloads, because tokens signed
/// before a reload must still verify after it.
pub struct KeyRing {
    settings: KeySettings,
    clock: Arc<dyn Clock>,
    /// Sorted by `(active_from, kid)`. A std lock: read for each token and each JWKS request,
    /// written by the rotation tick; held for a vector scan or insert, never across an await
    /// or file I/O.
    keys: RwLock<Vec<Arc<SigningKey>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("settings", &self.settings)
            .field("keys", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Load `keys_dir` (if any) and make sure a key can sign now. A key file that cannot be
    /// read is an error here, so a proxy does not start next to keys it cannot publish.
    pub fn open(settings: KeySettings, clock: Arc<dyn Clock>) -> Result<Self, KeyRingError> {
        let ring = Self {
            settings,
            clock,
            keys: RwLock::new(Vec::new()),
        };
        if let Some(dir) = &ring.settings.keys_dir {
            for exposed in exposed_to_others(dir) {
                tracing::warn!(
                    path = %exposed.display(),
                    "oauth keys_dir: readable or writable by group or others; signing keys \
                     should be private to the proxy (mode 0700 for the directory, 0600 for keys)"
                );
            }
            let (keys, mut problems) = load_dir(dir)?;
            if let Some(problem) = problems.pop() {
                return Err(problem);
            }
            ring.merge(keys);
        }
        ring.rotate()?;
        Ok(ring)
    }

    pub fn settings(&self) -> &KeySettings {
        &self.settings
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The key that signs now, `None` only if no key has become active (a clock set back
    /// behind every key; the next tick makes one).
    pub fn signer(&self) -> Option<Arc<SigningKey>> {
        let now = self.clock.now_ms();
        self.snapshot()
            .into_iter()
            .rev()
            .find(|k| k.active_from_ms() <= now)
    }

    /// The keys the JWKS publishes now: every key that is pending, signing, or retired with
    /// tokens that may still be live.
    pub fn published(&self) -> Vec<Arc<SigningKey>> {
        let now = self.clock.now_ms();
        let keys = self.snapshot();
        keys.iter()
            .enumerate()
            .filter(|(i, _)| self.retires_at(&keys, *i).is_none_or(|at| now < at))
            .map(|(_, k)| k.clone())
            .collect()
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet::of(self.published().iter().map(|k| k.as_ref()))
    }

    /// How often [`KeyRing::rotate`] should run: a quarter of `publish_ahead` (so a key
    /// another replica wrote is seen long before it signs), between 100 ms and a minute.
    pub fn tick_interval(&self) -> Duration {
        (self.settings.publish_ahead / 4).clamp(MIN_TICK, MAX_TICK)
    }

    /// One tick: pick up keys other replicas wrote, forget retired keys, and generate the next
    /// key when it is due.
    pub fn rotate(&self) -> Result<Rotation, KeyRingError> {
        let mut rotation = Rotation::default();
        if let Some(dir) = &self.settings.keys_dir {
            let (keys, problems) = load_dir(dir)?;
            for problem in problems {
                tracing::warn!(error = %problem, "skipping an unreadable file in oauth keys_dir");
            }
            rotation.loaded = self.merge(keys);
        }
        let now = self.clock.now_ms();

        let retired = {
            let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
            let retire: Vec<bool> = (0..keys.len())
                .map(|i| self.retires_at(&keys, i).is_some_and(|at| now >= at))
                .collect();
            let mut flags = retire.into_iter();
            let mut retired = Vec::new();
            keys.retain(|k| {
                let gone = flags.next().unwrap_or(false);
                if gone {
                    retired.push(k.clone());
                }
                !gone
            });
            retired
        };
        for key in &retired {
            if let Some(dir) = &self.settings.keys_dir {
                let path = dir.join(file_name(key));
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    // Another replica sharing the directory removed it first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    // Not fatal: rotation must go on (the next tick loads the file again and
                    // retires it again), or the retired key's successor would never come.
                    Err(error) => tracing::warn!(
                        path = %path.display(),
                        %error,
                        "cannot delete a retired oauth signing key file; rotation continues"
                    ),
                }
            }
            rotation.retired.push(key.kid().to_owned());
        }

        let keys = self.snapshot();
        let signer = keys.iter().rev().find(|k| k.active_from_ms() <= now);
        let pending = keys.iter().any(|k| k.active_from_ms() > now);
        let publish_ahead = millis(self.settings.publish_ahead);
        let next_active_from = match signer {
            None => Some(now),
            Some(signer) => {
                let due = signer
                    .active_from_ms()
                    .saturating_add(millis(self.settings.rotate_every));
                (!pending && now.saturating_add(publish_ahead) >= due)
                    .then(|| due.max(now.saturating_add(publish_ahead)))
            }
        };
        if let Some(active_from) = next_active_from {
            let key = Arc::new(SigningKey::generate(active_from)?);
            if let Some(dir) = &self.settings.keys_dir {
                write_key(dir, &key)?;
            }
            rotation.generated = Some((key.kid().to_owned(), active_from));
            self.merge(vec![key]);
        }
        Ok(rotation)
    }

    /// When key `i` of `keys` stops being published: its successor's activation, plus the
    /// longest life of a token it signed, plus the clock-skew allowance. `None` for the newest
    /// key.
    fn retires_at(&self, keys: &[Arc<SigningKey>], i: usize) -> Option<u64> {
        let next = keys.get(i + 1)?;
        Some(
            next.active_from_ms()
                .saturating_add(millis(self.settings.token_lifetime))
                .saturating_add(millis(CLOCK_SKEW_ALLOWANCE)),
        )
    }

    /// Add keys not known yet (by kid); returns the kids added.
    fn merge(&self, new: Vec<Arc<SigningKey>>) -> Vec<String> {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let mut added = Vec::new();
        for key in new {
            if keys.iter().all(|k| k.kid() != key.kid()) {
                added.push(key.kid().to_owned());
                keys.push(key);
            }
        }
        keys.sort_by(|a, b| {
            a.active_from_ms()
                .cmp(&b.active_from_ms())
                .then_with(|| a.kid().cmp(b.kid()))
        });
        added
    }

    fn snapshot(&self) -> Vec<Arc<SigningKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn file_name(key: &SigningKey) -> String {
    format!(
        "{FILE_PREFIX}{}-{}{FILE_SUFFIX}",
        key.active_from_ms(),
        key.kid()
    )
}

/// `es256-<active_from_ms>-<kid>.pem` → `active_from_ms`. Other names (temporary files,
/// anything an operator put there) are not keys.
fn parse_file_name(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    let (ms, _kid) = rest.split_once('-')?;
    ms.parse().ok()
}

/// Every key file in `dir`, and the files that look like keys but are not readable keys.
fn load_dir(dir: &Path) -> Result<(Vec<Arc<SigningKey>>, Vec<KeyRingError>), KeyRingError> {
    let io_error = |source| KeyRingError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let Some(active_from) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        let path = entry.path();
        match read_key(&path, active_from) {
            Ok(key) => keys.push(Arc::new(key)),
            Err(problem) => problems.push(problem),
        }
    }
    Ok((keys, problems))
}

/// The key directory and key files that group or others may access (checked once, at start:
/// a shared volume may legitimately be laid out otherwise, so this warns rather than refuses).
#[cfg(unix)]
fn exposed_to_others(dir: &Path) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let exposed =
        |path: &Path| fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
    let mut out = Vec::new();
    if exposed(dir) {
        out.push(dir.to_path_buf());
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let is_key = entry
                .file_name()
                .to_str()
                .and_then(parse_file_name)
                .is_some();
            if is_key && exposed(&path) {
                out.push(path);
            }
        }
    }
    out
}

#[cfg(not(unix))]
fn exposed_to_others(_dir: &Path) -> Vec<std::path::PathBuf> {
    Vec::new()
}

fn read_key(path: &Path, active_from: u64) -> Result<SigningKey, KeyRingError> {
    let bad = |reason: String| KeyRingError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut pem = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| bad(e.to_string()))?;
    if pem.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(bad(format!("larger than {MAX_KEY_FILE_BYTES} bytes")));
    }
    SigningKey::from_pkcs8_pem(&pem, active_from).map_err(|e| bad(e.to_string()))
}

/// Write the key as a 0600 file under a temporary name, then rename it into place: another
/// replica listing the directory sees the whole key or nothing.
fn write_key(dir: &Path, key: &SigningKey) -> Result<(), KeyRingError> {
    let pem = key.to_pkcs8_pem()?;
    let final_path = dir.join(file_name(key));
    let tmp_path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyRingError::Io { path, source }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let written = options
        .open(&tmp_path)
        .and_then(|mut f| {
            f.write_all(pem.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp_path, &final_path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(io_error(&final_path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
