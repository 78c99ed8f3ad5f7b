//! The IAM API's error body, Confluent's shape:
//! `{"errors":[{"status":"400","detail":"...","source":{"pointer":"/filter"}}]}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::Issue;

/// One entry of `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorObject {
    pub status: u16,
    pub detail: String,
    /// JSON pointer to the request field at fault (`/certificate_chain`), when there is one.
    pub pointer: Option<String>,
}

/// A refused request: its HTTP status and every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<ErrorObject>,
    /// `WWW-Authenticate` for a 401.
    challenge: bool,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![ErrorObject {
                status,
                detail: detail.into(),
                pointer: None,
            }],
            challenge: status == 401,
        }
    }

    /// A 4xx about one request field.
    pub fn field(status: u16, field: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(status, detail);
        e.errors[0].pointer = Some(format!("/{field}"));
        e
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(404, format!("{what} `{id}` does not exist"))
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, detail)
    }

    /// Several reasons; the status is theirs when they agree, else 400.
    pub fn many(errors: Vec<ErrorObject>) -> Self {
        let status = match errors.first() {
            Some(first) if errors.iter().all(|e| e.status == first.status) => first.status,
            Some(_) => 400,
            None => 500,
        };
        Self {
            status,
            errors,
            challenge: false,
        }
    }

    pub fn body(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                let mut v = json!({ "status": e.status.to_string(), "detail": e.detail });
                if let Some(pointer) = &e.pointer {
                    v["source"] = json!({ "pointer": pointer });
                }
                v
            })
            .collect();
        json!({ "errors": errors })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body().to_string(),
        )
            .into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kafka-mtls-proxy admin\""),
            );
        }
        response
    }
}

/// Where in the configuration the resource being written lives, to turn a configuration
/// [`Issue`]'s field path into the request field it is about.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// `certificate_authorities[ca]`.
    Ca(usize),
    /// `certificate_authorities[ca].identity_pools[pool]`.
    Pool(usize, usize),
    /// The change has no single resource (a deletion).
    Whole,
}

/// Map configuration issues to API errors: an issue about the resource being written names
/// its request field (`certificate_authorities[2].identity_pools[0].filter` → `/filter`) and
/// is a 400, or a 409 for an id already taken; any other issue (a quota, the last CA removed,
/// a problem elsewhere in the file) is a 409 naming the configuration field. `renamed`: file
/// paths the API made up, shown as the request field they came from.
pub fn from_issues(issues: &[Issue], scope: Scope, renamed: &[(String, String)]) -> ApiError {
    let prefix = match scope {
        Scope::Ca(i) => Some(format!("certificate_authorities[{i}].")),
        Scope::Pool(i, j) => Some(format!("certificate_authorities[{i}].identity_pools[{j}].")),
        Scope::Whole => None,
    };
    let mut errors: Vec<ErrorObject> = issues
        .iter()
        .map(|issue| {
            let mut reason = issue.reason.clone();
            for (path, field) in renamed {
                reason = reason
                    .replace(&format!("{path}: "), "")
                    .replace(path.as_str(), field);
            }
            let own_field = prefix
                .as_deref()
                .and_then(|p| issue.field.strip_prefix(p))
                .map(|rest| rest.split(['.', '[']).next().unwrap_or(rest).to_string())
                // A CA's pools are not a field of the CA resource.
                .filter(|f| f != "identity_pools");
            match own_field {
                Some(field) => ErrorObject {
                    status: if field == "id" && reason.contains("duplicate") {
                        409
                    } else {
                        400
                    },
                    detail: format!("{field}: {reason}"),
                    pointer: Some(format!("/{field}")),
                },
                None => ErrorObject {
                    status: 409,
                    detail: format!(
                        "the configuration would not load: {}: {reason}",
                        issue.field
                    ),
                    pointer: None,
                },
            }
        })
        .collect();
    // The request's own fields first: they are what the caller can fix in this request.
    errors.sort_by_key(|e| e.pointer.is_none());
    ApiError::many(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(field: &str, reason: &str) -> Issue {
        Issue {
            field: field.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn issues_of_the_written_resource_name_its_field() {
        let e = from_issues(
            &[issue(
                "certificate_authorities[1].identity_pools[3].filter",
                "syntax error at line 1, column 4",
            )],
            Scope::Pool(1, 3),
            &[],
        );
        assert_eq!(e.status, 400);
        assert_eq!(e.errors[0].pointer.as_deref(), Some("/filter"));
        let body = e.body();
        assert_eq!(body["errors"][0]["status"], "400");
        assert_eq!(body["errors"][0]["source"]["pointer"], "/filter");
    }

    #[test]
    fn other_issues_are_conflicts_naming_the_configuration_field() {
        let e = from_issues(
            &[issue(
                "certificate_authorities[0].identity_pools",
                "3 pools exceed limits.pools_per_ca (2)",
            )],
            Scope::Pool(0, 2),
            &[],
        );
        assert_eq!(e.status, 409);
        assert_eq!(e.errors[0].pointer, None);
        assert!(e.errors[0].detail.contains("limits.pools_per_ca"));
    }

    #[test]
    fn made_up_paths_are_shown_as_the_request_field() {
        let e = from_issues(
            &[issue(
                "certificate_authorities[0].certificate_chain",
                "/x/cas/op-1.abc.pem: holds 5 certificates",
            )],
            Scope::Ca(0),
            &[("/x/cas/op-1.abc.pem".into(), "the certificate chain".into())],
        );
        assert_eq!(
            e.errors[0].detail,
            "certificate_chain: holds 5 certificates"
        );
    }
}
