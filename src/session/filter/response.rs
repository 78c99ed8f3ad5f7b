//! One broker answer on its way through the response filters: decoded at most once, by the
//! first filter that asks for its body, and encoded again only if a filter changed it.

use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;

use crate::acl::ResponsePatch;
use crate::kafka::rewrite::BrokerAddress;
use crate::kafka::{ApiKey, DecodedResponse, ProtocolError};
use crate::session::end::{SessionEnd, UpstreamFault};

/// A broker answer to a client request, and what the filters learned from it.
pub(crate) struct Response {
    pub api_key: ApiKey,
    pub api_version: i16,
    /// The answer as it came.
    frame: Bytes,
    /// The answer decoded, once a filter asked for its body.
    decoded: Option<DecodedResponse>,
    /// A filter changed the decoded answer: it must be encoded again.
    changed: bool,
    /// Brokers the answer named, as the upstream advertised them: the session learns their
    /// addresses and makes sure the proxy serves them before the answer leaves.
    pub brokers_named: Vec<BrokerAddress>,
}

impl Response {
    pub fn new(api_key: ApiKey, api_version: i16, frame: Bytes) -> Self {
        Self {
            api_key,
            api_version,
            frame,
            decoded: None,
            changed: false,
            brokers_named: Vec::new(),
        }
    }

    /// The decoded body; decoded on the first call only.
    pub fn body(&mut self) -> Result<&mut ResponseKind, ProtocolError> {
        let decoded = match self.decoded.take() {
            Some(decoded) => decoded,
            None => DecodedResponse::decode(self.api_key, self.api_version, &self.frame)?,
        };
        Ok(&mut self.decoded.insert(decoded).body)
    }

    /// A filter changed the body: encode it again before it leaves.
    pub fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Apply what a request filter asked to change in this answer.
    pub fn apply(&mut self, patch: ResponsePatch) -> Result<(), SessionEnd> {
        let body = self.body().map_err(UpstreamFault::Patch)?;
        if patch(body).map_err(UpstreamFault::Patch)?.is_changed() {
            self.mark_changed();
        }
        Ok(())
    }

    /// The frame to send to the client: the one that came, unless a filter changed it.
    pub fn into_frame(self) -> Result<Bytes, SessionEnd> {
        match self.decoded {
            Some(decoded) if self.changed => {
                Ok(decoded.encode().map_err(UpstreamFault::Protocol)?)
            }
            _ => Ok(self.frame),
        }
    }
}
