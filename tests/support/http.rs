//! Test support shared by the admin API test binaries: an HTTP/1.1 response, parsed just
//! enough for assertions. (Each test binary uses a different part of it.)
#![allow(dead_code)]

use serde_json::Value;

/// An HTTP/1.1 response, parsed just enough for these tests.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn parse(raw: &str) -> Self {
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Assert the status; the body is in the failure message.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }

    /// The first error's (detail, pointer).
    pub fn error(&self) -> (String, Option<String>) {
        let e = &self.json()["errors"][0];
        assert_eq!(e["status"], self.status.to_string(), "{}", self.body);
        (
            e["detail"].as_str().unwrap().to_string(),
            e["source"]["pointer"].as_str().map(str::to_string),
        )
    }

    /// The names of the failed checks in a `/readyz` body.
    pub fn not_ready(&self) -> Vec<String> {
        self.json()["not_ready"]
            .as_array()
            .expect("a not_ready list")
            .iter()
            .map(|n| n["check"].as_str().unwrap().to_string())
            .collect()
    }
}
