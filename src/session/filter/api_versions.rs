//! The broker's ApiVersions answer narrowed to what the proxy decodes and forwards: each API's
//! range intersected with the proxy's table, SASL and delegation-token APIs removed, Produce and
//! Fetch capped (see [`crate::kafka::versions`]).

use kafka_protocol::messages::ApiVersionsResponse;

use super::{Response, ResponseFilter};
use crate::kafka::api_versions::narrow_to_proxy_table;
use crate::kafka::{ApiKey, ResponseBody};
use crate::session::end::{SessionEnd, UpstreamFault};

/// See the module documentation.
pub(crate) struct ApiVersionsTable;

impl ResponseFilter for ApiVersionsTable {
    fn wants(&self, api_key: ApiKey, _api_version: i16) -> bool {
        api_key == ApiKey::API_VERSIONS
    }

    fn on_response(&self, response: &mut Response) -> Result<(), SessionEnd> {
        let version = response.api_version;
        let body = response.body().map_err(UpstreamFault::Protocol)?;
        let body = ApiVersionsResponse::of(body).map_err(UpstreamFault::Protocol)?;
        narrow_to_proxy_table(version, body).map_err(UpstreamFault::Protocol)?;
        response.mark_changed();
        Ok(())
    }
}
