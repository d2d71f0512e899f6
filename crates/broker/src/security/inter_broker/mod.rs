//! How this broker speaks to the others (replica fetchers, transaction
//! markers): over the inter-broker listener, with that listener's
//! security protocol. On SSL and SASL_SSL it is a TLS client trusting
//! `ssl.truststore.*` and presenting its own `ssl.keystore.*` (for a peer
//! with `ssl.client.auth=required`); on SASL_PLAINTEXT and SASL_SSL it
//! logs in with `sasl.mechanism.inter.broker.protocol` and the username
//! and password of `listener.name.<listener>.<mechanism>.sasl.jaas.config`,
//! as a Kafka broker does.

mod controller;

pub(crate) use controller::quorum_security;

use super::jaas::{login_module_options, PLAIN_LOGIN_MODULE, SCRAM_LOGIN_MODULE};
use super::{tls, Mechanism};
use crate::config::BrokerConfig;
use crate::listeners::Listeners;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use sluice_metadata::ScramMechanism;
use sluice_protocol::scram::ScramHash;
use std::fmt;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connection to another broker, plain or TLS.
pub(crate) trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

/// What securing a connection to another broker takes, read once at start.
#[derive(Default)]
pub(crate) struct InterBrokerSecurity {
    tls: Option<Arc<ClientConfig>>,
    login: Option<Login>,
}

/// The user this broker logs in to the others as.
#[derive(Clone)]
pub(crate) struct Login {
    pub(crate) mechanism: Mechanism,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl InterBrokerSecurity {
    /// `Err` says which setting is missing or wrong (checked at start,
    /// on nodes that have peers).
    pub(crate) fn from_config(
        config: &BrokerConfig,
        listeners: &Listeners,
    ) -> Result<InterBrokerSecurity, String> {
        let listener = listeners.inter_broker();
        let protocol = listener.protocol;
        let context = |e: String| {
            format!(
                "the inter-broker listener {} is {}: {e}",
                listener.name(),
                protocol.name()
            )
        };
        let tls = match protocol.tls() {
            true => Some(Arc::new(tls_client(config).map_err(context)?)),
            false => None,
        };
        let login = match protocol.sasl() {
            true => Some(login(config, listener.name()).map_err(context)?),
            false => None,
        };
        Ok(InterBrokerSecurity { tls, login })
    }

    /// The login to make once connected, if the listener takes SASL.
    pub(crate) fn login(&self) -> Option<&Login> {
        self.login.as_ref()
    }

    /// `tcp`, wrapped in TLS when the inter-broker listener speaks it;
    /// `host` is the name the peer's certificate must carry.
    pub(crate) async fn secure(&self, tcp: TcpStream, host: &str) -> io::Result<Box<dyn PeerIo>> {
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = server_name(host)?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await?;
        Ok(Box::new(stream))
    }
}

/// The name a peer's certificate must carry, for `host` (a DNS name or an
/// IP address).
pub(super) fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("host {host:?}: {e}")))
}

pub(super) fn tls_client(config: &BrokerConfig) -> Result<ClientConfig, String> {
    let roots = Arc::new(tls::client_roots(config)?);
    let provider = tls::provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> =
        match config.get("ssl.endpoint.identification.algorithm") {
            Some(algorithm) if !algorithm.trim().is_empty() => webpki,
            _ => Arc::new(AnyHostName(webpki)),
        };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&tls::enabled_versions(config))
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match tls::broker_identity(config)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("ssl.keystore.*: {e}")),
        None => Ok(builder.with_no_client_auth()),
    }
}

fn login(config: &BrokerConfig, listener: &str) -> Result<Login, String> {
    let name = config
        .get("sasl.mechanism.inter.broker.protocol")
        .unwrap_or_default()
        .trim();
    let (mechanism, module) = match Mechanism::from_name(name) {
        Some(m @ Mechanism::Plain) => (m, PLAIN_LOGIN_MODULE),
        Some(m @ Mechanism::Scram(_)) => (m, SCRAM_LOGIN_MODULE),
        _ => {
            return Err(format!(
                "sasl.mechanism.inter.broker.protocol is {name}, but Sluice logs in to other brokers with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 only"
            ))
        }
    };
    let enabled = config.get("sasl.enabled.mechanisms").unwrap_or_default();
    if !enabled.split(',').any(|m| m.trim() == name) {
        return Err(format!(
            "sasl.mechanism.inter.broker.protocol {name} is not in sasl.enabled.mechanisms ({enabled})"
        ));
    }
    let setting = format!("{}.sasl.jaas.config", name.to_ascii_lowercase());
    let full_name = format!("listener.name.{}.{setting}", listener.to_ascii_lowercase());
    let jaas = config
        .listener_settings()
        .find(|(l, s, _)| l.eq_ignore_ascii_case(listener) && *s == setting)
        .map(|(_, _, value)| value)
        .ok_or_else(|| {
            format!("set {full_name} to the username and password this broker logs in with")
        })?;
    let mut options =
        login_module_options(jaas, module).map_err(|e| format!("{full_name}: {e}"))?;
    let mut take = |key: &str| {
        options
            .remove(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{full_name} has no {key}"))
    };
    Ok(Login {
        mechanism,
        username: take("username")?,
        password: take("password")?,
    })
}

impl Login {
    /// The hash of a SCRAM login.
    pub(crate) fn scram(&self) -> Option<ScramHash> {
        match self.mechanism {
            Mechanism::Scram(ScramMechanism::Sha256) => Some(ScramHash::Sha256),
            Mechanism::Scram(ScramMechanism::Sha512) => Some(ScramHash::Sha512),
            _ => None,
        }
    }
}

/// Checks the chain but not the host name (`ssl.endpoint.identification.
/// algorithm` empty, as Kafka allows for certificates without the host).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last, after the chain and its validity.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
