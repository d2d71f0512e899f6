//! SaslAuthenticate (key 36): one token of the SASL exchange that
//! SaslHandshake began. v1 adds the session lifetime
//! (`connections.max.reauth.ms`, KIP-368), v2 is flexible. A failed login
//! is answered after `connection.failed.authentication.delay.ms`, and the
//! connection then closes, as in Kafka, so guessing passwords is slow; an
//! address past `sasl.failed.authentications.per.ip.per.minute` is refused
//! without its credentials being checked.

use super::{str_bytes, ApiSupport, Reply};
use crate::security::{AuthenticateOutcome, ConnectionAuth};
use crate::state::BrokerState;
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
};
use sluice_protocol::error;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::SaslAuthenticate, 0, 2);

pub(crate) async fn handle(
    state: &BrokerState,
    request: SaslAuthenticateRequest,
    auth: &mut ConnectionAuth,
    client_host: &str,
) -> Reply {
    let (outcome, delay) =
        authenticate(state, auth, request.auth_bytes.to_vec(), client_host).await;
    let response = ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(outcome.error_code)
            .with_error_message(outcome.error_message.map(str_bytes))
            .with_auth_bytes(Bytes::from(outcome.auth_bytes))
            .with_session_lifetime_ms(outcome.session_lifetime_ms),
    );
    match delay {
        Some(delay) => Reply::Later(Box::pin(async move {
            tokio::time::sleep(delay).await;
            response
        })),
        None => Reply::Now(Box::new(response)),
    }
}

/// Runs one SASL token, from a SaslAuthenticate request or a raw frame
/// after SaslHandshake v0: the outcome, and how long to hold a failure's
/// answer (`connection.failed.authentication.delay.ms`).
pub(crate) async fn authenticate(
    state: &BrokerState,
    auth: &mut ConnectionAuth,
    token: Vec<u8>,
    client_host: &str,
) -> (AuthenticateOutcome, Option<Duration>) {
    let address: Option<IpAddr> = client_host.trim_start_matches('/').parse().ok();
    let now = Instant::now();
    let outcome = match address {
        Some(address) if state.failed_logins.locked_out(address, now) => auth.refuse_locked_out(),
        _ => {
            auth.authenticate(&state.sasl, state.image(), token, client_host)
                .await
        }
    };
    let failed = outcome.error_code == error::SASL_AUTHENTICATION_FAILED;
    if let (true, Some(address)) = (failed, address) {
        state.failed_logins.record(address, now);
    }
    let delay = state.broker_i64("connection.failed.authentication.delay.ms");
    let delay = (failed && delay > 0).then(|| Duration::from_millis(delay as u64));
    (outcome, delay)
}
