//! Broker-address rewriting as a response filter: clients only ever learn proxy addresses.
//!
//! Metadata, FindCoordinator, DescribeCluster, and the KIP-951 node endpoints of Produce v10+
//! and Fetch v16+ (see [`crate::kafka::rewrite`]). The brokers an answer names are recorded in
//! the [`Response`]: the session learns their upstream addresses and makes sure the proxy
//! listens for each before the answer reaches the client that will dial it.

use std::sync::Arc;

use super::{Response, ResponseFilter};
use crate::kafka::rewrite::{
    AddressMapper, check_supported, response_needs_rewrite, rewrite_addresses,
};
use crate::kafka::{ApiKey, ProtocolError};
use crate::session::end::{SessionEnd, UpstreamFault};

/// See the module documentation.
pub(crate) struct AddressRewrite {
    mapper: Arc<dyn AddressMapper + Send + Sync>,
}

impl AddressRewrite {
    pub fn new(mapper: Arc<dyn AddressMapper + Send + Sync>) -> Self {
        Self { mapper }
    }
}

/// A broker the proxy has no port for is the rewrite's failure; anything else, the broker's.
fn fault(e: ProtocolError) -> SessionEnd {
    match e {
        ProtocolError::UnmappedBroker { .. } => UpstreamFault::Rewrite(e).into(),
        e => UpstreamFault::Protocol(e).into(),
    }
}

impl ResponseFilter for AddressRewrite {
    fn wants(&self, api_key: ApiKey, api_version: i16) -> bool {
        api_key != ApiKey::API_VERSIONS && response_needs_rewrite(api_key, api_version)
    }

    fn on_response(&self, response: &mut Response) -> Result<(), SessionEnd> {
        let (api_key, version) = (response.api_key, response.api_version);
        // A version beyond the proxy's table is never decoded.
        check_supported(api_key, version).map_err(fault)?;
        let body = response.body().map_err(fault)?;
        let changes =
            rewrite_addresses(api_key, version, body, self.mapper.as_ref()).map_err(fault)?;
        if changes.changed {
            response.mark_changed();
        }
        response.brokers_named = changes.upstream_brokers;
        Ok(())
    }
}
