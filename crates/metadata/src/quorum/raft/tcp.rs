//! A [`Transport`] over TCP for voters in separate processes. A message is
//! a 4-byte big-endian length and that many bytes (the JSON of
//! `network.rs`); each request is answered the same way on its connection.
//! A caller keeps one connection per peer and sends on it one request at a
//! time; a call that fails or is cancelled (openraft times its RPCs out)
//! drops the connection, so a late answer is never read as the next one's.
//! What secures a connection (TLS, for an SSL controller listener) is the
//! broker's business: it hands a [`StreamSecurity`] to both ends.

use super::identity::ClusterIdentity;
use super::lock;
use super::network::{RpcHandler, Transport, TransportError};
use crate::quorum::QuorumFuture;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Kafka's default `socket.request.max.bytes` bounds every message, so a
/// bad length cannot make us allocate without limit.
const MAX_MESSAGE: usize = 100 * 1024 * 1024;

/// A connection between voters, plain or secured.
pub trait QuorumIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> QuorumIo for T {}

/// A secured (or plain) connection.
pub type QuorumStream = Box<dyn QuorumIo>;

/// How connections between voters are secured, on both ends.
pub trait StreamSecurity: Send + Sync + 'static {
    /// Secures a connection this voter opened to `host`.
    fn connect(
        &self,
        tcp: TcpStream,
        host: String,
    ) -> QuorumFuture<'static, io::Result<QuorumStream>>;
    /// Secures a connection a peer opened to this voter.
    fn accept(&self, tcp: TcpStream) -> QuorumFuture<'static, io::Result<QuorumStream>>;
}

/// Connections as they are (a PLAINTEXT controller listener).
pub struct Plaintext;

impl StreamSecurity for Plaintext {
    fn connect(
        &self,
        tcp: TcpStream,
        _host: String,
    ) -> QuorumFuture<'static, io::Result<QuorumStream>> {
        Box::pin(async move { Ok(Box::new(tcp) as QuorumStream) })
    }

    fn accept(&self, tcp: TcpStream) -> QuorumFuture<'static, io::Result<QuorumStream>> {
        Box::pin(async move { Ok(Box::new(tcp) as QuorumStream) })
    }
}

/// What every connection between voters goes through: securing, then
/// the exchange of cluster ids.
#[derive(Clone)]
pub struct VoterLinks {
    pub security: Arc<dyn StreamSecurity>,
    pub identity: Arc<ClusterIdentity>,
}

impl VoterLinks {
    /// Plain connections, no cluster known yet (tests).
    pub fn plaintext() -> Self {
        VoterLinks {
            security: Arc::new(Plaintext),
            identity: Arc::default(),
        }
    }
}

type Connection = Arc<tokio::sync::Mutex<Option<QuorumStream>>>;

/// Calls peers at the addresses of the voter set.
pub struct TcpTransport {
    addresses: BTreeMap<i32, String>,
    connections: Mutex<HashMap<i32, Connection>>,
    links: VoterLinks,
}

impl TcpTransport {
    /// `addresses`: each voter's `host:port` (the voter set's addresses);
    /// every connection goes through `links`.
    pub fn new(addresses: BTreeMap<i32, String>, links: VoterLinks) -> Self {
        TcpTransport {
            addresses,
            connections: Mutex::new(HashMap::new()),
            links,
        }
    }
}

/// Opens a connection to voter `to` at `address`: secured, hellos
/// exchanged and checked.
async fn open(links: &VoterLinks, to: i32, address: &str) -> Result<QuorumStream, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut stream = links
        .security
        .connect(stream, host_of(address))
        .await
        .map_err(|e| format!("cannot secure the connection to {address}: {e}"))?;
    write_message(&mut stream, &links.identity.hello())
        .await
        .map_err(|e| e.to_string())?;
    let hello = read_message(&mut stream)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("voter {to} at {address} closed the connection at its hello"))?;
    links
        .identity
        .check(&format!("voter {to} at {address}"), &hello)?;
    Ok(stream)
}

/// The host of `host:port` (`[v6]:port` too).
fn host_of(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

async fn write_message(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|len| *len as usize <= MAX_MESSAGE)
        .ok_or_else(|| {
            io::Error::other(format!("a message of {} bytes is too large", bytes.len()))
        })?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// The next message, or `None` if the peer closed between messages.
async fn read_message(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::other(format!(
            "a message of {len} bytes is over the limit of {MAX_MESSAGE}"
        )));
    }
    let mut bytes = vec![0; len];
    stream.read_exact(&mut bytes).await?;
    Ok(Some(bytes))
}

impl Transport for TcpTransport {
    fn call(
        &self,
        _from: i32,
        to: i32,
        request: Vec<u8>,
    ) -> QuorumFuture<'static, Result<Vec<u8>, TransportError>> {
        let address = self.addresses.get(&to).cloned();
        let connection = lock(&self.connections).entry(to).or_default().clone();
        let links = self.links.clone();
        Box::pin(async move {
            let failed = |reason: String| TransportError { to, reason };
            let address = address.ok_or_else(|| failed("no address for this node".to_string()))?;
            let mut slot = connection.lock().await;
            // Taken out for the exchange: only a whole one puts it back.
            let mut stream = match slot.take() {
                Some(stream) => stream,
                None => open(&links, to, &address).await.map_err(failed)?,
            };
            write_message(&mut stream, &request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let answer = read_message(&mut stream)
                .await
                .map_err(|e| failed(e.to_string()))?
                .ok_or_else(|| failed("the connection closed before the answer".to_string()))?;
            *slot = Some(stream);
            Ok(answer)
        })
    }
}

