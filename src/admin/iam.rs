//! Certificate authorities and identity pools, managed live through Confluent's iam/v2 API.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /iam/v2/certificate-authorities` | `CertificateAuthorityList` |
//! | `POST /iam/v2/certificate-authorities` | `201` and the new `CertificateAuthority` |
//! | `GET`, `PATCH`/`PUT`, `DELETE /iam/v2/certificate-authorities/{id}` | the CA; `204` on delete (its pools go with it) |
//! | `GET`, `POST .../certificate-authorities/{ca}/identity-pools` | `CertificateIdentityPoolList`; `201` and the new pool |
//! | `GET`, `PATCH`/`PUT`, `DELETE .../identity-pools/{id}` | the pool; `204` on delete |
//! | `POST /iam/v2/explain` (body: PEM) | the `explain` command's JSON for that certificate |
//!
//! The configuration file is the store. A write takes the write lock, reads the file, applies
//! the change to its [`RawConfig`](crate::config::raw::RawConfig), and validates the result
//! with [`config::from_raw`], exactly as a load does: anything a load refuses is refused with
//! a 4xx naming the request field. Then the file is replaced atomically ([`store`]) and the
//! proxy reloads it, the same path as a SIGHUP: new connections use the change at once and
//! live connections are re-evaluated. Should the reload refuse what validation accepted, the
//! old file is put back. Writes need the admin token ([`super::auth`]); reads do not.

mod change;
mod error;
mod resource;
mod shared;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tracing::{info, warn};

use super::AdminState;
use super::auth;
use crate::config::raw::{RawCertificateAuthority, RawConfig};
use crate::config::{self, ConfigError};
use crate::reload::Reloader;
use crate::store::SharedStore;
use crate::tls::explain::{self, ExplainError};

pub use error::{ApiError, ErrorObject};
pub use resource::{API_VERSION, KIND_CA, KIND_CA_LIST, KIND_POOL, KIND_POOL_LIST, STATE};
/// The request-body decoding, for the fuzz targets (`fuzz/`); not part of the proxy's API.
#[doc(hidden)]
pub use resource::{Urls, ca_json, merge_ca, merge_pool, parse_body, pool_json, requested_id};
pub use store::{CAS_DIR, HEADER};

use change::{Change, NewFiles, Written, change_raw};
use error::Scope;

/// The IAM API's handle on the running proxy.
pub struct IamApi {
    ctx: Arc<Reloader>,
    /// One write at a time: each reads the file, changes it and writes it back, so two at
    /// once would each lose the other's change.
    writes: tokio::sync::Mutex<()>,
    /// The shared pool store: when set, CAs and pools are read from it and written to it
    /// ([`shared`]), not to the file.
    store: Option<Arc<SharedStore>>,
}

impl fmt::Debug for IamApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamApi")
            .field("config", &self.config_path())
            .finish_non_exhaustive()
    }
}

impl IamApi {
    /// The API for the proxy `ctx`: its configuration file is the one it was loaded from.
    pub fn new(ctx: Arc<Reloader>) -> Self {
        Self {
            ctx,
            writes: tokio::sync::Mutex::new(()),
            store: None,
        }
    }

    /// Read and write CAs and pools through the shared pool store, when there is one.
    pub fn with_store(mut self, store: Option<Arc<SharedStore>>) -> Self {
        self.store = store;
        self
    }

    fn config_path(&self) -> PathBuf {
        self.ctx.config_path().to_path_buf()
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let generation = self.ctx.current();
        let token = generation.config.admin_token.as_ref();
        auth::authorize_write(headers, token).map_err(|d| ApiError::new(d.status(), d.detail()))
    }

    /// Apply `change` under the write lock, off the runtime's workers (files, certificates,
    /// CEL compilation and the reload are all blocking work).
    async fn write(&self, change: Change) -> Result<Written, ApiError> {
        let _one_at_a_time = self.writes.lock().await;
        if let Some(store) = &self.store {
            return shared::write(&self.ctx, store, change).await;
        }
        let ctx = self.ctx.clone();
        tokio::task::spawn_blocking(move || apply(&ctx, change))
            .await
            .map_err(|e| ApiError::internal(format!("the write task failed: {e}")))?
    }

    /// Read the configuration file (blocking work, off the workers).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(RawConfig) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let path = self.config_path();
        let shared = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut raw = store::read(&path).map_err(ApiError::internal)?.raw;
            if let Some(shared) = shared {
                raw.certificate_authorities = shared.authorities().map_err(|e| {
                    ApiError::internal(format!("cannot read the pool store's state: {e}"))
                })?;
            }
            f(raw)
        })
        .await
        .map_err(|e| ApiError::internal(format!("the read task failed: {e}")))?
    }
}

