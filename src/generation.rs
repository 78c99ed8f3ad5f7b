//! A configuration generation: what a configuration load produces and a reload replaces as a
//! whole — the configuration, the TLS acceptor (server key and trusted CAs with their pools) and
//! the upstream connector. A session takes the current generation when it starts and keeps it
//! to the end; only its ACL filter follows reloads.

use std::sync::Arc;

use crate::config::{ReloadableConfig, UpstreamIdentity};
use crate::oauth::{KeyRing, TokenIssuer};
use crate::tls::crl::FetchedCrls;
use crate::tls::{TlsAcceptorFactory, TrustStore};
use crate::upstream::{BrokerBook, UpstreamConnector, UpstreamError};

/// Why a generation could not be built from a configuration that loaded.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error(transparent)]
    Trust(#[from] crate::tls::trust::TrustError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The key ring is made at start: a reload cannot switch oauthbearer on.
    #[error(
        "upstream.identity.mode: oauthbearer was not the mode at start; restart the proxy to \
         switch to it (its signing keys and JWKS are set up at start)"
    )]
    OAuthNeedsRestart,
}

/// See the module documentation.
pub struct Generation {
    pub number: u64,
    /// Only what a reload may change: startup settings stay with the reloader.
    pub config: Arc<ReloadableConfig>,
    pub tls: TlsAcceptorFactory,
    pub upstream: UpstreamConnector,
}

impl Generation {
    /// Build generation `number` from `config`. `book` and `crls` outlive generations;
    /// `token_keys` exist when the proxy started in oauthbearer mode.
    pub fn build(
        number: u64,
        config: ReloadableConfig,
        book: Arc<BrokerBook>,
        crls: &FetchedCrls,
        token_keys: Option<&Arc<KeyRing>>,
    ) -> Result<Self, GenerationError> {
        let provider = crate::tls::provider();
        let trust = TrustStore::new(
            &config.authorities,
            crls,
            config.limits.pool_cache_entries,
            provider.clone(),
        )?;
        let tls = TlsAcceptorFactory::new(
            Arc::new(trust),
            config.server_tls.certified_key.clone(),
            config.server_tls.tls13_only,
        );
        let mut upstream = UpstreamConnector::new(&config.upstream, book, provider)?;
        if let UpstreamIdentity::OAuthBearer { token } = &config.upstream.identity {
            let keys = token_keys.ok_or(GenerationError::OAuthNeedsRestart)?;
            upstream = upstream.with_token_issuer(TokenIssuer::new(token.clone(), keys.clone()));
        }
        Ok(Self {
            number,
            config: Arc::new(config),
            tls,
            upstream,
        })
    }
}
