//! One request at a time to another broker: what a replica fetcher needs.
//! Both ends run the same Sluice, so versions are known and no ApiVersions
//! handshake is made.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::frame::{take_frame, DEFAULT_MAX_FRAME};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) struct Peer {
    stream: TcpStream,
    buf: BytesMut,
    next_correlation: i32,
    client_id: StrBytes,
}

impl Peer {
    /// Connects to `host:port` within `timeout`, naming itself `client_id`
    /// (the leader's request log shows which broker fetches).
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        client_id: String,
    ) -> io::Result<Peer> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Peer {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            next_correlation: 0,
            client_id: StrBytes::from_string(client_id),
        })
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
