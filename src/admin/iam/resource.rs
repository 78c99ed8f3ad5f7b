//! The iam/v2 JSON shapes: configuration entries → resources, request bodies → entries.
//!
//! Both directions go through the raw schema as JSON, so every field the schema has is a
//! field of the resource, including fields added to the schema later (the CRL settings of a
//! CA, for instance), and an unknown request field is refused the way an unknown YAML key is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::config::load_pem_certificates;
use crate::config::raw::{RawCertificateAuthority, RawIdentityPool};
use crate::identity::CertIdentity;

pub const API_VERSION: &str = "iam/v2";
pub const KIND_CA: &str = "CertificateAuthority";
pub const KIND_CA_LIST: &str = "CertificateAuthorityList";
/// Confluent's kind for a certificate identity pool (its OIDC pools are `IdentityPool`).
pub const KIND_POOL: &str = "CertificateIdentityPool";
pub const KIND_POOL_LIST: &str = "CertificateIdentityPoolList";
/// Every configured resource is in force: Confluent's only state.
pub const STATE: &str = "ENABLED";

/// Fields of a CA that hold PEM text in the API and a file path in the configuration.
pub const PEM_FIELDS: [&str; 2] = ["certificate_chain", "crl_chain"];

/// Computed fields of a CA: accepted in a request body (a GET's body can be sent back as it
/// is) and ignored.
const CA_READ_ONLY: [&str; 9] = [
    "api_version",
    "kind",
    "metadata",
    "fingerprints",
    "serial_numbers",
    "expiration_dates",
    "state",
    "crl_source",
    "crl_updated_at",
];
const POOL_READ_ONLY: [&str; 5] = ["api_version", "kind", "metadata", "principal", "state"];

/// Builds the `metadata.self` URLs from the address the client used.
#[derive(Debug, Clone)]
pub struct Urls {
    base: String,
}

impl Urls {
    /// `host`: the request's `Host` header; without one, URLs are paths.
    pub fn new(host: Option<&str>) -> Self {
        Self {
            base: host.map(|h| format!("http://{h}")).unwrap_or_default(),
        }
    }

    pub fn cas(&self) -> String {
        format!("{}/iam/v2/certificate-authorities", self.base)
    }

    pub fn ca(&self, id: &str) -> String {
        format!("{}/{id}", self.cas())
    }

    pub fn pools(&self, ca: &str) -> String {
        format!("{}/identity-pools", self.ca(ca))
    }

    pub fn pool(&self, ca: &str, id: &str) -> String {
        format!("{}/{id}", self.pools(ca))
    }
}

/// A certificate authority as the API shows it. The chain's PEM text and the computed fields
/// come from the chain file; when it cannot be read they are left out.
pub fn ca_json(ca: &RawCertificateAuthority, urls: &Urls) -> Value {
    let mut obj = object(ca);
    obj.remove("identity_pools");
    let crl_chain = obj.remove("crl_chain").filter(|v| !v.is_null());
    if crl_chain.is_some() {
        obj.insert("crl_source".into(), json!("LOCAL"));
    } else if obj.get("crl_url").is_some_and(|v| !v.is_null()) {
        obj.insert("crl_source".into(), json!("URL"));
    }
    obj.remove("certificate_chain");
    let (mut fingerprints, mut serials, mut expirations) = (vec![], vec![], vec![]);
    if let Ok(certs) = load_pem_certificates(&ca.certificate_chain) {
        for identity in certs.iter().filter_map(|c| CertIdentity::from_der(c).ok()) {
            fingerprints.push(identity.sha1);
            serials.push(identity.serial);
            expirations.push(identity.not_after);
        }
    }
    if let Ok(pem) = std::fs::read_to_string(&ca.certificate_chain) {
        obj.insert("certificate_chain".into(), json!(pem));
    }
    let filename = ca
        .certificate_chain
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    obj.insert("certificate_chain_filename".into(), json!(filename));
    obj.insert("fingerprints".into(), json!(fingerprints));
    obj.insert("serial_numbers".into(), json!(serials));
    obj.insert("expiration_dates".into(), json!(expirations));
    resource(
        KIND_CA,
        &ca.id,
        json!({
            "self": urls.ca(&ca.id),
            "resource_name": format!("crn://kafka-mtls-proxy/certificate-authority={}", ca.id),
        }),
        obj,
    )
}

