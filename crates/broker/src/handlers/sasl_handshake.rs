//! SaslHandshake (key 17): the client names the SASL mechanism it will
//! authenticate with and hears the enabled ones (`sasl.enabled.mechanisms`).
//! v1 is followed by SaslAuthenticate requests; after v0 (pre-1.0
//! clients, or ones told to speak 0.10) the mechanism's tokens follow as
//! raw length-prefixed frames outside Kafka's request envelope, answered
//! the same way, and a failure closes the connection (v0 has no error
//! message), as in Kafka's SaslServerAuthenticator.

use super::{str_bytes, ApiSupport};
use crate::security::ConnectionAuth;
use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, ResponseKind, SaslHandshakeRequest, SaslHandshakeResponse};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::SaslHandshake, 0, 1);

pub(crate) fn handle(
    state: &BrokerState,
    request: SaslHandshakeRequest,
    version: i16,
    auth: &mut ConnectionAuth,
) -> ResponseKind {
    let outcome = auth.handshake(&state.sasl, &request.mechanism, version == 0);
    ResponseKind::SaslHandshake(
        SaslHandshakeResponse::default()
            .with_error_code(outcome.error_code)
            .with_mechanisms(outcome.mechanisms.into_iter().map(str_bytes).collect()),
    )
}
