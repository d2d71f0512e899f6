//! The client side of a SASL login (SaslHandshake v1, then SaslAuthenticate):
//! PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), checking
//! the broker's signature so a broker that does not know the password
//! cannot pretend it does.

use sluice_protocol::kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result};
use crate::security::{SaslLogin, SaslMechanism};
use sluice_protocol::scram::ScramClient;

/// Logs `conn` in as `login`.
pub(crate) async fn login(conn: &Connection, login: &SaslLogin) -> Result<()> {
    let handshake = conn
        .call_capped(
            SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
            1,
        )
        .await?;
    if handshake.error_code != 0 {
        let enabled: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(Error::Kafka(
            KafkaError::new(
                handshake.error_code,
                Some(format!("the broker offers {}", enabled.join(", "))),
            )
            .on(format!(
                "SASL mechanism {} on {}",
                login.mechanism.name(),
                conn.addr()
            )),
        ));
    }
    match login.mechanism {
        SaslMechanism::Plain => {
            let token = format!("\0{}\0{}", login.username, login.password);
            authenticate(conn, token.into_bytes()).await?;
            Ok(())
        }
        SaslMechanism::Scram(mechanism) => {
            let mut exchange = ScramClient::new(mechanism.hash(), &login.username, &login.password);
            let server_first = authenticate(conn, exchange.client_first()).await?;
            let client_final = exchange
                .client_final(&server_first)
                .map_err(|e| auth_error(conn, e))?;
            let server_final = authenticate(conn, client_final).await?;
            exchange
                .verify_server_final(&server_final)
                .map_err(|e| auth_error(conn, e))
        }
    }
}

fn auth_error(conn: &Connection, why: String) -> Error {
    Error::Authentication {
        addr: conn.addr().to_string(),
        message: why,
    }
}

/// One SaslAuthenticate round: the broker's reply token, or its error.
async fn authenticate(conn: &Connection, token: Vec<u8>) -> Result<Vec<u8>> {
    let response = conn
        .call(SaslAuthenticateRequest::default().with_auth_bytes(token.into()))
        .await?;
    if response.error_code != 0 {
        return Err(Error::Kafka(
            KafkaError::new(
                response.error_code,
                response.error_message.map(|m| m.to_string()),
            )
            .on(format!("SASL login on {}", conn.addr())),
        ));
    }
    Ok(response.auth_bytes.to_vec())
}
