//! One TCP connection to one broker: ApiVersions handshake, version
//! negotiation and pipelined requests matched by correlation id.
//!
//! A writer task drains a queue of encoded frames onto the socket; a reader
//! task splits incoming frames and hands each to the caller waiting on its
//! correlation id. Any number of requests may be outstanding at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_protocol::envelope::encode_request;
use sluice_protocol::frame::{take_frame, DEFAULT_MAX_FRAME};
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseHeader,
};
use sluice_protocol::kafka_protocol::protocol::{Decodable, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::security::Security;

/// The highest version of each API this client implements. The version used
/// on a connection is the highest one both sides support.
pub fn client_max_version(api: ApiKey) -> Option<i16> {
    Some(match api {
        // v12 only for transactions v2: see `TV1_PRODUCE_MAX`.
        ApiKey::Produce => 12,
        ApiKey::Fetch => 16,
        ApiKey::ListOffsets => 8,
        ApiKey::Metadata => 12,
        ApiKey::ApiVersions => 3,
        ApiKey::CreateTopics => 7,
        ApiKey::DeleteTopics => 6,
        ApiKey::CreatePartitions => 3,
        ApiKey::DescribeConfigs => 4,
        ApiKey::IncrementalAlterConfigs => 1,
        ApiKey::DescribeCluster => 1,
        ApiKey::DescribeQuorum => 1,
        ApiKey::ElectLeaders => 2,
        ApiKey::AlterPartitionReassignments => 1,
        ApiKey::ListPartitionReassignments => 0,
        ApiKey::DescribeLogDirs => 4,
        ApiKey::DeleteRecords => 2,
        ApiKey::FindCoordinator => 6,
        ApiKey::OffsetCommit => 9,
        ApiKey::OffsetFetch => 9,
        ApiKey::DescribeGroups => 6,
        ApiKey::ListGroups => 5,
        ApiKey::DeleteGroups => 2,
        ApiKey::OffsetDelete => 0,
        ApiKey::JoinGroup => 9,
        ApiKey::SyncGroup => 5,
        ApiKey::Heartbeat => 4,
        ApiKey::LeaveGroup => 5,
        // v1 has the member choose its id (KIP-1082).
        ApiKey::ConsumerGroupHeartbeat => 1,
        ApiKey::InitProducerId => 5,
        // v4+ is the broker-to-broker batched form (KIP-890).
        ApiKey::AddPartitionsToTxn => 3,
        ApiKey::AddOffsetsToTxn => 4,
        // v5 of both is transactions v2 (KIP-890 part 2), used only when the
        // broker finalizes `transaction.version` 2: see `TV1_*_MAX`.
        ApiKey::EndTxn => 5,
        ApiKey::TxnOffsetCommit => 5,
        ApiKey::DescribeTransactions => 0,
        ApiKey::ListTransactions => 1,
        ApiKey::DescribeUserScramCredentials => 0,
        ApiKey::AlterUserScramCredentials => 0,
        ApiKey::DescribeAcls => 3,
        ApiKey::CreateAcls => 3,
        ApiKey::DeleteAcls => 3,
        ApiKey::DescribeClientQuotas => 1,
        ApiKey::AlterClientQuotas => 1,
        ApiKey::SaslHandshake => 1,
        ApiKey::SaslAuthenticate => 2,
        _ => return None,
    })
}

/// The highest versions a transactional producer uses without transactions
/// v2: from these on, the broker takes the request for a transactions-v2
/// one (Produce v12 adds its partition, EndTxn v5 bumps the epoch), so the
/// Java client caps them the same way (`LAST_STABLE_VERSION_BEFORE_TRANSACTION_V2`).
pub(crate) const TV1_PRODUCE_MAX: i16 = 11;
pub(crate) const TV1_END_TXN_MAX: i16 = 4;
pub(crate) const TV1_TXN_OFFSET_COMMIT_MAX: i16 = 4;

/// The lowest version of each API this client implements.
fn client_min_version(api: ApiKey) -> i16 {
    match api {
        ApiKey::Produce => 3,
        ApiKey::Fetch => 4,
        ApiKey::Metadata => 1,
        ApiKey::ListOffsets => 1,
        ApiKey::CreateTopics => 2,
        ApiKey::DeleteTopics => 1,
        ApiKey::DescribeConfigs => 1,
        ApiKey::DescribeLogDirs => 1,
        // v1 is the first with the election type.
        ApiKey::ElectLeaders => 1,
        ApiKey::OffsetCommit => 2,
        // v2 is the first that fetches all of a group's offsets (null topics).
        ApiKey::OffsetFetch => 2,
        // Kafka 4 serves v1 and later.
        ApiKey::DescribeAcls | ApiKey::CreateAcls | ApiKey::DeleteAcls => 1,
        _ => 0,
    }
}

/// Options for opening a connection.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Sent as the request header's client id.
    pub client_id: String,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// How long to wait for a response (`request.timeout.ms`).
    pub request_timeout: Duration,
    /// TLS and SASL (`security.protocol` and friends).
    pub security: Security,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            client_id: "sluice-client".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            security: Security::plaintext(),
        }
    }
}

