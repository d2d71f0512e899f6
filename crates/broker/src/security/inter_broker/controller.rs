//! TLS between controller voters, for an SSL controller listener: each
//! voter is a TLS client of the others as for the inter-broker listener
//! (trusting `ssl.truststore.*`, presenting `ssl.keystore.*`) and their
//! TLS server with the listeners' key store, trust store and
//! `ssl.client.auth`. With `ssl.client.auth=required`, only holders of a
//! certificate from a trusted authority can speak to the quorum.

use crate::config::BrokerConfig;
use crate::listeners::Listeners;
use crate::security::tls::TlsServer;
use rustls::ClientConfig;
use sluice_metadata::quorum::{Plaintext, QuorumFuture, QuorumStream, StreamSecurity};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long a TLS handshake between voters may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct ControllerTls {
    client: Arc<ClientConfig>,
    server: Arc<TlsServer>,
}

/// How this node secures its connections to and from the other voters,
/// as its controller listener's protocol says.
pub(crate) fn quorum_security(
    config: &BrokerConfig,
    listeners: &Listeners,
    tls: Option<&Arc<TlsServer>>,
) -> Result<Arc<dyn StreamSecurity>, String> {
    if !listeners.controller_protocol.tls() {
        return Ok(Arc::new(Plaintext));
    }
    let server = tls
        .cloned()
        .ok_or("an SSL controller listener needs ssl.keystore.*")?;
    let client =
        super::tls_client(config).map_err(|e| format!("the SSL controller listener: {e}"))?;
    if config.get("ssl.client.auth") != Some("required") {
        tracing::warn!(
            "the controller listener is SSL without ssl.client.auth=required: anyone who reaches it can speak to the metadata quorum"
        );
    }
    Ok(Arc::new(ControllerTls {
        client: Arc::new(client),
        server,
    }))
}

async fn within<T>(handshake: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake timed out"))?
}

impl StreamSecurity for ControllerTls {
    fn connect(
        &self,
        tcp: TcpStream,
        host: String,
    ) -> QuorumFuture<'static, io::Result<QuorumStream>> {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.client));
        Box::pin(async move {
            let name = super::server_name(&host)?;
            let stream = within(connector.connect(name, tcp)).await?;
            Ok(Box::new(stream) as QuorumStream)
        })
    }

    fn accept(&self, tcp: TcpStream) -> QuorumFuture<'static, io::Result<QuorumStream>> {
        // The current configuration: certificates reload when their files change.
        let acceptor = self.server.acceptor();
        Box::pin(async move {
            let stream = within(acceptor.accept(tcp)).await?;
            Ok(Box::new(stream) as QuorumStream)
        })
    }
}
