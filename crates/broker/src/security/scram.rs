//! SCRAM-SHA-256 and SCRAM-SHA-512, server side (RFC 5802, RFC 7677), as
//! Kafka speaks them: client-first, server-first, client-final with the
//! client's proof, server-final with ours. No channel binding (`n,,` or
//! `y,,` only). Every comparison of secret-derived bytes is constant time.
//!
//! A user without a credential gets a server-first like anyone else (a
//! salt derived from the user name and a per-broker secret, so it is the
//! same on every try) and fails at client-final, so the exchange does not
//! tell which users exist.

use super::AuthFailure;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use sluice_metadata::{ScramCredential, ScramMechanism};
use subtle::ConstantTimeEq;

/// HMAC(key, data) with the mechanism's hash.
pub(crate) fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn mac<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match mechanism {
        ScramMechanism::Sha256 => mac::<Hmac<Sha256>>(key, data),
        ScramMechanism::Sha512 => mac::<Hmac<Sha512>>(key, data),
    }
}

/// H(data) with the mechanism's hash.
pub(crate) fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// The hash's output length: the length of every key and proof.
pub(crate) fn key_len(mechanism: ScramMechanism) -> usize {
    match mechanism {
        ScramMechanism::Sha256 => 32,
        ScramMechanism::Sha512 => 64,
    }
}

/// SaltedPassword := Hi(password, salt, i), PBKDF2 with the mechanism's HMAC.
pub(crate) fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0; key_len(mechanism)];
    match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
        }
    }
    out
}

/// The stored credential for a salted password (what
/// AlterUserScramCredentials carries): StoredKey := H(ClientKey) and
/// ServerKey, with ClientKey := HMAC(SaltedPassword, "Client Key").
pub(crate) fn credential_from_salted(
    mechanism: ScramMechanism,
    salt: &[u8],
    salted_password: &[u8],
    iterations: u32,
) -> ScramCredential {
    let client_key = hmac(mechanism, salted_password, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted_password, b"Server Key"),
        iterations,
    }
}

/// The stored credential for a password, with a fresh random salt.
pub(crate) fn credential_from_password(
    mechanism: ScramMechanism,
    password: &str,
    iterations: u32,
) -> ScramCredential {
    let salt = random_bytes(32);
    let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations);
    credential_from_salted(mechanism, &salt, &salted, iterations)
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Constant-time equality of two byte strings (their lengths are public).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The iterations and salt shown for a user who has no credential.
pub(crate) fn decoy_credential(
    mechanism: ScramMechanism,
    secret: &[u8],
    user: &str,
) -> ScramCredential {
    let mut salt = hmac(mechanism, secret, user.as_bytes());
    salt.truncate(32);
    ScramCredential {
        salt,
        stored_key: Vec::new(),
        server_key: Vec::new(),
        iterations: mechanism.min_iterations(),
    }
}

/// A parsed client-first message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientFirst {
    /// "n,," or "y,," (with an authzid between the commas if one was sent).
    pub(crate) gs2_header: String,
    /// client-first-message-bare, as sent: part of the AuthMessage.
    pub(crate) bare: String,
    pub(crate) username: String,
    pub(crate) nonce: String,
}

fn malformed(what: &'static str) -> AuthFailure {
    AuthFailure::malformed(what)
}