/// Answers the requests that arrive on `listener` with `handler`, one
/// task per connection going through `links`, until the returned future
/// is dropped.
pub async fn serve_tcp(listener: TcpListener, handler: RpcHandler, links: VoterLinks) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let handler = handler.clone();
                let links = links.clone();
                tokio::spawn(async move {
                    let stream = match accept(&links, stream, peer).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "refused a metadata quorum connection");
                            return;
                        }
                    };
                    if let Err(e) = serve_connection(stream, handler).await {
                        tracing::debug!(%peer, error = %e, "metadata quorum connection closed");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors, say: wait, do not spin.
                tracing::warn!(error = %e, "cannot accept a metadata quorum connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Secures an accepted connection and exchanges hellos: the peer's first,
/// then this voter's (so a peer of another cluster learns why it is
/// refused).
async fn accept(
    links: &VoterLinks,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) -> io::Result<QuorumStream> {
    stream.set_nodelay(true)?;
    let mut stream = links.security.accept(stream).await?;
    let hello = read_message(&mut stream)
        .await?
        .ok_or_else(|| io::Error::other("closed before its hello"))?;
    write_message(&mut stream, &links.identity.hello()).await?;
    links
        .identity
        .check(&format!("the voter at {peer}"), &hello)
        .map_err(io::Error::other)?;
    Ok(stream)
}

async fn serve_connection(mut stream: QuorumStream, handler: RpcHandler) -> io::Result<()> {
    while let Some(request) = read_message(&mut stream).await? {
        let answer = handler.handle(request).await;
        write_message(&mut stream, &answer).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::raft::test_cluster::{eventually, topic};
    use crate::quorum::raft::{QuorumConfig, RaftQuorum};
    use crate::quorum::{Quorum, QuorumError};

    /// Three voters on loopback ports, in real time (sockets do not run on
    /// tokio's paused clock).
    #[tokio::test]
    async fn three_voters_over_tcp_elect_replicate_and_redirect() {
        let mut listeners = Vec::new();
        let mut voters = BTreeMap::new();
        for id in 1..=3 {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
            let address = listener.local_addr().expect("an address").to_string();
            voters.insert(id, address);
            listeners.push((id, listener));
        }
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("a dir"))
            .collect();
        let mut nodes = BTreeMap::new();
        let mut servers = Vec::new();
        for ((id, listener), dir) in listeners.into_iter().zip(&dirs) {
            let mut config = QuorumConfig::new(id, voters.clone(), dir.path().to_path_buf());
            config.election_timeout = Duration::from_millis(300);
            config.heartbeat_interval = Duration::from_millis(60);
            let transport = Arc::new(TcpTransport::new(voters.clone(), VoterLinks::plaintext()));
            let node = RaftQuorum::start(config, transport).await.expect("starts");
            servers.push(tokio::spawn(serve_tcp(
                listener,
                node.rpc_handler(),
                VoterLinks::plaintext(),
            )));
            nodes.insert(id, node);
        }
        let mut leader = 0;
        eventually("a leader over TCP", || {
            leader = nodes
                .iter()
                .find(|(id, n)| n.status().leader == Some(**id))
                .map_or(0, |(id, _)| *id);
            leader != 0
        })
        .await;
        let (_, image) = nodes[&leader]
            .append(vec![topic("over-tcp")])
            .await
            .expect("appended");
        assert_eq!(image.offset, 1);
        nodes[&leader]
            .heartbeat(7, 0)
            .await
            .expect_err("broker 7 never registered");
        eventually("every voter applied it", || {
            nodes
                .values()
                .all(|n| n.image().topic("over-tcp").is_some())
        })
        .await;
        let follower = if leader == 1 { 2 } else { 1 };
        let (_, image) = nodes[&follower]
            .append(vec![topic("forwarded")])
            .await
            .expect("a follower forwards the append to the leader");
        assert!(
            image.topic("forwarded").is_some(),
            "applied on the follower"
        );
        assert_eq!(
            nodes[&follower]
                .append_after(image.offset - 1, vec![topic("stale")])
                .await
                .err(),
            Some(QuorumError::Stale {
                applied: image.offset
            }),
            "decided against an older image"
        );
        let (_, image) = nodes[&follower]
            .append_after(image.offset, vec![topic("current")])
            .await
            .expect("decided against the latest image");
        assert!(image.topic("current").is_some());
        for node in nodes.values() {
            node.shutdown().await.expect("stops");
        }
        for server in servers {
            server.abort();
        }
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_allocating() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        let (mut client, accepted) = tokio::join!(
            async { TcpStream::connect(address).await.expect("connects") },
            async { listener.accept().await.expect("accepts").0 }
        );
        let mut server = accepted;
        client
            .write_all(&u32::MAX.to_be_bytes())
            .await
            .expect("written");
        let error = read_message(&mut server).await.err().map(|e| e.to_string());
        assert!(error.unwrap_or_default().contains("over the limit"));
    }
}
