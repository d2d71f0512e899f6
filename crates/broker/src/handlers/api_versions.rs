//! ApiVersions (key 18): the table of APIs and versions this broker serves.

use super::{ApiSupport, APIS};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ApiVersions, 0, 4);

fn api_table() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect()
}

pub(crate) fn handle(request: &ApiVersionsRequest, version: i16) -> ResponseKind {
    let mut response = ApiVersionsResponse::default().with_api_keys(api_table());
    if version >= 3 {
        // KIP-511: name and version must be non-empty and of legal characters.
        let legal = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        };
        if !legal(&request.client_software_name) || !legal(&request.client_software_version) {
            response.error_code = error::INVALID_REQUEST;
        }
    }
    ResponseKind::ApiVersions(response)
}

/// The v0 answer to an ApiVersions version this broker does not know.
pub(crate) fn unsupported_version_response() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(error::UNSUPPORTED_VERSION)
            .with_api_keys(api_table()),
    )
}