/// Parses `gs2-header client-first-message-bare`.
pub(crate) fn parse_client_first(message: &[u8]) -> Result<ClientFirst, AuthFailure> {
    let text = std::str::from_utf8(message).map_err(|_| malformed("client-first is not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let cbind = parts.next().unwrap_or_default();
    let authzid_raw = parts
        .next()
        .ok_or(malformed("client-first lacks the gs2 header"))?;
    let bare = parts
        .next()
        .ok_or(malformed("client-first lacks the gs2 header"))?;
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => {
            return Err(malformed("channel binding is not supported"));
        }
        _ => {
            return Err(malformed(
                "client-first has an invalid gs2 channel binding flag",
            ))
        }
    }
    let authzid = match authzid_raw {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .ok_or(malformed("client-first has an invalid authzid"))
                .and_then(decode_saslname)?,
        ),
    };
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(malformed("client-first has a mandatory extension"));
    }
    let username = first
        .strip_prefix("n=")
        .ok_or(malformed("client-first lacks n="))
        .and_then(decode_saslname)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed("client-first lacks r="))?;
    if nonce.is_empty() || !nonce.bytes().all(is_nonce_char) {
        return Err(malformed("client-first has an invalid nonce"));
    }
    for extension in attrs {
        // Kafka's only extension: tokenauth=true asks for a delegation
        // token login, which Sluice does not have.
        let (key, value) = extension
            .split_once('=')
            .ok_or(malformed("client-first has an invalid extension"))?;
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err(malformed("delegation tokens are not supported"));
        }
    }
    if authzid.as_ref().is_some_and(|a| *a != username) {
        return Err(malformed("authzid differs from the user name"));
    }
    Ok(ClientFirst {
        gs2_header: format!("{cbind},{authzid_raw},"),
        bare: bare.to_string(),
        username,
        nonce: nonce.to_string(),
    })
}

/// printable except ',' (RFC 5802).
fn is_nonce_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

/// saslname: "=2C" is ',', "=3D" is '='; no other '=' and no ','.
fn decode_saslname(name: &str) -> Result<String, AuthFailure> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("invalid escape in a SCRAM user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("empty SCRAM user name"));
    }
    Ok(out)
}

/// A parsed client-final message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientFinal {
    pub(crate) channel_binding: Vec<u8>,
    pub(crate) nonce: String,
    /// client-final-message-without-proof: part of the AuthMessage.
    pub(crate) without_proof: String,
    pub(crate) proof: Vec<u8>,
}

