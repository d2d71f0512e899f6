//! A blocking Kafka connection that speaks raw requests through the
//! `kafka-protocol` crate, at the version both brokers under comparison
//! support, so the two answers can be compared field by field.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, RequestKind, ResponseKind,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::common::PATIENCE;

/// Supported version range per API key, as one broker's ApiVersions lists it.
pub(crate) type VersionRanges = BTreeMap<i16, (i16, i16)>;

pub(crate) struct Wire {
    stream: TcpStream,
    correlation_id: i32,
    /// The version to send per API: the highest both brokers support.
    versions: VersionRanges,
}

impl Wire {
    pub(crate) fn connect(addr: &str) -> Wire {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Wire {
            stream,
            correlation_id: 0,
            versions: VersionRanges::new(),
        }
    }

    /// ApiVersions v3 as a client sends it first.
    pub(crate) fn api_versions(&mut self) -> ApiVersionsResponse {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-differential"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        match self.send_at(3, RequestKind::ApiVersions(request)) {
            ResponseKind::ApiVersions(r) => r,
            other => panic!("not an ApiVersions response: {other:?}"),
        }
    }

    /// ApiVersions sent as v3 but labelled `version`; the answer is read as
    /// v0, the format a broker uses to refuse a version it does not know.
    pub(crate) fn api_versions_at_unknown_version(&mut self, version: i16) -> ApiVersionsResponse {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("differential")));
        let mut frame = encode_request(&header, &RequestKind::ApiVersions(Default::default()))
            .expect("encode ApiVersions")
            .to_vec();
        frame[6..8].copy_from_slice(&version.to_be_bytes());
        let response = self.send_raw(&frame).expect("an answer to ApiVersions");
        match decode_response(ApiKey::ApiVersions, 0, response.into()) {
            Ok((_, ResponseKind::ApiVersions(r))) => r,
            other => panic!("not an ApiVersions v0 response: {other:?}"),
        }
    }

    pub(crate) fn use_versions(&mut self, versions: VersionRanges) {
        self.versions = versions;
    }

    /// Sends `request` at the agreed version of its API.
    pub(crate) fn send(&mut self, request: RequestKind) -> ResponseKind {
        let key = api_key_of(&request);
        let version = self
            .version_of(key)
            .unwrap_or_else(|| panic!("{key:?} is not supported by both brokers"));
        self.send_at(version, request)
    }

    pub(crate) fn version_of(&self, key: ApiKey) -> Option<i16> {
        self.versions.get(&(key as i16)).map(|&(_, max)| max)
    }

    pub(crate) fn send_at(&mut self, version: i16, request: RequestKind) -> ResponseKind {
        let key = api_key_of(&request);
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("differential")));
        let frame = encode_request(&header, &request)
            .unwrap_or_else(|e| panic!("encode {key:?} v{version}: {e}"));
        self.stream.write_all(&frame).expect("send request");
        let response = self
            .read_frame()
            .unwrap_or_else(|| panic!("no answer to {key:?} v{version}"));
        let (correlation_id, body) = decode_response(key, version, response.into())
            .unwrap_or_else(|e| panic!("decode {key:?} v{version} response: {e}"));
        assert_eq!(
            correlation_id, self.correlation_id,
            "correlation id of {key:?}"
        );
        body
    }

    /// Writes raw bytes and returns what comes back: a frame, or `None` when
    /// the broker closes the connection (or stays silent past [`PATIENCE`]).
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.stream.write_all(bytes).ok()?;
        self.read_frame()
    }

    fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let len = usize::try_from(i32::from_be_bytes(len)).ok()?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).ok()?;
        Some(body)
    }
}

/// The versions both brokers accept for every API both implement.
pub(crate) fn common_versions(a: &VersionRanges, b: &VersionRanges) -> VersionRanges {
    a.iter()
        .filter_map(|(key, &(a_min, a_max))| {
            let &(b_min, b_max) = b.get(key)?;
            let (min, max) = (a_min.max(b_min), a_max.min(b_max));
            (min <= max).then_some((*key, (min, max)))
        })
        .collect()
}

pub(crate) fn ranges(response: &ApiVersionsResponse) -> VersionRanges {
    response
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect()
}

fn api_key_of(request: &RequestKind) -> ApiKey {
    macro_rules! keys {
        ($($kind:ident),* $(,)?) => {
            match request {
                $(RequestKind::$kind(_) => ApiKey::$kind,)*
                other => panic!("the differential harness does not send {other:?}"),
            }
        };
    }
    keys!(
        AlterPartitionReassignments,
        ListPartitionReassignments,
        DescribeAcls,
        DescribeClientQuotas,
        AlterClientQuotas,
        CreateAcls,
        DeleteAcls,
        Produce,
        Fetch,
        ListOffsets,
        OffsetForLeaderEpoch,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeConfigs,
        AlterConfigs,
        DescribeLogDirs,
        CreatePartitions,
        DeleteGroups,
        IncrementalAlterConfigs,
        OffsetDelete,
        DescribeCluster,
        DescribeQuorum,
        ElectLeaders,
        DescribeProducers,
        DescribeTransactions,
        ListTransactions,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
    )
}