/// An identity pool of certificate authority `ca_id` as the API shows it.
pub fn pool_json(ca_id: &str, pool: &RawIdentityPool, urls: &Urls) -> Value {
    let mut obj = object(pool);
    obj.insert("principal".into(), json!(format!("User:{}", pool.id)));
    resource(
        KIND_POOL,
        &pool.id,
        json!({
            "self": urls.pool(ca_id, &pool.id),
            "resource_name": format!(
                "crn://kafka-mtls-proxy/certificate-authority={ca_id}/identity-pool={}",
                pool.id
            ),
        }),
        obj,
    )
}

/// A list resource (no paging: a configuration holds few enough entries).
pub fn list_json(kind: &str, url: String, data: Vec<Value>) -> Value {
    json!({
        "api_version": API_VERSION,
        "kind": kind,
        "metadata": { "first": url, "total_size": data.len() },
        "data": data,
    })
}

fn resource(kind: &str, id: &str, metadata: Value, mut fields: Map<String, Value>) -> Value {
    fields.retain(|_, v| !v.is_null());
    fields.insert("api_version".into(), json!(API_VERSION));
    fields.insert("kind".into(), json!(kind));
    fields.insert("id".into(), json!(id));
    fields.insert("metadata".into(), metadata);
    fields.insert("state".into(), json!(STATE));
    Value::Object(fields)
}

fn object(value: &impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A request body: a JSON object.
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(400, "the request body must be a JSON object")),
        Err(e) => Err(ApiError::new(
            400,
            format!("the request body is not JSON: {e}"),
        )),
    }
}

/// The `id` a create request asks for, if any.
pub fn requested_id(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        Some(_) => Err(ApiError::field(400, "id", "id: must be a string")),
    }
}

/// `prefix` and 8 random letters and digits, not in `taken` (Confluent's ids look alike:
/// `op-` for certificate authorities, `pool-` for pools).
pub fn generate_id(prefix: &str, taken: &HashSet<String>) -> String {
    use rand::RngExt;
    loop {
        let suffix: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(8)
            .map(char::from)
            .collect();
        let id = format!("{prefix}{suffix}");
        if !taken.contains(&id) {
            return id;
        }
    }
}

/// Apply a CA request body to `existing` (or to nothing, for a create). PEM fields go
/// through `write_pem(field, pem) → path`.
pub fn merge_ca(
    existing: Option<&RawCertificateAuthority>,
    id: &str,
    body: Map<String, Value>,
    write_pem: &mut dyn FnMut(&str, &str) -> Result<PathBuf, ApiError>,
) -> Result<RawCertificateAuthority, ApiError> {
    let mut obj = existing.map(object).unwrap_or_default();
    obj.insert("id".into(), json!(id));
    for (key, value) in body {
        match key.as_str() {
            k if CA_READ_ONLY.contains(&k) => {}
            "id" => same_id(id, &value)?,
            "certificate_chain_filename" => match &value {
                Value::String(name) if name.is_empty() || name.ends_with(".pem") => {}
                Value::Null => {}
                _ => {
                    return Err(ApiError::field(
                        400,
                        "certificate_chain_filename",
                        "certificate_chain_filename: a certificate chain must be a .pem file",
                    ));
                }
            },
            "identity_pools" => {
                return Err(ApiError::field(
                    400,
                    "identity_pools",
                    format!(
                        "identity_pools: pools are managed at \
                         /iam/v2/certificate-authorities/{id}/identity-pools"
                    ),
                ));
            }
            k if PEM_FIELDS.contains(&k) => match value {
                Value::String(pem) => {
                    let path = write_pem(k, &pem)?;
                    obj.insert(key, json!(path));
                }
                // Removing an optional file (a CRL chain); the chain itself is required and
                // the schema refuses a null for it.
                Value::Null => {
                    obj.insert(key, Value::Null);
                }
                _ => {
                    return Err(ApiError::field(
                        400,
                        k,
                        format!("{k}: must be PEM text (a string)"),
                    ));
                }
            },
            _ => {
                obj.insert(key, value);
            }
        }
    }
    if !obj.contains_key("certificate_chain") {
        return Err(ApiError::field(
            400,
            "certificate_chain",
            "certificate_chain: required: the PEM text of 1 to 4 CA certificates",
        ));
    }
    from_object(obj)
}

/// Apply a pool request body to `existing` (or to nothing, for a create).
pub fn merge_pool(
    existing: Option<&RawIdentityPool>,
    id: &str,
    body: Map<String, Value>,
) -> Result<RawIdentityPool, ApiError> {
    let mut obj = existing.map(object).unwrap_or_default();
    obj.insert("id".into(), json!(id));
    for (key, value) in body {
        match key.as_str() {
            k if POOL_READ_ONLY.contains(&k) => {}
            "id" => same_id(id, &value)?,
            _ => {
                obj.insert(key, value);
            }
        }
    }
    from_object(obj)
}

