//! A blocking HTTP client for the admin API (ureq: the admin server speaks plain HTTP/1.1).

use std::time::Duration;

use serde_json::Value;

/// How long one call may take in all: a write waits for the proxy's reload.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call did not produce an answer from the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The API refused: every `detail` of its `errors`.
    #[error("{}", details.join("\n"))]
    Refused { status: u16, details: Vec<String> },
    #[error("the admin API at {url} answered {status} with a body that is not JSON: {body}")]
    NotJson {
        url: String,
        status: u16,
        body: String,
    },
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `base`: e.g. `http://127.0.0.1:9644`; `token`: sent as a bearer token when present.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Self {
            agent,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call("DELETE", path, None)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let body = body.map(Value::to_string).unwrap_or_default();
        let result = match method {
            "GET" | "DELETE" => {
                let mut req = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.call()
            }
            _ => {
                let mut req = if method == "POST" {
                    self.agent.post(&url)
                } else {
                    self.agent.patch(&url)
                };
                if let Some(auth) = &auth {
                    req = req.header("Authorization", auth);
                }
                req.header("Content-Type", "application/json")
                    .send(body.as_bytes())
            }
        };
        let mut response = result.map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Unreachable {
                url: url.clone(),
                reason: format!("reading the answer: {e}"),
            })?;
        if status == 204 {
            return Ok(Value::Null);
        }
        let json: Value = serde_json::from_str(&text).map_err(|_| ClientError::NotJson {
            url: url.clone(),
            status,
            body: text.chars().take(200).collect(),
        })?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let details = json["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["detail"].as_str().unwrap_or("(no detail)").to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| vec![format!("HTTP {status}: {json}")]);
        Err(ClientError::Refused { status, details })
    }
}