type BoxedReader = Box<dyn AsyncRead + Send + Unpin>;
type BoxedWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// The TCP connection, inside a TLS session when `security` says so.
async fn open_stream(
    addr: &str,
    options: &ConnectionOptions,
) -> std::result::Result<(BoxedReader, BoxedWriter), Error> {
    let io_err = |e: std::io::Error| Error::Io {
        addr: addr.to_string(),
        message: e.to_string(),
    };
    let timeout = || Error::Timeout {
        addr: addr.to_string(),
        after: options.connect_timeout,
    };
    let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| timeout())?
        .map_err(io_err)?;
    stream.set_nodelay(true).map_err(io_err)?;
    let Some(tls) = &options.security.tls else {
        let (rd, wr) = stream.into_split();
        return Ok((Box::new(rd), Box::new(wr)));
    };
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Error::Config(format!("'{host}' is not a TLS server name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(tls));
    let session = tokio::time::timeout(options.connect_timeout, connector.connect(name, stream))
        .await
        .map_err(|_| timeout())?
        .map_err(|e| Error::Io {
            addr: addr.to_string(),
            message: format!("TLS handshake failed: {e}"),
        })?;
    let (rd, wr) = tokio::io::split(session);
    Ok((Box::new(rd), Box::new(wr)))
}

type Pending = oneshot::Sender<Result<Bytes>>;

struct Outgoing {
    frame: Bytes,
    written: Option<oneshot::Sender<Result<()>>>,
}

struct Shared {
    addr: String,
    pending: Mutex<HashMap<i32, Pending>>,
    closed: AtomicBool,
}

impl Shared {
    fn fail_all(&self, err: Error) {
        self.closed.store(true, Ordering::SeqCst);
        let drained: Vec<Pending> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.drain().map(|(_, tx)| tx).collect()
        };
        for tx in drained {
            let _ = tx.send(Err(err.clone()));
        }
    }
}

