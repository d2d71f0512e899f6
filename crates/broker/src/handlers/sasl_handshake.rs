//! SaslHandshake (key 17): the client names the SASL mechanism it will
//! authenticate with and hears the enabled ones (`sasl.enabled.mechanisms`).
//! Only v1 is served: v0 means the tokens follow as raw frames outside
//! Kafka's request envelope, which no current client sends. v0 is still
//! advertised, as Kafka does, because librdkafka (kcat's 2.0.2 at least)
//! derives its "SASL handshake supported" feature from a range that
//! includes v0 and otherwise refuses to authenticate at all; a v0 request
//! closes the connection.

use super::{str_bytes, ApiSupport};
use crate::security::ConnectionAuth;
use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, ResponseKind, SaslHandshakeRequest, SaslHandshakeResponse};

pub(crate) const API: ApiSupport = ApiSupport {
    key: ApiKey::SaslHandshake,
    min: 0,
    min_implemented: 1,
    max: 1,
};

pub(crate) fn handle(
    state: &BrokerState,
    request: SaslHandshakeRequest,
    auth: &mut ConnectionAuth,
) -> ResponseKind {
    let outcome = auth.handshake(&state.sasl, &request.mechanism);
    ResponseKind::SaslHandshake(
        SaslHandshakeResponse::default()
            .with_error_code(outcome.error_code)
            .with_mechanisms(outcome.mechanisms.into_iter().map(str_bytes).collect()),
    )
}
