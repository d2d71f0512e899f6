//! The client's half of a SCRAM-SHA-256/512 exchange (RFC 5802, RFC 7677):
//! the messages a client sends and the checks it makes on the server's,
//! including the server's signature, so a server that does not know the
//! password cannot pretend it does. Pure computation: the caller carries
//! the messages (SaslAuthenticate, or raw frames). Shared by sluice-client
//! and by brokers logging in to each other.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    /// Hi(password, salt, iterations) of RFC 5802: PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
                out
            }
            ScramHash::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
                out
            }
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// The client's half of one SCRAM exchange.
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// AuthMessage and SaltedPassword, once the server-first is in.
    proof_inputs: Option<(String, Vec<u8>)>,
}

impl ScramClient {
    /// An exchange for `username` with a fresh random nonce.
    pub fn new(hash: ScramHash, username: &str, password: &str) -> ScramClient {
        let nonce_bytes: [u8; 24] = rand::random();
        Self::with_nonce(hash, username, password, BASE64.encode(nonce_bytes))
    }

    fn with_nonce(hash: ScramHash, username: &str, password: &str, nonce: String) -> ScramClient {
        let user = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            hash,
            password: password.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce,
            proof_inputs: None,
        }
    }

    /// The client-first message (no channel binding).
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message answering `server_first`; `Err` says what
    /// is wrong with the server's message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
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
        let salted = self.hash.salted_password(&self.password, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.hash(&client_key);
        let signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.proof_inputs = Some((auth_message, salted));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message's signature.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
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
        let server_key = self.hash.hmac(salted, b"Server Key");
        let expected = self.hash.hmac(&server_key, auth_message.as_bytes());
        if claimed != expected {
            return Err(
                "the broker's SCRAM signature is wrong: it does not know the password".to_string(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, with its nonce.
    #[test]
    fn rfc_7677_example() {
        let mut client = ScramClient::with_nonce(
            ScramHash::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".to_string(),
        );
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
            let mut client = ScramClient::new(ScramHash::Sha256, "u", "p");
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
        let mut client = ScramClient::new(ScramHash::Sha512, "a,b=c", "pw");
        assert!(client.client_first_bare.starts_with("n=a=2Cb=3Dc,r="));
        assert!(client.client_final(b"r=other,s=AAAA,i=4096").is_err());
        let nonce = client.nonce.clone();
        let weak = format!("r={nonce}x,s=AAAA,i=10");
        assert!(client.client_final(weak.as_bytes()).is_err());
    }
}
