//! Broker-address rewriting as a response filter: clients only ever learn proxy addresses.
//!
//! Metadata, FindCoordinator, DescribeCluster, and the KIP-951 node endpoints of Produce v10+
//! and Fetch v16+ (see [`crate::kafka::rewrite`]). The brokers an answer names are recorded in
//! the [`Response`]: the session learns their upstream addresses and makes sure the proxy
//! listens for each before the answer reaches the client that will dial it.

use std::sync::Arc;

use super::{Response, ResponseFilter};
use crate::kafka::ProtocolError;
use crate::kafka::rewrite::{AddressMapper, response_needs_rewrite, rewrite_response};
use crate::session::end::{SessionEnd, UpstreamFault};

const API_VERSIONS: i16 = 18;

/// See the module documentation.
pub(crate) struct AddressRewrite {
    mapper: Arc<dyn AddressMapper + Send + Sync>,
}

impl AddressRewrite {
    pub fn new(mapper: Arc<dyn AddressMapper + Send + Sync>) -> Self {
        Self { mapper }
    }
}

impl ResponseFilter for AddressRewrite {
    fn wants(&self, api_key: i16, api_version: i16) -> bool {
        api_key != API_VERSIONS && response_needs_rewrite(api_key, api_version)
    }

    fn on_response(&self, response: &mut Response) -> Result<(), SessionEnd> {
        let rewritten = rewrite_response(
            response.api_key,
            response.api_version,
            response.frame(),
            self.mapper.as_ref(),
        )
        .map_err(|e| match e {
            ProtocolError::UnmappedBroker { .. } => UpstreamFault::Rewrite(e),
            e => UpstreamFault::Protocol(e),
        })?;
        response.replace(rewritten.frame);
        response.brokers_named = rewritten.upstream_brokers;
        Ok(())
    }
}
