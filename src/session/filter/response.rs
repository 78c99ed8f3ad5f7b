//! One broker answer on its way through the response filters.

use bytes::Bytes;

use crate::acl::ResponsePatch;
use crate::kafka::rewrite::BrokerAddress;
use crate::session::end::{SessionEnd, UpstreamFault};

/// A broker answer to a client request, and what the filters learned from it.
pub(crate) struct Response {
    pub api_key: i16,
    pub api_version: i16,
    frame: Bytes,
    /// Brokers the answer named, as the upstream advertised them: the session learns their
    /// addresses and makes sure the proxy serves them before the answer leaves.
    pub brokers_named: Vec<BrokerAddress>,
}

impl Response {
    pub fn new(api_key: i16, api_version: i16, frame: Bytes) -> Self {
        Self {
            api_key,
            api_version,
            frame,
            brokers_named: Vec::new(),
        }
    }

    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    pub fn replace(&mut self, frame: Bytes) {
        self.frame = frame;
    }

    /// Apply what a request filter asked to change in this answer.
    pub fn apply(&mut self, patch: ResponsePatch) -> Result<(), SessionEnd> {
        let frame = std::mem::take(&mut self.frame);
        self.frame = patch(frame).map_err(UpstreamFault::Patch)?;
        Ok(())
    }

    /// The frame to send to the client.
    pub fn into_frame(self) -> Bytes {
        self.frame
    }
}