fn same_id(id: &str, value: &Value) -> Result<(), ApiError> {
    match value {
        Value::String(v) if v == id => Ok(()),
        Value::Null => Ok(()),
        _ => Err(ApiError::field(
            400,
            "id",
            format!("id: is `{id}` and cannot be changed"),
        )),
    }
}

/// The schema's own verdict on shape: unknown fields, missing required ones, wrong types.
fn from_object<T: serde::de::DeserializeOwned>(obj: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(obj)).map_err(|e| {
        let message = e.to_string();
        // serde names the field between backticks in "unknown field `x`" and "missing field `x`".
        let field = message.split('`').nth(1).filter(|_| {
            message.starts_with("unknown field") || message.starts_with("missing field")
        });
        match field {
            Some(field) => ApiError::field(400, field, format!("{field}: {message}")),
            None => ApiError::new(400, message),
        }
    })
}

/// The PEM files a certificate authority names (its chain, its CRLs).
pub fn pem_paths(ca: &RawCertificateAuthority) -> Vec<PathBuf> {
    let obj = object(ca);
    PEM_FIELDS
        .iter()
        .filter_map(|f| obj.get(*f)?.as_str().map(PathBuf::from))
        .collect()
}

/// Whether the file at `path` is one of `cas`' PEM files.
pub fn referenced(path: &Path, cas: &[RawCertificateAuthority]) -> bool {
    cas.iter().any(|ca| pem_paths(ca).iter().any(|p| p == path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> RawIdentityPool {
        serde_json::from_value(json!({
            "id": "pool-a", "display_name": "A", "external_identifier": "CN", "filter": "CN == 'a'"
        }))
        .unwrap()
    }

    #[test]
    fn a_pool_body_merges_over_the_entry() {
        let body = parse_body(br#"{"description":"new","principal":"User:x","kind":"K"}"#).unwrap();
        let merged = merge_pool(Some(&pool()), "pool-a", body).unwrap();
        assert_eq!(merged.description, "new");
        assert_eq!(merged.filter, "CN == 'a'");
    }

    #[test]
    fn an_api_update_keeps_the_pools_acl_rules() {
        let mut existing = pool();
        existing.acls = serde_json::from_value(json!([
            {"operations": ["write"], "resource_type": "topic", "resource_name": "payments"}
        ]))
        .unwrap();
        let body = parse_body(br#"{"filter":"CN == 'b'"}"#).unwrap();
        let merged = merge_pool(Some(&existing), "pool-a", body).unwrap();
        assert_eq!(merged.filter, "CN == 'b'");
        assert_eq!(merged.acls, existing.acls);
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let body = parse_body(br#"{"filtre":"x"}"#).unwrap();
        let e = merge_pool(Some(&pool()), "pool-a", body).unwrap_err();
        assert_eq!(e.errors[0].pointer.as_deref(), Some("/filtre"));
        let body = parse_body(br#"{"display_name":"x"}"#).unwrap();
        let e = merge_pool(None, "pool-b", body).unwrap_err();
        assert_eq!(e.errors[0].pointer.as_deref(), Some("/external_identifier"));
        let body = parse_body(br#"{"id":"pool-other"}"#).unwrap();
        let e = merge_pool(Some(&pool()), "pool-a", body).unwrap_err();
        assert_eq!(e.errors[0].pointer.as_deref(), Some("/id"));
    }

    #[test]
    fn a_pool_resource_has_confluents_fields() {
        let v = pool_json("op-1", &pool(), &Urls::new(Some("127.0.0.1:9644")));
        assert_eq!(v["api_version"], "iam/v2");
        assert_eq!(v["kind"], "CertificateIdentityPool");
        assert_eq!(v["principal"], "User:pool-a");
        assert_eq!(v["state"], "ENABLED");
        assert_eq!(
            v["metadata"]["self"],
            "http://127.0.0.1:9644/iam/v2/certificate-authorities/op-1/identity-pools/pool-a"
        );
    }

    #[test]
    fn generated_ids_have_the_prefix_and_avoid_taken_ones() {
        let id = generate_id("op-", &HashSet::new());
        assert!(id.starts_with("op-") && id.len() == 11, "{id}");
        assert!(id[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