/// A connection to one broker. Cheap to share behind an `Arc`; requests from
/// many tasks are pipelined on the one socket.
pub struct Connection {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outgoing>,
    versions: HashMap<i16, (i16, i16)>,
    /// Finalized feature levels (KIP-584) from ApiVersions v3+, by name.
    features: HashMap<String, i16>,
    next_correlation_id: AtomicI32,
    client_id: StrBytes,
    request_timeout: Duration,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared.addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) and performs the ApiVersions
    /// handshake.
    pub async fn connect(addr: &str, options: &ConnectionOptions) -> Result<Connection> {
        let (mut rd, mut wr) = open_stream(addr, options).await?;
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();

        let wshared = shared.clone();
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let mut res = wr.write_all(&out.frame).await;
                // TLS may hold encrypted bytes back until flushed (a no-op
                // on plain TCP); flush once nothing more is queued.
                if res.is_ok() && rx.is_empty() {
                    res = wr.flush().await;
                }
                match res {
                    Ok(()) => {
                        if let Some(w) = out.written {
                            let _ = w.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        let err = Error::Io {
                            addr: wshared.addr.clone(),
                            message: e.to_string(),
                        };
                        if let Some(w) = out.written {
                            let _ = w.send(Err(err.clone()));
                        }
                        wshared.fail_all(err);
                        break;
                    }
                }
            }
            let _ = wr.shutdown().await;
        });

        let rshared = shared.clone();
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let err = loop {
                match take_frame(&mut buf, DEFAULT_MAX_FRAME) {
                    Ok(Some(frame)) => {
                        if frame.len() < 4 {
                            break Error::Protocol("response frame too short".into());
                        }
                        let cid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                        let waiter = rshared
                            .pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&cid);
                        match waiter {
                            Some(tx) => {
                                let _ = tx.send(Ok(frame));
                            }
                            None => tracing::debug!(
                                addr = %rshared.addr,
                                cid,
                                "response for unknown (timed out?) correlation id"
                            ),
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => break Error::Protocol(e.to_string()),
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break Error::Disconnected(rshared.addr.clone()),
                    Ok(_) => {}
                    Err(e) => {
                        break Error::Io {
                            addr: rshared.addr.clone(),
                            message: e.to_string(),
                        }
                    }
                }
            };
            rshared.fail_all(err);
        });

        let mut conn = Connection {
            shared,
            tx,
            versions: HashMap::new(),
            features: HashMap::new(),
            next_correlation_id: AtomicI32::new(1),
            client_id: StrBytes::from_string(options.client_id.clone()),
            request_timeout: options.request_timeout,
            reader,
        };
        conn.handshake().await?;
        if let Some(login) = &options.security.sasl {
            crate::sasl::login(&conn, login).await?;
        }
        Ok(conn)
    }

    async fn handshake(&mut self) -> Result<()> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp = self
            .call_version(req.clone(), 3, self.request_timeout)
            .await?;
        if resp.error_code == sluice_protocol::error::UNSUPPORTED_VERSION {
            // The broker answers in v0 with the versions it supports.
            resp = self.call_version(req, 0, self.request_timeout).await?;
        }
        Error::check(
            resp.error_code,
            None,
            format!("ApiVersions on {}", self.addr()),
        )?;
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        self.features = resp
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect();
        Ok(())
    }

    /// The level at which the broker finalizes `feature`, if it does.
    pub fn finalized_feature(&self, feature: &str) -> Option<i16> {
        self.features.get(feature).copied()
    }

    /// The broker address this connection talks to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// True once the socket has failed or closed; pools reconnect then.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// The broker's supported version range for an API, from ApiVersions.
    pub fn broker_versions(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The version that will be used for `api`: the highest version both this
    /// client and the broker support, or `None` when there is none.
    pub fn negotiated_version(&self, api: ApiKey) -> Option<i16> {
        let (bmin, bmax) = self.broker_versions(api)?;
        let cmax = client_max_version(api)?;
        let v = bmax.min(cmax);
        (v >= bmin.max(client_min_version(api))).then_some(v)
    }

    fn version_for<R: Request>(&self) -> Result<i16> {
        let api = ApiKey::try_from(R::KEY)
            .map_err(|_| Error::Protocol(format!("unknown API key {}", R::KEY)))?;
        self.negotiated_version(api)
            .map(|v| v.min(R::VERSIONS.max))
            .ok_or_else(|| Error::UnsupportedVersion {
                addr: self.addr().to_string(),
                api: format!("{api:?}"),
            })
    }

    fn encode<R>(&self, req: R, version: i16) -> Result<(i32, Bytes)>
    where
        R: Request + Into<RequestKind>,
    {
        let cid = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(cid)
            .with_client_id(Some(self.client_id.clone()));
        let frame =
            encode_request(&header, &req.into()).map_err(|e| Error::Protocol(e.to_string()))?;
        Ok((cid, frame))
    }

    /// Sends a request at the negotiated version and waits for its response.
    pub async fn call<R>(&self, req: R) -> Result<R::Response>
    where
        R: Request + Into<RequestKind>,
    {
        let v = self.version_for::<R>()?;
        self.call_version(req, v, self.request_timeout).await
    }

    /// Like [`call`](Self::call), at no more than version `max`.
    pub async fn call_capped<R>(&self, req: R, max: i16) -> Result<R::Response>
    where
        R: Request + Into<RequestKind>,
    {
        let v = self.version_for::<R>()?.min(max);
        self.call_version(req, v, self.request_timeout).await
    }

    /// Like [`call`](Self::call) with an explicit timeout (e.g. a long-poll
    /// fetch must wait longer than its `max_wait_ms`).
    pub async fn call_with_timeout<R>(&self, req: R, timeout: Duration) -> Result<R::Response>
    where
        R: Request + Into<RequestKind>,
    {
        let v = self.version_for::<R>()?;
        self.call_version(req, v, timeout).await
    }

    /// Sends a request at an explicit version and waits for its response.
    pub async fn call_version<R>(
        &self,
        req: R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response>
    where
        R: Request + Into<RequestKind>,
    {
        self.submit_version(req, version, timeout)?.await
    }

    /// Queues a request for the socket now, at no more than version `max`,
    /// and returns the wait for its response. Requests leave in the order
    /// they are submitted, which an idempotent producer needs: batches of a
    /// partition must reach the broker in sequence order.
    pub fn submit_capped<R>(
        &self,
        req: R,
        max: i16,
    ) -> Result<impl Future<Output = Result<R::Response>> + Send + 'static>
    where
        R: Request + Into<RequestKind>,
    {
        let version = self.version_for::<R>()?.min(max);
        self.submit_version(req, version, self.request_timeout)
    }

    fn submit_version<R>(
        &self,
        req: R,
        version: i16,
        timeout: Duration,
    ) -> Result<impl Future<Output = Result<R::Response>> + Send + 'static>
    where
        R: Request + Into<RequestKind>,
    {
        if self.is_closed() {
            return Err(Error::Disconnected(self.addr().to_string()));
        }
        let (cid, frame) = self.encode(req, version)?;
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cid, tx);
        if self
            .tx
            .send(Outgoing {
                frame,
                written: None,
            })
            .is_err()
        {
            forget(&self.shared, cid);
            return Err(Error::Disconnected(self.addr().to_string()));
        }
        let shared = Arc::clone(&self.shared);
        Ok(async move {
            let frame = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(res)) => res?,
                Ok(Err(_)) => return Err(Error::Disconnected(shared.addr.clone())),
                Err(_) => {
                    forget(&shared, cid);
                    return Err(Error::Timeout {
                        addr: shared.addr.clone(),
                        after: timeout,
                    });
                }
            };
            decode_response::<R>(frame, version)
        })
    }

    /// Sends a request that gets no response (a produce with `acks=0`) and
    /// returns once it has been written to the socket.
    pub async fn send_no_response<R>(&self, req: R) -> Result<()>
    where
        R: Request + Into<RequestKind>,
    {
        if self.is_closed() {
            return Err(Error::Disconnected(self.addr().to_string()));
        }
        let v = self.version_for::<R>()?;
        let (_, frame) = self.encode(req, v)?;
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Outgoing {
                frame,
                written: Some(tx),
            })
            .map_err(|_| Error::Disconnected(self.addr().to_string()))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(Error::Disconnected(self.addr().to_string())),
            Err(_) => Err(Error::Timeout {
                addr: self.addr().to_string(),
                after: self.request_timeout,
            }),
        }
    }
}

/// Drops the response slot of a request that is no longer awaited.
fn forget(shared: &Shared, cid: i32) {
    shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&cid);
}

fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> Result<R::Response> {
    let api = ApiKey::try_from(R::KEY)
        .map_err(|_| Error::Protocol(format!("unknown API key {}", R::KEY)))?;
    let malformed =
        |e: String| Error::Protocol(format!("malformed {api:?} v{version} response: {e}"));
    ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    <R::Response as Decodable>::decode(&mut frame, version).map_err(|e| malformed(e.to_string()))
}
