//! TLS for SSL and SASL_SSL listeners, on rustls: the broker's key and
//! certificate chain and the authorities it trusts for client certificates
//! come from PEM files or inline PEM values under Kafka's `ssl.*` names.
//! The files are watched: when one changes, the next connections get the
//! new certificates, and a file that cannot be read keeps the old ones (so
//! a half-written file never takes the listener down).

use crate::config::BrokerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// How often the key and trust store files are looked at for changes.
pub(crate) const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where the key, chain and trusted authorities come from.
#[derive(Debug, Clone)]
struct Sources {
    /// `ssl.keystore.location`: the key and the chain in one PEM file.
    keystore: Option<PathBuf>,
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key`, inline.
    inline_chain: Option<String>,
    inline_key: Option<String>,
    /// `ssl.truststore.location`.
    truststore: Option<PathBuf>,
    /// `ssl.truststore.certificates`, inline.
    inline_trust: Option<String>,
    client_auth: ClientAuth,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
}

/// The TLS server side of the broker's SSL and SASL_SSL listeners.
pub(crate) struct TlsServer {
    sources: Sources,
    current: RwLock<Arc<ServerConfig>>,
    /// The watched files' modification times and sizes when last loaded.
    seen: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl TlsServer {
    /// Reads the `ssl.*` settings and loads the key, chain and trust store;
    /// `Err` says what is missing or unreadable.
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<TlsServer, String> {
        let client_auth = match config.get("ssl.client.auth").unwrap_or("none") {
            "required" => ClientAuth::Required,
            "requested" => ClientAuth::Requested,
            _ => ClientAuth::None,
        };
        let sources = Sources {
            truststore: config.get("ssl.truststore.location").map(PathBuf::from),
            inline_trust: config
                .get("ssl.truststore.certificates")
                .map(str::to_string),
            client_auth,
            versions: enabled_versions(config),
            ..keystore_sources(config)
        };
        let server_config = build(&sources)?;
        let seen = watched(&sources).iter().map(stamp).collect();
        Ok(TlsServer {
            sources,
            current: RwLock::new(Arc::new(server_config)),
            seen: Mutex::new(seen),
        })
    }

    /// The configuration for a connection accepted now.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Reloads the key, chain and trust store if one of their files
    /// changed. A reload that fails keeps the old ones and says why.
    pub(crate) fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let now: Vec<_> = watched(&self.sources).iter().map(stamp).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == now {
            return None;
        }
        *seen = now;
        Some(build(&self.sources).map(|config| {
            *self
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
        }))
    }
}

/// Reloads `tls` whenever its files change, until `stopped`.
pub(crate) async fn reload_task(
    tls: Arc<TlsServer>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(RELOAD_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        let tls = Arc::clone(&tls);
        let outcome = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
        match outcome {
            Ok(Some(Ok(()))) => tracing::info!("TLS key store or trust store changed: reloaded"),
            Ok(Some(Err(e))) => tracing::error!(
                error = %e,
                "TLS key store or trust store changed but cannot be loaded; keeping the previous certificates"
            ),
            _ => {}
        }
    }
}

fn watched(sources: &Sources) -> Vec<PathBuf> {
    sources
        .keystore
        .iter()
        .chain(sources.truststore.iter())
        .cloned()
        .collect()
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read(path: &PathBuf, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{setting} {}: {e}", path.display()))
}

/// The key and chain: from `ssl.keystore.location`, or from the inline
/// `ssl.keystore.certificate.chain` and `ssl.keystore.key`.
fn key_and_chain(
    sources: &Sources,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (chain_pem, key_pem, from) = match (&sources.keystore, &sources.inline_chain, &sources.inline_key) {
        (Some(path), None, None) => {
            let pem = read(path, "ssl.keystore.location")?;
            (pem.clone(), pem, format!("ssl.keystore.location {}", path.display()))
        }
        (None, Some(chain), Some(key)) => (
            chain.clone().into_bytes(),
            key.clone().into_bytes(),
            "ssl.keystore.certificate.chain and ssl.keystore.key".to_string(),
        ),
        (None, None, None) => {
            return Err(
                "an SSL or SASL_SSL listener needs the broker's key and certificate: set ssl.keystore.location (a PEM file with the key and the chain), or ssl.keystore.certificate.chain and ssl.keystore.key (try `sluice dev certs`)"
                    .to_string(),
            )
        }
        _ => {
            return Err(
                "set either ssl.keystore.location, or both ssl.keystore.certificate.chain and ssl.keystore.key, not a mix"
                    .to_string(),
            )
        }
    };
    let chain = certificates(&chain_pem).map_err(|e| format!("{from}: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "{from}: no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    if String::from_utf8_lossy(&key_pem).contains("ENCRYPTED PRIVATE KEY") {
        return Err(format!(
            "{from}: the private key is encrypted; Sluice reads unencrypted PEM keys only (ssl.key.password is not supported)"
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!("{from}: no readable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")
    })?;
    Ok((chain, key))
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("unreadable PEM certificate: {e}"))
}

/// The broker's own key and chain under `ssl.keystore.*`, which it also
/// presents as a client to other brokers; `None` when none is set.
pub(crate) fn broker_identity(
    config: &BrokerConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    let sources = keystore_sources(config);
    if sources.keystore.is_none() && sources.inline_chain.is_none() && sources.inline_key.is_none()
    {
        return Ok(None);
    }
    key_and_chain(&sources).map(Some)
}

/// `ssl.keystore.*`; nothing trusted, no protocol version.
fn keystore_sources(config: &BrokerConfig) -> Sources {
    Sources {
        keystore: config.get("ssl.keystore.location").map(PathBuf::from),
        inline_chain: config
            .get("ssl.keystore.certificate.chain")
            .map(str::to_string),
        inline_key: config.get("ssl.keystore.key").map(str::to_string),
        truststore: None,
        inline_trust: None,
        client_auth: ClientAuth::None,
        versions: Vec::new(),
    }
}

/// `ssl.enabled.protocols` (validated against TLSv1.2 and TLSv1.3).
pub(crate) fn enabled_versions(
    config: &BrokerConfig,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    config
        .get("ssl.enabled.protocols")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter_map(|v| match v {
            "TLSv1.2" => Some(&rustls::version::TLS12),
            "TLSv1.3" => Some(&rustls::version::TLS13),
            _ => None,
        })
        .collect()
}

/// Where the system's CA bundle usually is.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// `ssl.truststore.*` when set, else the system's CA bundle: whom the
/// broker trusts as a TLS client (of other brokers, of a JWKS endpoint).
pub(crate) fn client_roots(config: &BrokerConfig) -> Result<RootCertStore, String> {
    if let Some(roots) = configured_roots(config)? {
        return Ok(roots);
    }
    for bundle in SYSTEM_CA_BUNDLES {
        let Ok(pem) = std::fs::read(bundle) else {
            continue;
        };
        let mut roots = RootCertStore::empty();
        roots
            .add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
        if !roots.is_empty() {
            return Ok(roots);
        }
    }
    Err("no trusted authorities: set ssl.truststore.location (no system CA bundle found)".into())
}

/// The crypto provider of every TLS config the broker makes.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring, not aws-lc-rs: a much lighter build (no cmake, no large C
    // library). ring has no post-quantum key exchange (X25519MLKEM768),
    // so sessions use X25519 or the NIST curves; rustls deprecates its
    // ring provider for that reason alone.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The authorities client certificates must chain to.
fn trust_store(sources: &Sources) -> Result<Option<RootCertStore>, String> {
    roots(sources.truststore.as_ref(), sources.inline_trust.as_ref())
}

/// The authorities of `ssl.truststore.location` / `ssl.truststore.certificates`,
/// for the broker's own HTTPS requests (as Kafka's SslFactory in client
/// mode uses them); `None` when neither is set.
pub(crate) fn configured_roots(config: &BrokerConfig) -> Result<Option<RootCertStore>, String> {
    roots(
        config
            .get("ssl.truststore.location")
            .map(PathBuf::from)
            .as_ref(),
        config
            .get("ssl.truststore.certificates")
            .map(str::to_string)
            .as_ref(),
    )
}

fn roots(
    truststore: Option<&PathBuf>,
    inline_trust: Option<&String>,
) -> Result<Option<RootCertStore>, String> {
    let (pem, from) = match (truststore, inline_trust) {
        (Some(path), None) => (
            read(path, "ssl.truststore.location")?,
            format!("ssl.truststore.location {}", path.display()),
        ),
        (None, Some(inline)) => (
            inline.clone().into_bytes(),
            "ssl.truststore.certificates".to_string(),
        ),
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(
                "set ssl.truststore.location or ssl.truststore.certificates, not both".to_string(),
            )
        }
    };
    let mut roots = RootCertStore::empty();
    let certificates = certificates(&pem).map_err(|e| format!("{from}: {e}"))?;
    if certificates.is_empty() {
        return Err(format!("{from}: no PEM certificate"));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| format!("{from}: not a usable CA certificate: {e}"))?;
    }
    Ok(Some(roots))
}

fn build(sources: &Sources) -> Result<ServerConfig, String> {
    let provider = provider();
    let (chain, key) = key_and_chain(sources)?;
    let roots = trust_store(sources)?;
    let verifier = match (sources.client_auth, roots) {
        (ClientAuth::None, _) => WebPkiClientVerifier::no_client_auth(),
        (_, None) => {
            return Err(
                "ssl.client.auth is required or requested, so a trust store is needed: set ssl.truststore.location (PEM CA certificates)"
                    .to_string(),
            )
        }
        (auth, Some(roots)) => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let builder = if auth == ClientAuth::Requested {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| format!("ssl.truststore: {e}"))?
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&sources.versions)
        .map_err(|e| format!("ssl.enabled.protocols: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("the key does not fit the certificate, or is unusable: {e}"))?;
    // Kafka speaks its own protocol inside TLS; no ALPN is negotiated.
    config.alpn_protocols.clear();
    Ok(config)
}
