//! The broker's ApiVersions answer narrowed to what the proxy decodes and forwards: each API's
//! range intersected with the proxy's table, SASL and delegation-token APIs removed, Produce and
//! Fetch capped (see [`crate::kafka::versions`]).

use super::{Response, ResponseFilter};
use crate::kafka::versions::rewrite_api_versions_response;
use crate::session::end::{SessionEnd, UpstreamFault};

const API_VERSIONS: i16 = 18;

/// See the module documentation.
pub(crate) struct ApiVersionsTable;

impl ResponseFilter for ApiVersionsTable {
    fn wants(&self, api_key: i16, _api_version: i16) -> bool {
        api_key == API_VERSIONS
    }

    fn on_response(&self, response: &mut Response) -> Result<(), SessionEnd> {
        let narrowed = rewrite_api_versions_response(response.frame(), response.api_version)
            .map_err(UpstreamFault::Protocol)?;
        response.replace(narrowed);
        Ok(())
    }
}
