//! One request at a time to another broker: what a replica fetcher needs.
//! Both ends run the same Sluice, so versions are known and no ApiVersions
//! handshake is made. The connection is secured as the inter-broker
//! listener asks ([`InterBrokerSecurity`]): TLS, then a SASL login.

use crate::security::inter_broker::{InterBrokerSecurity, Login, PeerIo};
use crate::security::Mechanism;
use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::frame::{take_frame, DEFAULT_MAX_FRAME};
use sluice_protocol::scram::ScramClient;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) struct Peer {
    stream: Box<dyn PeerIo>,
    buf: BytesMut,
    next_correlation: i32,
    client_id: StrBytes,
}

impl Peer {
    /// Connects to `host:port`, secured by `security`, within `timeout`,
    /// naming itself `client_id` (the leader's request log shows which
    /// broker fetches).
    pub(crate) async fn connect(
        (host, port): (&str, u16),
        security: &InterBrokerSecurity,
        timeout: Duration,
        client_id: String,
    ) -> io::Result<Peer> {
        let connected = async {
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let mut peer = Peer {
                stream: security.secure(tcp, host).await?,
                buf: BytesMut::with_capacity(64 * 1024),
                next_correlation: 0,
                client_id: StrBytes::from_string(client_id),
            };
            if let Some(login) = security.login() {
                peer.log_in(login).await?;
            }
            Ok(peer)
        };
        tokio::time::timeout(timeout, connected)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    /// SaslHandshake v1, then SaslAuthenticate rounds; for SCRAM the
    /// peer's signature is checked, so a peer that does not know the
    /// password cannot pass for a broker.
    async fn log_in(&mut self, login: &Login) -> io::Result<()> {
        let mechanism = login.mechanism.name();
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let ResponseKind::SaslHandshake(answer) = self
            .exchange(
                ApiKey::SaslHandshake,
                1,
                RequestKind::SaslHandshake(handshake),
            )
            .await?
        else {
            return Err(io::Error::other("a SaslHandshake answered by another API"));
        };
        if answer.error_code != 0 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!(
                "the peer does not take SASL {mechanism} (error {}; it offers {})",
                answer.error_code,
                offered.join(", ")
            )));
        }
        match (login.mechanism, login.scram()) {
            (Mechanism::Plain, _) => {
                let token = format!("\0{}\0{}", login.username, login.password);
                self.authenticate(token.into_bytes()).await.map(drop)
            }
            (_, Some(scram)) => {
                let mut client = ScramClient::new(scram, &login.username, &login.password);
                let server_first = self.authenticate(client.client_first()).await?;
                let client_final = client.client_final(&server_first).map_err(refused)?;
                let server_final = self.authenticate(client_final).await?;
                client.verify_server_final(&server_final).map_err(refused)
            }
            _ => Err(refused(format!("no inter-broker login with {mechanism}"))),
        }
    }

    /// One SaslAuthenticate round: the peer's token.
    async fn authenticate(&mut self, token: Vec<u8>) -> io::Result<Vec<u8>> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
        let ResponseKind::SaslAuthenticate(answer) = self
            .exchange(
                ApiKey::SaslAuthenticate,
                2,
                RequestKind::SaslAuthenticate(request),
            )
            .await?
        else {
            return Err(io::Error::other(
                "a SaslAuthenticate answered by another API",
            ));
        };
        if answer.error_code != 0 {
            return Err(refused(format!(
                "the peer refused the login (error {}: {})",
                answer.error_code,
                answer.error_message.as_deref().unwrap_or("")
            )));
        }
        Ok(answer.auth_bytes.to_vec())
    }

    /// Sends `body` as `api` version `version` and waits up to `timeout`
    /// for its response. Any error leaves the connection unusable.
    pub(crate) async fn call(
        &mut self,
        api: ApiKey,
        version: i16,
        body: RequestKind,
        timeout: Duration,
    ) -> io::Result<ResponseKind> {
        tokio::time::timeout(timeout, self.exchange(api, version, body))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response in time"))?
    }

    async fn exchange(
        &mut self,
        api: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> io::Result<ResponseKind> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let frame = encode_request(&header, &body).map_err(io::Error::other)?;
        self.stream.write_all(&frame).await?;
        loop {
            if let Some(frame) =
                take_frame(&mut self.buf, DEFAULT_MAX_FRAME).map_err(io::Error::other)?
            {
                let (got, response) =
                    decode_response(api, version, frame).map_err(io::Error::other)?;
                if got != correlation {
                    return Err(io::Error::other(format!(
                        "response to request {got} while waiting for {correlation}"
                    )));
                }
                return Ok(response);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection",
                ));
            }
        }
    }
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}