/// The iam/v2 routes (served when [`AdminState::iam`] is set).
pub fn routes() -> Router<AdminState> {
    const CAS: &str = "/iam/v2/certificate-authorities";
    Router::new()
        .route(CAS, get(list_cas).post(create_ca))
        .route(
            &format!("{CAS}/{{id}}"),
            get(get_ca)
                .patch(update_ca)
                .put(update_ca)
                .delete(delete_ca),
        )
        .route(
            &format!("{CAS}/{{ca}}/identity-pools"),
            get(list_pools).post(create_pool),
        )
        .route(
            &format!("{CAS}/{{ca}}/identity-pools/{{id}}"),
            get(get_pool)
                .patch(update_pool)
                .put(update_pool)
                .delete(delete_pool),
        )
        .route("/iam/v2/explain", post(explain_pem))
}

type Reply = Result<Response, ApiError>;

fn iam(state: &AdminState) -> Result<Arc<IamApi>, ApiError> {
    state
        .iam
        .clone()
        .ok_or_else(|| ApiError::new(404, "the IAM API is not available"))
}

fn urls(headers: &HeaderMap) -> Urls {
    Urls::new(headers.get(header::HOST).and_then(|h| h.to_str().ok()))
}

fn json_reply(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn created(location: String, value: &Value) -> Response {
    let mut response = json_reply(StatusCode::CREATED, value);
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn find_ca<'a>(raw: &'a RawConfig, id: &str) -> Result<&'a RawCertificateAuthority, ApiError> {
    raw.certificate_authorities
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::not_found("certificate authority", id))
}

async fn list_cas(State(state): State<AdminState>, headers: HeaderMap) -> Reply {
    let urls = urls(&headers);
    let list = iam(&state)?
        .read(move |raw| {
            let data = raw
                .certificate_authorities
                .iter()
                .map(|ca| resource::ca_json(ca, &urls))
                .collect();
            Ok(resource::list_json(KIND_CA_LIST, urls.cas(), data))
        })
        .await?;
    Ok(json_reply(StatusCode::OK, &list))
}

