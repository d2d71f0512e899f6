//! The identity provider's signing keys (a JWKS, RFC 7517), fetched from
//! `sasl.oauthbearer.jwks.endpoint.url` (`https://`, `http://` or
//! `file:`) at start, every `sasl.oauthbearer.jwks.endpoint.refresh.ms`,
//! and at once (at most every [`ON_DEMAND_INTERVAL`]) when a token names
//! a key id the set lacks, so a rotated key works on its first login.
//! Signatures are checked with ring: RS256/384/512, PS256/384/512,
//! ES256, ES384 and EdDSA (Ed25519).

use super::token::{decode, Jwt};
use crate::config::BrokerConfig;
use bytes::Bytes;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The least time between two fetches a token with an unknown key id may
/// cause, so that made-up key ids cannot hammer the provider.
const ON_DEMAND_INTERVAL: Duration = Duration::from_secs(10);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest key set read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

enum Source {
    File(PathBuf),
    Http {
        uri: hyper::Uri,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

/// The current keys and how to get new ones.
pub(crate) struct JwksKeys {
    url: String,
    source: Source,
    refresh: Duration,
    backoff: Duration,
    backoff_max: Duration,
    current: RwLock<Arc<Vec<Key>>>,
    /// When the last fetch caused by an unknown key id ran.
    last_on_demand: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksKeys {
    pub(crate) fn from_config(url: &str, config: &BrokerConfig) -> Result<JwksKeys, String> {
        let bad = |why: &str| format!("sasl.oauthbearer.jwks.endpoint.url {url:?}: {why}");
        let source = if let Some(path) = url.strip_prefix("file:") {
            // file:/path and file:///path
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(bad("a file URL needs an absolute path"));
            }
            Source::File(PathBuf::from(path))
        } else {
            let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
            if uri.host().is_none() {
                return Err(bad("no host"));
            }
            let tls = match uri.scheme_str() {
                Some("http") => None,
                Some("https") => Some(Arc::new(https_client(config)?)),
                _ => return Err(bad("the scheme must be https, http or file")),
            };
            Source::Http { uri, tls }
        };
        let millis = |name| Duration::from_millis(config.get_i64(name).max(0) as u64);
        Ok(JwksKeys {
            url: url.to_string(),
            source,
            refresh: millis("sasl.oauthbearer.jwks.endpoint.refresh.ms")
                .max(Duration::from_millis(1)),
            backoff: millis("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms"),
            backoff_max: millis("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms"),
            current: RwLock::new(Arc::new(Vec::new())),
            last_on_demand: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The first fetch, retried with exponential backoff for up to
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms`; the broker
    /// does not start without its keys.
    pub(crate) async fn load(&self) -> Result<usize, String> {
        let deadline = Instant::now() + self.backoff_max;
        let mut wait = self.backoff.max(Duration::from_millis(1));
        loop {
            match self.fetch().await {
                Ok(count) => return Ok(count),
                Err(e) if Instant::now() + wait < deadline => {
                    tracing::warn!(url = %self.url, error = %e, "cannot fetch the JWKS yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.backoff_max.max(Duration::from_millis(1)));
                }
                Err(e) => return Err(format!("cannot fetch the JWKS from {}: {e}", self.url)),
            }
        }
    }

    /// Fetches and installs the key set; the old one stays on failure.
    async fn fetch(&self) -> Result<usize, String> {
        let _one = self.fetching.lock().await;
        let body = match &self.source {
            Source::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?,
            Source::Http { uri, tls } => {
                tokio::time::timeout(FETCH_TIMEOUT, http_get(uri, tls.as_ref()))
                    .await
                    .map_err(|_| "no answer within 10 s".to_string())??
            }
        };
        let keys = parse_key_set(&body)?;
        let count = keys.len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    /// Refreshes the keys every `sasl.oauthbearer.jwks.endpoint.refresh.ms`
    /// until `stopped`; a failed refresh keeps the old keys and is retried
    /// with backoff.
    pub(crate) async fn refresh_task(
        self: Arc<Self>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut wait = self.refresh;
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = match self.fetch().await {
                Ok(count) => {
                    tracing::debug!(url = %self.url, keys = count, "JWKS refreshed");
                    self.refresh
                }
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %e, "cannot refresh the JWKS; keeping the previous keys");
                    self.backoff
                        .max(Duration::from_millis(100))
                        .min(self.refresh)
                }
            };
        }
    }

    /// Checks `jwt`'s signature against the key its header names.
    pub(crate) async fn verify(&self, jwt: &Jwt) -> Result<(), String> {
        let alg = jwt.algorithm().ok_or("the JWT header has no alg")?;
        let scheme = Scheme::from_alg(alg).ok_or_else(|| {
            format!("JWS algorithm {alg:?} is not allowed (none) or not supported")
        })?;
        let mut keys = self.candidates(jwt.key_id(), alg, scheme);
        if keys.is_empty() && jwt.key_id().is_some() && self.may_fetch_on_demand() {
            if let Err(e) = self.fetch().await {
                tracing::warn!(url = %self.url, error = %e, "cannot refresh the JWKS for an unknown key id");
            }
            keys = self.candidates(jwt.key_id(), alg, scheme);
        }
        if keys.is_empty() {
            return Err(format!(
                "no key in the JWKS for kid {:?} and alg {alg}",
                jwt.key_id().unwrap_or("")
            ));
        }
        let verified = keys
            .iter()
            .any(|key| key.verify(scheme, jwt.signing_input.as_bytes(), &jwt.signature));
        if verified {
            Ok(())
        } else {
            Err("the JWT signature does not verify".into())
        }
    }

    fn candidates(&self, kid: Option<&str>, alg: &str, scheme: Scheme) -> Vec<Key> {
        let keys = Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()));
        keys.iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
            .filter(|k| k.material.fits(scheme))
            .cloned()
            .collect()
    }

    fn may_fetch_on_demand(&self) -> bool {
        let mut last = self
            .last_on_demand
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < ON_DEMAND_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// A JWS signature algorithm Sluice verifies.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    Rsa(&'static signature::RsaParameters),
    Ec(Curve, &'static signature::EcdsaVerificationAlgorithm),
    Ed25519,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Scheme {
    fn from_alg(alg: &str) -> Option<Scheme> {
        Some(match alg {
            "RS256" => Scheme::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            "RS384" => Scheme::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            "RS512" => Scheme::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            "PS256" => Scheme::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
            "PS384" => Scheme::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
            "PS512" => Scheme::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
            "ES256" => Scheme::Ec(Curve::P256, &signature::ECDSA_P256_SHA256_FIXED),
            "ES384" => Scheme::Ec(Curve::P384, &signature::ECDSA_P384_SHA384_FIXED),
            "EdDSA" => Scheme::Ed25519,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
struct Key {
    kid: Option<String>,
    alg: Option<String>,
    material: Material,
}

#[derive(Debug, Clone)]
enum Material {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `04 || x || y`.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

impl Material {
    fn fits(&self, scheme: Scheme) -> bool {
        match (self, scheme) {
            (Material::Rsa { .. }, Scheme::Rsa(_)) | (Material::Ed25519(_), Scheme::Ed25519) => {
                true
            }
            (Material::Ec { curve, .. }, Scheme::Ec(wanted, _)) => *curve == wanted,
            _ => false,
        }
    }
}

impl Key {
    fn verify(&self, scheme: Scheme, message: &[u8], sig: &[u8]) -> bool {
        match (&self.material, scheme) {
            (Material::Rsa { n, e }, Scheme::Rsa(params)) => {
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            (Material::Ec { point, .. }, Scheme::Ec(_, algorithm)) => {
                verify_with(algorithm, point, message, sig)
            }
            (Material::Ed25519(x), Scheme::Ed25519) => {
                verify_with(&signature::ED25519, x, message, sig)
            }
            _ => false,
        }
    }
}

fn verify_with(
    algorithm: &'static dyn VerificationAlgorithm,
    key: &[u8],
    message: &[u8],
    sig: &[u8],
) -> bool {
    UnparsedPublicKey::new(algorithm, key)
        .verify(message, sig)
        .is_ok()
}

/// The signing keys of a JWKS document; keys for encryption or of kinds
/// Sluice cannot check are left out (and logged).
fn parse_key_set(body: &[u8]) -> Result<Vec<Key>, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no \"keys\" array")?;
    let mut keys = Vec::with_capacity(entries.len());
    for entry in entries {
        match parse_key(entry) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "skipping a JWKS key"),
        }
    }
    Ok(keys)
}

fn parse_key(entry: &Value) -> Result<Option<Key>, String> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let bytes = |name: &str| {
        field(name)
            .and_then(decode)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| format!("key {:?}: missing or malformed {name}", field("kid")))
    };
    let material = match field("kty") {
        Some("RSA") => Material::Rsa {
            n: strip_leading_zeros(bytes("n")?),
            e: strip_leading_zeros(bytes("e")?),
        },
        Some("EC") => {
            let (curve, len) = match field("crv") {
                Some("P-256") => (Curve::P256, 32),
                Some("P-384") => (Curve::P384, 48),
                other => return Err(format!("EC curve {other:?} is not supported")),
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != len || y.len() != len {
                return Err(format!(
                    "key {:?}: EC coordinates of the wrong size",
                    field("kid")
                ));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Material::Ec { curve, point }
        }
        Some("OKP") if field("crv") == Some("Ed25519") => Material::Ed25519(bytes("x")?),
        other => return Err(format!("key type {other:?} is not supported")),
    };
    Ok(Some(Key {
        kid: field("kid").map(str::to_string),
        alg: field("alg").map(str::to_string),
        material,
    }))
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros.min(bytes.len().saturating_sub(1)));
    bytes
}

/// A rustls client trusting `ssl.truststore.*`, or the system's CA bundle.
fn https_client(config: &BrokerConfig) -> Result<rustls::ClientConfig, String> {
    use crate::security::tls;
    let roots = tls::client_roots(config).map_err(|e| format!("an https JWKS endpoint: {e}"))?;
    Ok(rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One `GET`, HTTP/1.1, no redirects.
async fn http_get(
    uri: &hyper::Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Vec<u8>, String> {
    let host = uri.host().unwrap_or_default();
    let port = uri
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect((bare_host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let authority = uri.authority().map_or(host, |a| a.as_str()).to_string();
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    match tls {
        None => send(hyper_util::rt::TokioIo::new(tcp), request).await,
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(bare_host.to_string())
                .map_err(|e| format!("{host}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
            send(hyper_util::rt::TokioIo::new(stream), request).await
        }
    }
}

async fn send<T>(
    io: T,
    request: hyper::Request<http_body_util::Empty<Bytes>>,
) -> Result<Vec<u8>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        driver.abort();
        return Err(format!("HTTP status {status}"));
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the JWKS: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(body.to_vec())
}

#[cfg(test)]
pub(super) mod test_keys {
    //! Keys for tests: ES256 made by ring, published as a JWKS.
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    pub(crate) struct TestKey {
        pair: EcdsaKeyPair,
        pub(crate) kid: String,
    }

    impl TestKey {
        pub(crate) fn new(kid: &str) -> TestKey {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            TestKey {
                pair,
                kid: kid.to_string(),
            }
        }

        pub(crate) fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            serde_json::json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid, "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            })
        }

        pub(crate) fn sign(&self, claims: &Value) -> String {
            let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }

    pub(crate) fn key_set(keys: &[&TestKey]) -> String {
        serde_json::json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
    }
}