pub(crate) fn parse_client_final(message: &[u8]) -> Result<ClientFinal, AuthFailure> {
    let text = std::str::from_utf8(message).map_err(|_| malformed("client-final is not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(malformed("client-final lacks p="))?;
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(malformed("client-final lacks c="))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed("client-final lacks r="))?;
    Ok(ClientFinal {
        channel_binding: BASE64
            .decode(channel_binding)
            .map_err(|_| malformed("client-final c= is not base64"))?,
        nonce: nonce.to_string(),
        without_proof: without_proof.to_string(),
        proof: BASE64
            .decode(proof)
            .map_err(|_| malformed("client-final p= is not base64"))?,
    })
}

/// The server between its server-first and the client's client-final.
pub(crate) struct ScramExchange {
    mechanism: ScramMechanism,
    username: String,
    /// `None` for a user without a credential: the exchange then fails.
    credential: Option<ScramCredential>,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    client_nonce: String,
    nonce: String,
}

impl ScramExchange {
    /// Answers a client-first message with the server-first message.
    /// `credential` is the user's stored credential for `mechanism`;
    /// `decoy_secret` makes the salt shown when there is none.
    pub(crate) fn start(
        mechanism: ScramMechanism,
        client_first: &[u8],
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
        decoy_secret: &[u8],
    ) -> Result<(ScramExchange, Vec<u8>), AuthFailure> {
        let first = parse_client_first(client_first)?;
        let credential = credential(&first.username);
        let shown = credential
            .clone()
            .unwrap_or_else(|| decoy_credential(mechanism, decoy_secret, &first.username));
        let nonce = format!("{}{}", first.nonce, BASE64.encode(random_bytes(24)));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&shown.salt),
            shown.iterations
        );
        let reply = server_first.clone().into_bytes();
        Ok((
            ScramExchange {
                mechanism,
                username: first.username,
                credential,
                gs2_header: first.gs2_header,
                client_first_bare: first.bare,
                server_first,
                client_nonce: first.nonce,
                nonce,
            },
            reply,
        ))
    }

    pub(crate) fn username(&self) -> &str {
        &self.username
    }

    /// Checks the client's proof; on success returns the server-final
    /// message (`v=` our signature).
    pub(crate) fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, AuthFailure> {
        let last = parse_client_final(client_final)?;
        if last.channel_binding != self.gs2_header.as_bytes() {
            return Err(malformed(
                "client-final channel binding differs from the gs2 header",
            ));
        }
        // librdkafka before 2.x (Debian's kcat has 2.0.2) puts its own
        // nonce once more in front of the combined one; Kafka accepted
        // that (it checked endsWith for years). Both still end in the
        // fresh server nonce, which the proof covers, so replay stays
        // impossible; nothing else is accepted.
        let doubled = format!("{}{}", self.client_nonce, self.nonce);
        if last.nonce != self.nonce && last.nonce != doubled {
            return Err(malformed("client-final nonce differs from the server's"));
        }
        let Some(credential) = self.credential else {
            return Err(AuthFailure::credentials(
                "no SCRAM credential for this user and mechanism",
            ));
        };
        let mechanism = self.mechanism;
        if last.proof.len() != key_len(mechanism) {
            return Err(malformed("client-final proof has the wrong length"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, last.without_proof
        );
        let client_signature = hmac(mechanism, &credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !ct_eq(&hash(mechanism, &client_key), &credential.stored_key) {
            return Err(AuthFailure::credentials("wrong SCRAM proof"));
        }
        let server_signature = hmac(mechanism, &credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE_PART: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = BASE64.decode(SALT).unwrap();
        let salted = salted_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        credential_from_salted(ScramMechanism::Sha256, &salt, &salted, 4096)
    }

    /// The exchange with the RFC's server nonce in place of a random one.
    fn rfc_exchange() -> ScramExchange {
        let (mut exchange, _) = ScramExchange::start(
            ScramMechanism::Sha256,
            CLIENT_FIRST.as_bytes(),
            |user| (user == "user").then(rfc_credential),
            b"secret",
        )
        .unwrap();
        exchange.nonce = format!("rOprNGfwEbeRWgbNEkqO{SERVER_NONCE_PART}");
        exchange.server_first = format!("r={},s={SALT},i=4096", exchange.nonce);
        exchange
    }

    #[test]
    fn rfc_7677_test_vector() {
        let server_final = rfc_exchange().finish(CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(server_final).unwrap(), SERVER_FINAL);
    }

    #[test]
    fn server_first_carries_the_client_nonce_salt_and_iterations() {
        let (exchange, reply) = ScramExchange::start(
            ScramMechanism::Sha256,
            CLIENT_FIRST.as_bytes(),
            |_| Some(rfc_credential()),
            b"secret",
        )
        .unwrap();
        let reply = String::from_utf8(reply).unwrap();
        assert!(reply.starts_with("r=rOprNGfwEbeRWgbNEkqO"), "{reply}");
        assert!(reply.ends_with(&format!(",s={SALT},i=4096")), "{reply}");
        assert!(exchange.nonce.len() > "rOprNGfwEbeRWgbNEkqO".len() + 20);
        assert_eq!(exchange.username(), "user");
    }

    #[test]
    fn a_wrong_proof_fails() {
        let bad = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        let failure = rfc_exchange().finish(bad.as_bytes()).unwrap_err();
        assert!(failure.bad_credentials, "{failure:?}");
    }

    #[test]
    fn a_wrong_nonce_or_channel_binding_fails() {
        let other_nonce = CLIENT_FINAL.replace("k0,p=", "k1,p=");
        assert!(rfc_exchange().finish(other_nonce.as_bytes()).is_err());
        // "eSws" is "y,," : not what the gs2 header said.
        let other_binding = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert!(rfc_exchange().finish(other_binding.as_bytes()).is_err());
    }

    #[test]
    fn an_unknown_user_gets_a_stable_decoy_salt_and_fails_at_the_end() {
        let start = |secret: &[u8]| {
            ScramExchange::start(
                ScramMechanism::Sha512,
                b"n,,n=nobody,r=abc",
                |_| None,
                secret,
            )
            .unwrap()
        };
        let salt_of = |reply: Vec<u8>| {
            String::from_utf8(reply)
                .unwrap()
                .split(",s=")
                .nth(1)
                .unwrap()
                .to_string()
        };
        let (exchange, first) = start(b"one");
        let (_, again) = start(b"one");
        let (_, other_secret) = start(b"two");
        assert_eq!(salt_of(first.clone()), salt_of(again));
        assert_ne!(salt_of(first.clone()), salt_of(other_secret));
        assert!(salt_of(first).ends_with(",i=4096"));
        let nonce = exchange.nonce.clone();
        let proof = BASE64.encode([0u8; 64]);
        let failure = exchange
            .finish(format!("c=biws,r={nonce},p={proof}").as_bytes())
            .unwrap_err();
        assert!(failure.bad_credentials);
    }

    /// A SCRAM-SHA-512 login as a client does it; `echo` makes the nonce
    /// the client sends back from (client nonce, combined nonce).
    fn sha_512_login(echo: impl Fn(&str, &str) -> String) -> Result<(), AuthFailure> {
        let mechanism = ScramMechanism::Sha512;
        let credential = credential_from_password(mechanism, "s3cret", 4096);
        let (exchange, server_first) = ScramExchange::start(
            mechanism,
            b"y,,n=al=2Cice,r=clientnonce",
            |user| (user == "al,ice").then(|| credential.clone()),
            b"k",
        )
        .unwrap();
        // The client's side of RFC 5802.
        let server_first = String::from_utf8(server_first).unwrap();
        let nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap();
        let without_proof = format!(
            "c={},r={}",
            BASE64.encode("y,,"),
            echo("clientnonce", nonce)
        );
        let auth_message = format!("n=al=2Cice,r=clientnonce,{server_first},{without_proof}");
        let salted = salted_password(mechanism, b"s3cret", &credential.salt, 4096);
        let client_key = hmac(mechanism, &salted, b"Client Key");
        let signature = hmac(
            mechanism,
            &hash(mechanism, &client_key),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_final =
            exchange.finish(format!("{without_proof},p={}", BASE64.encode(proof)).as_bytes())?;
        let expected = hmac(
            mechanism,
            &hmac(mechanism, &salted, b"Server Key"),
            auth_message.as_bytes(),
        );
        assert_eq!(
            server_final,
            format!("v={}", BASE64.encode(expected)).into_bytes()
        );
        Ok(())
    }

    #[test]
    fn sha_512_round_trip() {
        sha_512_login(|_, combined| combined.to_string()).unwrap();
    }

    #[test]
    fn librdkafka_2_0_s_doubled_client_nonce_is_accepted_and_nothing_else() {
        sha_512_login(|client, combined| format!("{client}{combined}")).unwrap();
        assert!(sha_512_login(|_, combined| format!("x{combined}")).is_err());
        assert!(sha_512_login(|_, combined| format!("{combined}x")).is_err());
    }

    #[test]
    fn client_first_parsing() {
        let first = parse_client_first(b"n,a=bob,n=bob,r=xyz,ext=1").unwrap();
        assert_eq!(first.gs2_header, "n,a=bob,");
        assert_eq!(first.bare, "n=bob,r=xyz,ext=1");
        for bad in [
            &b"p=tls-unique,,n=user,r=abc"[..],
            b"n,,n=user",
            b"n,,r=abc",
            b"n,,m=x,n=user,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user,r=a,b",
            b"n,a=eve,n=user,r=abc",
            b"n,,n=user,r=abc,tokenauth=true",
            b"x,,n=user,r=abc",
            b"n,,n=user,r=\xff",
            b"",
        ] {
            assert!(
                parse_client_first(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_client_first(&bytes);
            let _ = parse_client_final(&bytes);
            if let Ok((exchange, _)) = ScramExchange::start(
                ScramMechanism::Sha256, &bytes, |_| Some(rfc_credential()), b"k")
            {
                let _ = exchange.finish(&bytes);
            }
            let _ = rfc_exchange().finish(&bytes);
        }

        #[test]
        fn parsers_never_panic_on_near_valid_text(
            s in "[nyp]?,(a=[a-z=2C3D]{0,4})?,(n=[a-z=,]{0,5})?(,r=[ -~]{0,6})?(,[a-z]{0,3}=?[a-z]{0,3})?"
        ) {
            let _ = parse_client_first(s.as_bytes());
            let _ = parse_client_final(s.as_bytes());
            let _ = rfc_exchange().finish(s.as_bytes());
        }
    }
}
