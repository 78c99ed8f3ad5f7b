//! The filter chain: what the proxy does to Kafka frames between the client and the broker.
//!
//! Each filter declares which requests or responses it wants (a cheap test on the api key and
//! version, made for every frame); a frame no filter wants passes as the bytes it came as. The
//! order is fixed and visible here:
//!
//! Requests, client → broker ([`RequestChain`]):
//! 1. [`local::LocalAnswers`]: requests the proxy answers itself — an ApiVersions newer than
//!    the proxy knows (KIP-511) and SASL on the mTLS listener (refused, then closed).
//! 2. [`acl::AclFilter`]: proxy ACLs — forward, narrow (and patch the answer), answer locally,
//!    or refuse.
//!
//! Responses, broker → client ([`ResponseChain`]), decoded at most once
//! ([`response::Response`]) and encoded again only when a filter changed something:
//! 1. [`api_versions::ApiVersionsTable`]: the ApiVersions answer narrowed to what the proxy
//!    decodes and forwards.
//! 2. [`rewrite::AddressRewrite`]: every broker address replaced by the proxy's own (Metadata,
//!    FindCoordinator, DescribeCluster, KIP-951 node endpoints).
//! 3. The request's own patch, when a request filter narrowed the request (proxy ACLs).
//!
//! A new filter (quotas, topic prefixes) is one file implementing [`RequestFilter`] or
//! [`ResponseFilter`] and one line in the chain below; it is tested with the wire-frame harness
//! the ACL tests use.

pub(crate) mod acl;
pub(crate) mod api_versions;
pub(crate) mod local;
pub(crate) mod response;
pub(crate) mod rewrite;
#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::acl::ResponsePatch;
use crate::kafka::ApiKey;
use crate::kafka::header::RequestHeader;
use crate::session::end::SessionEnd;

pub(crate) use response::Response;

/// One client request on its way through the request filters.
pub(crate) struct Request<'a> {
    pub header: &'a RequestHeader,
    /// The frame to forward: the client's, or a filter's narrowed copy.
    pub frame: Bytes,
    /// What to change in the broker's answer (a filter narrowed the request).
    pub patch: Option<ResponsePatch>,
}

/// What a request filter decided.
pub(crate) enum Flow {
    /// Hand the request to the next filter (and, after the last, to the broker).
    Continue,
    /// The proxy answers itself; the broker never sees the request.
    Answer(Bytes),
    /// No answer is due and the broker never sees the request (an `acks=0` produce).
    Swallow,
    /// Answer, then end the session this way once the answer is written.
    AnswerAndClose(Bytes, SessionEnd),
    /// End the session, with this reason, once every earlier request is answered.
    Refuse(String),
}

/// A filter on client requests.
pub(crate) trait RequestFilter: Send {
    /// Whether this filter looks at `header`'s request at all (made for every frame).
    fn wants(&self, header: &RequestHeader) -> bool;
    /// Decide about one request the filter wants.
    fn on_request(&mut self, request: &mut Request<'_>) -> Result<Flow, SessionEnd>;
}

/// A filter on broker responses.
pub(crate) trait ResponseFilter: Send + Sync {
    /// Whether this filter changes answers of this api key and version (made for every frame).
    fn wants(&self, api_key: ApiKey, api_version: i16) -> bool;
    /// Change one answer the filter wants.
    fn on_response(&self, response: &mut Response) -> Result<(), SessionEnd>;
}

/// The request filters of one session, in order.
pub(crate) struct RequestChain<'a> {
    filters: Vec<Box<dyn RequestFilter + 'a>>,
}

/// What to do with a request after the chain.
pub(crate) enum Decision {
    Forward {
        frame: Bytes,
        patch: Option<ResponsePatch>,
    },
    Answer(Bytes),
    Swallow,
    AnswerAndClose(Bytes, SessionEnd),
    Refuse(String),
}

impl<'a> RequestChain<'a> {
    pub fn new(local: local::LocalAnswers, acl: Option<acl::AclFilter<'a>>) -> Self {
        let mut filters: Vec<Box<dyn RequestFilter + 'a>> = vec![Box::new(local)];
        if let Some(acl) = acl {
            filters.push(Box::new(acl));
        }
        Self { filters }
    }

    /// Whether any filter wants `header`'s request (if none does, its bytes pass untouched).
    pub fn wants(&self, header: &RequestHeader) -> bool {
        self.filters.iter().any(|f| f.wants(header))
    }

    /// Run `frame` through every filter that wants it.
    pub fn on_request(
        &mut self,
        header: &RequestHeader,
        frame: Bytes,
    ) -> Result<Decision, SessionEnd> {
        let mut request = Request {
            header,
            frame,
            patch: None,
        };
        for filter in &mut self.filters {
            if !filter.wants(header) {
                continue;
            }
            match filter.on_request(&mut request)? {
                Flow::Continue => {}
                Flow::Answer(frame) => return Ok(Decision::Answer(frame)),
                Flow::Swallow => return Ok(Decision::Swallow),
                Flow::AnswerAndClose(frame, end) => {
                    return Ok(Decision::AnswerAndClose(frame, end));
                }
                Flow::Refuse(reason) => return Ok(Decision::Refuse(reason)),
            }
        }
        Ok(Decision::Forward {
            frame: request.frame,
            patch: request.patch,
        })
    }
}

/// The response filters, in order; shared by every session of a generation.
pub(crate) struct ResponseChain {
    filters: Vec<Box<dyn ResponseFilter>>,
}

impl ResponseChain {
    pub fn new(rewrite: rewrite::AddressRewrite) -> Self {
        Self {
            filters: vec![Box::new(api_versions::ApiVersionsTable), Box::new(rewrite)],
        }
    }

    /// Whether any filter, or the request's own patch, wants this answer decoded.
    pub fn wants(&self, api_key: ApiKey, api_version: i16, patched: bool) -> bool {
        patched || self.filters.iter().any(|f| f.wants(api_key, api_version))
    }

    /// Run an answer through every filter that wants it, then the request's own patch.
    pub fn on_response(
        &self,
        response: &mut Response,
        patch: Option<ResponsePatch>,
    ) -> Result<(), SessionEnd> {
        for filter in &self.filters {
            if filter.wants(response.api_key, response.api_version) {
                filter.on_response(response)?;
            }
        }
        if let Some(patch) = patch {
            response.apply(patch)?;
        }
        Ok(())
    }
}
