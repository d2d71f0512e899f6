//! ApiVersions (key 18): the table of APIs and versions this broker serves,
//! and (v3+, KIP-584/KIP-1022) its features:
//! - `transaction.version`: supported 0-2 and finalized at 2, which tells
//!   Kafka 4 Java clients to use transactions v2 (KIP-890 part 2). As in
//!   Kafka, the API ranges do not depend on it: clients that do not know
//!   the feature (librdkafka, kafka-python) keep the v1 path, and the
//!   broker tells the versions apart by request version.
//! - `group.version`: supported 0-1 and finalized at 1, the KIP-848
//!   consumer group protocol this broker serves (Kafka's tools read it).

use super::{str_bytes, ApiSupport, APIS};
use crate::state::BrokerState;
use crate::txn::{TRANSACTION_VERSION_FEATURE, TV2};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::ApiVersions, 0, 4);

/// KIP-848's feature: level 1 enables the consumer group protocol.
const GROUP_VERSION_FEATURE: &str = "group.version";

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

/// Features are in the response from v3. Below v4 a supported feature
/// whose minimum level is 0 is left out, as Kafka does (KAFKA-17492: older
/// clients fail to parse a 0 minimum); finalized levels of 0 are never
/// listed. The epoch is the metadata offset, as in KRaft.
fn add_features(response: &mut ApiVersionsResponse, state: &BrokerState, version: i16) {
    // (name, highest supported level, finalized level); all supported from 0.
    let features = [
        (TRANSACTION_VERSION_FEATURE, TV2, TV2),
        (GROUP_VERSION_FEATURE, 1, 1),
    ];
    if version >= 4 {
        response.supported_features = features
            .iter()
            .map(|&(name, max, _)| {
                SupportedFeatureKey::default()
                    .with_name(str_bytes(name))
                    .with_min_version(0)
                    .with_max_version(max)
            })
            .collect();
    }
    response.finalized_features = features
        .iter()
        .map(|&(name, _, level)| {
            FinalizedFeatureKey::default()
                .with_name(str_bytes(name))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    response.finalized_features_epoch = i64::try_from(state.image().offset).unwrap_or(i64::MAX);
}

pub(crate) fn handle(
    state: &BrokerState,
    request: &ApiVersionsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = ApiVersionsResponse::default().with_api_keys(api_table());
    if version >= 3 {
        add_features(&mut response, state, version);
    }
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