async fn get_ca(
    State(state): State<AdminState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Reply {
    let urls = urls(&headers);
    let ca = iam(&state)?
        .read(move |raw| Ok(resource::ca_json(find_ca(&raw, &id)?, &urls)))
        .await?;
    Ok(json_reply(StatusCode::OK, &ca))
}

async fn list_pools(
    State(state): State<AdminState>,
    UrlPath(ca): UrlPath<String>,
    headers: HeaderMap,
) -> Reply {
    let urls = urls(&headers);
    let list = iam(&state)?
        .read(move |raw| {
            let entry = find_ca(&raw, &ca)?;
            let data = entry
                .identity_pools
                .iter()
                .map(|p| resource::pool_json(&ca, p, &urls))
                .collect();
            Ok(resource::list_json(KIND_POOL_LIST, urls.pools(&ca), data))
        })
        .await?;
    Ok(json_reply(StatusCode::OK, &list))
}

async fn get_pool(
    State(state): State<AdminState>,
    UrlPath((ca, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let urls = urls(&headers);
    let pool = iam(&state)?
        .read(move |raw| {
            let entry = find_ca(&raw, &ca)?;
            let pool = entry
                .identity_pools
                .iter()
                .find(|p| p.id == id)
                .ok_or_else(|| ApiError::not_found("identity pool", &id))?;
            Ok(resource::pool_json(&ca, pool, &urls))
        })
        .await?;
    Ok(json_reply(StatusCode::OK, &pool))
}

async fn create_ca(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Reply {
    let api = iam(&state)?;
    api.authorize(&headers)?;
    let body = resource::parse_body(&body)?;
    let urls = urls(&headers);
    match api.write(Change::CreateCa(body)).await? {
        Written::Ca(ca) => Ok(created(urls.ca(&ca.id), &resource::ca_json(&ca, &urls))),
        _ => Err(ApiError::internal("unexpected write result")),
    }
}

async fn update_ca(
    State(state): State<AdminState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let api = iam(&state)?;
    api.authorize(&headers)?;
    let body = resource::parse_body(&body)?;
    let urls = urls(&headers);
    match api.write(Change::UpdateCa(id, body)).await? {
        Written::Ca(ca) => Ok(json_reply(StatusCode::OK, &resource::ca_json(&ca, &urls))),
        _ => Err(ApiError::internal("unexpected write result")),
    }
}

async fn delete_ca(
    State(state): State<AdminState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Reply {
    let api = iam(&state)?;
    api.authorize(&headers)?;
    api.write(Change::DeleteCa(id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create_pool(
    State(state): State<AdminState>,
    UrlPath(ca): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let api = iam(&state)?;
    api.authorize(&headers)?;
    let body = resource::parse_body(&body)?;
    let urls = urls(&headers);
    match api.write(Change::CreatePool(ca, body)).await? {
        Written::Pool(ca, pool) => Ok(created(
            urls.pool(&ca, &pool.id),
            &resource::pool_json(&ca, &pool, &urls),
        )),
        _ => Err(ApiError::internal("unexpected write result")),
    }
}

async fn update_pool(
    State(state): State<AdminState>,
    UrlPath((ca, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let api = iam(&state)?;
    api.authorize(&headers)?;
    let body = resource::parse_body(&body)?;
    let urls = urls(&headers);
    match api.write(Change::UpdatePool(ca, id, body)).await? {
        Written::Pool(ca, pool) => Ok(json_reply(
            StatusCode::OK,
            &resource::pool_json(&ca, &pool, &urls),
        )),
        _ => Err(ApiError::internal("unexpected write result")),
    }
}

async fn delete_pool(
    State(state): State<AdminState>,
    UrlPath((ca, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let api = iam(&state)?;
    api.authorize(&headers)?;
    api.write(Change::DeletePool(ca, id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /iam/v2/explain`: the `explain` command against the running configuration.
async fn explain_pem(State(state): State<AdminState>, body: Bytes) -> Reply {
    let api = iam(&state)?;
    let config = api.ctx.current().config.clone();
    let result =
        tokio::task::spawn_blocking(move || explain::explain_pem(&config, &body, "request body"))
            .await
            .map_err(|e| ApiError::internal(format!("the explain task failed: {e}")))?;
    match result {
        Ok(x) => Ok(json_reply(StatusCode::OK, &x.json)),
        Err(e @ (ExplainError::NoCertificate { .. } | ExplainError::BadCertificate { .. })) => {
            Err(ApiError::new(422, e.to_string()))
        }
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// Read the file, change it, validate, write, reload. Blocking.
fn apply(ctx: &Reloader, change: Change) -> Result<Written, ApiError> {
    let path = ctx.config_path().to_path_buf();
    let before = store::read(&path).map_err(|e| {
        ApiError::new(
            409,
            format!("the configuration file must parse before the API can change it: {e}"),
        )
    })?;
    let mut raw = before.raw.clone();
    let cas_dir = store::parent_dir(&path).join(CAS_DIR);
    let mut files = NewFiles::default();
    let outcome =
        change_raw(&mut raw, change, &cas_dir, &mut files).and_then(|(scope, written)| {
            validate_and_commit(ctx, &path, &before, &raw, scope, &files).map(|()| written)
        });
    match outcome {
        Ok(written) => {
            // Chains the configuration no longer names, in the API's own directory.
            for ca in &before.raw.certificate_authorities {
                for file in resource::pem_paths(ca) {
                    if store::is_inside(&file, &cas_dir)
                        && !resource::referenced(&file, &raw.certificate_authorities)
                    {
                        let _ = std::fs::remove_file(&file);
                    }
                }
            }
            Ok(written)
        }
        Err(e) => {
            files.remove();
            Err(e)
        }
    }
}

/// Validate `raw` as a load would, write it, reload. On a refused reload the old text is put
/// back, so the file always holds a configuration the proxy runs.
fn validate_and_commit(
    ctx: &Reloader,
    path: &Path,
    before: &store::Snapshot,
    raw: &RawConfig,
    scope: Scope,
    files: &NewFiles,
) -> Result<(), ApiError> {
    let text = store::render(path, raw).map_err(ApiError::internal)?;
    match config::from_raw(path, raw) {
        Ok(config) => {
            for w in &config.warnings {
                warn!(file = %path.display(), "{w}");
            }
        }
        Err(ConfigError::Invalid { issues, .. }) => {
            return Err(error::from_issues(&issues, scope, &files.renamed));
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    }
    store::write_atomic(path, text.as_bytes())
        .map_err(|e| ApiError::internal(format!("{}: cannot write: {e}", path.display())))?;
    match ctx.reload() {
        Ok(report) => {
            ctx.metrics().reload_succeeded();
            info!(
                trigger = "admin API",
                generation = report.generation,
                closed = report.closed,
                "configuration reloaded"
            );
            Ok(())
        }
        Err(e) => {
            ctx.metrics().reload_failed();
            let restored = store::write_atomic(path, before.text.as_bytes());
            warn!(trigger = "admin API", error = %e, restored = restored.is_ok(), "reload refused the written configuration");
            Err(ApiError::internal(format!(
                "the proxy refused the new configuration ({e}); {}",
                match restored {
                    Ok(()) => "the previous file was put back".to_string(),
                    Err(io) => format!("and the previous file could not be put back: {io}"),
                }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_routes_build() {
        // Route syntax errors panic at build time; catch them here rather than at start.
        let _ = routes();
    }

    #[test]
    fn api_constants_are_confluents() {
        assert_eq!(API_VERSION, "iam/v2");
        assert_eq!(KIND_CA, "CertificateAuthority");
        assert_eq!(json!(STATE), json!("ENABLED"));
    }
}
