//! How the client secures its connections, from librdkafka-style
//! properties: `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT,
//! SASL_SSL), `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with
//! `sasl.username` and `sasl.password`, and for TLS `ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location` and
//! `ssl.endpoint.identification.algorithm` (`https`, the default, checks
//! the broker's name; `none` does not).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};
use crate::scram_admin::ScramMechanism;

/// The properties [`Security::from_properties`] understands.
pub const PROPERTIES: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
];

/// A SASL mechanism the client can log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// The mechanism's name in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }
}

/// A SASL login: mechanism, user name and password.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS and SASL settings for every connection of a client.
#[derive(Clone, Default)]
pub struct Security {
    /// The TLS client side (SSL, SASL_SSL); `None` for plaintext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The SASL login (SASL_PLAINTEXT, SASL_SSL); `None` for none.
    pub sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl Security {
    /// Plaintext, no login: Kafka's default.
    pub fn plaintext() -> Security {
        Security::default()
    }

    /// Reads librdkafka's property names. An unknown property, a missing
    /// password or an unreadable certificate is an error that says which.
    pub fn from_properties<'a>(
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Security> {
        let mut get = std::collections::BTreeMap::new();
        for (key, value) in properties {
            if !PROPERTIES.contains(&key) {
                return Err(Error::Config(format!(
                    "unknown client property '{key}' (known: {})",
                    PROPERTIES.join(", ")
                )));
            }
            let key = if key == "sasl.mechanisms" {
                "sasl.mechanism"
            } else {
                key
            };
            get.insert(key, value.trim().to_string());
        }
        let protocol = get
            .get("security.protocol")
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(Error::Config(format!(
                    "security.protocol={other}: one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                )))
            }
        };
        let mut security = Security::default();
        if tls {
            security.tls = Some(tls_config(&get)?);
        } else if let Some(key) = get.keys().find(|k| k.starts_with("ssl.")) {
            return Err(Error::Config(format!(
                "{key} is set but security.protocol={protocol} uses no TLS"
            )));
        }
        if sasl {
            let mechanism = match get.get("sasl.mechanism").map(String::as_str) {
                None | Some("PLAIN") => SaslMechanism::Plain,
                Some(name) => ScramMechanism::from_name(name)
                    .map(SaslMechanism::Scram)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "sasl.mechanism={name}: one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
                        ))
                    })?,
            };
            let field = |name: &str| {
                get.get(name).cloned().ok_or_else(|| {
                    Error::Config(format!("security.protocol={protocol} needs {name}"))
                })
            };
            security.sasl = Some(SaslLogin {
                mechanism,
                username: field("sasl.username")?,
                password: field("sasl.password")?,
            });
        } else if let Some(key) = get.keys().find(|k| k.starts_with("sasl.")) {
            return Err(Error::Config(format!(
                "{key} is set but security.protocol={protocol} has no SASL login"
            )));
        }
        Ok(security)
    }
}

fn tls_config(get: &std::collections::BTreeMap<&str, String>) -> Result<Arc<rustls::ClientConfig>> {
    let read = |key: &str, path: &str| {
        std::fs::read(path).map_err(|e| Error::Config(format!("{key} {path}: {e}")))
    };
    let ca = get.get("ssl.ca.location").ok_or_else(|| {
        Error::Config(
            "TLS needs ssl.ca.location: the PEM certificate(s) of the CA that signed the broker's"
                .to_string(),
        )
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read("ssl.ca.location", ca)?) {
        let cert =
            cert.map_err(|e| Error::Config(format!("ssl.ca.location {ca}: unreadable PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("ssl.ca.location {ca}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Config(format!(
            "ssl.ca.location {ca}: no PEM certificate"
        )));
    }
    let verify_name = match get
        .get("ssl.endpoint.identification.algorithm")
        .map(String::as_str)
    {
        None | Some("https") => true,
        Some("none") | Some("") => false,
        Some(other) => {
            return Err(Error::Config(format!(
                "ssl.endpoint.identification.algorithm={other}: https or none"
            )))
        }
    };
    // The same provider as the broker: ring builds without cmake.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Config(format!("ssl.ca.location {ca}: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(BrokerVerifier {
            webpki,
            verify_name,
        }));
    let config = match (
        get.get("ssl.certificate.location"),
        get.get("ssl.key.location"),
    ) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&read("ssl.certificate.location", cert)?)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Config(format!("ssl.certificate.location {cert}: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&read("ssl.key.location", key)?)
                .map_err(|e| Error::Config(format!("ssl.key.location {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("the client certificate and key: {e}")))?
        }
        _ => {
            return Err(Error::Config(
                "set both ssl.certificate.location and ssl.key.location, or neither".to_string(),
            ))
        }
    };
    Ok(Arc::new(config))
}

/// The CA's check of the broker's chain, with the name check optional
/// (`ssl.endpoint.identification.algorithm=none`, as librdkafka allows).
#[derive(Debug)]
struct BrokerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    verify_name: bool,
}

impl ServerCertVerifier for BrokerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.verify_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_checked() {
        assert!(Security::from_properties([]).unwrap().tls.is_none());
        let sasl = Security::from_properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "secret"),
        ])
        .unwrap();
        let login = sasl.sasl.unwrap();
        assert_eq!(
            login.mechanism,
            SaslMechanism::Scram(ScramMechanism::Sha512)
        );
        assert!(!format!("{login:?}").contains("secret"));
        for (bad, why) in [
            (vec![("security.protocol", "TLS")], "one of PLAINTEXT"),
            (vec![("bootstrap.servers", "x")], "unknown client property"),
            (
                vec![
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.username", "a"),
                ],
                "needs sasl.password",
            ),
            (vec![("sasl.username", "a")], "has no SASL login"),
            (vec![("ssl.ca.location", "x")], "uses no TLS"),
            (vec![("security.protocol", "SSL")], "needs ssl.ca.location"),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.ca.location", "/nonexistent"),
                ],
                "/nonexistent",
            ),
        ] {
            let err = Security::from_properties(bad.iter().copied()).unwrap_err();
            assert!(err.to_string().contains(why), "{err} lacks {why}");
        }
    }
}
