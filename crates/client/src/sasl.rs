//! The client side of a SASL login (SaslHandshake v1, then SaslAuthenticate):
//! PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), checking
//! the broker's signature so a broker that does not know the password
//! cannot pretend it does.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use sluice_protocol::kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result};
use crate::scram_admin::ScramMechanism;
use crate::security::{SaslLogin, SaslMechanism};

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
            let mut exchange = ScramClient::new(mechanism, &login.username, &login.password);
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

/// The client's half of one SCRAM exchange.
struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// AuthMessage and SaltedPassword, once the server-first is in.
    proof_inputs: Option<(String, Vec<u8>)>,
}

impl ScramClient {
    fn new(mechanism: ScramMechanism, username: &str, password: &str) -> ScramClient {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = BASE64.encode(nonce_bytes);
        let user = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce,
            proof_inputs: None,
        }
    }

    fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    fn client_final(&mut self, server_first: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the server-first message is not UTF-8".to_string())?;
        let attribute = |name: char| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| format!("the server-first message lacks '{name}='"))
        };
        let nonce = attribute('r')?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the broker's nonce does not extend ours".to_string());
        }
        let salt = BASE64
            .decode(attribute('s')?)
            .map_err(|_| "the salt is not base64".to_string())?;
        let iterations: u32 = attribute('i')?
            .parse()
            .ok()
            .filter(|i| *i >= 4096)
            .ok_or_else(|| "the iteration count is missing or below 4096".to_string())?;
        let salted = self
            .mechanism
            .salted_password(&self.password, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = hmac(self.mechanism, &salted, b"Client Key");
        let stored_key = hash(self.mechanism, &client_key);
        let signature = hmac(self.mechanism, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.proof_inputs = Some((auth_message, salted));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    fn verify_server_final(&self, server_final: &[u8]) -> std::result::Result<(), String> {
        let (auth_message, salted) = self
            .proof_inputs
            .as_ref()
            .ok_or_else(|| "server-final before server-first".to_string())?;
        let text = std::str::from_utf8(server_final).unwrap_or_default();
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("the broker refused the login: {e}"));
        }
        let claimed = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or_else(|| "the server-final message has no signature".to_string())?;
        let server_key = hmac(self.mechanism, salted, b"Server Key");
        let expected = hmac(self.mechanism, &server_key, auth_message.as_bytes());
        if claimed != expected {
            return Err(
                "the broker's SCRAM signature is wrong: it does not know the password".to_string(),
            );
        }
        Ok(())
    }
}

fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, with its nonce.
    #[test]
    fn rfc_7677_example() {
        let mut client = ScramClient::new(ScramMechanism::Sha256, "user", "pencil");
        client.nonce = "rOprNGfwEbeRWgbNEkqO".to_string();
        client.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".to_string();
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = client.client_final(server_first).unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_ok());
        assert!(client
            .verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
    }

    proptest::proptest! {
        /// A hostile broker's SCRAM messages are refused, never a panic.
        #[test]
        fn hostile_server_messages_never_panic(
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            last in "(v=|e=)?[A-Za-z0-9+/=,]{0,60}",
        ) {
            let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p");
            let _ = client.client_final(&first);
            let nonce = client.nonce.clone();
            let near = format!("r={nonce}x,s=AAAA,i=4096");
            if client.client_final(near.as_bytes()).is_ok() {
                let _ = client.verify_server_final(last.as_bytes());
            }
        }
    }

    #[test]
    fn a_server_first_that_does_not_extend_the_nonce_is_refused() {
        let mut client = ScramClient::new(ScramMechanism::Sha512, "a,b=c", "pw");
        assert!(client.client_first_bare.starts_with("n=a=2Cb=3Dc,r="));
        assert!(client.client_final(b"r=other,s=AAAA,i=4096").is_err());
        let nonce = client.nonce.clone();
        let weak = format!("r={nonce}x,s=AAAA,i=10");
        assert!(client.client_final(weak.as_bytes()).is_err());
    }
}
