//! WriteTxnMarkers (key 27): a transaction coordinator asks a partition
//! leader to write commit or abort markers. On a single node the
//! coordinator writes them itself; this serves other coordinators and tools
//! with the same code path.

use super::{ApiSupport, Reply};
use crate::state::BrokerState;
use crate::txn::write_markers;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, ResponseKind, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::control::Marker;
use sluice_protocol::error;
use std::sync::Arc;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::WriteTxnMarkers, 1, 1);

pub(crate) fn handle(state: &Arc<BrokerState>, request: WriteTxnMarkersRequest) -> Reply {
    let mut response = WriteTxnMarkersResponse::default();
    let mut waits = Vec::new();
    for marker in request.markers {
        let kind = if marker.transaction_result {
            Marker::Commit
        } else {
            Marker::Abort
        };
        let partitions: Vec<(String, i32)> = marker
            .topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| (t.name.0.to_string(), *p))
            })
            .collect();
        let (durable, failed) = write_markers(
            state,
            (marker.producer_id.0, marker.producer_epoch),
            marker.coordinator_epoch,
            kind,
            partitions.iter().map(|(t, p)| (t.as_str(), *p)),
        );
        waits.push((response.markers.len(), durable));
        let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
        for (topic, partition) in &partitions {
            let code = failed
                .iter()
                .find(|(t, p, _)| t == topic && p == partition)
                .map_or(error::NONE, |f| f.2);
            let result = WritableTxnMarkerPartitionResult::default()
                .with_partition_index(*partition)
                .with_error_code(code);
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partitions.push(result),
                _ => topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![result]),
                ),
            }
        }
        response.markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    Reply::Later(Box::pin(async move {
        for (index, durable) in waits {
            if let Err(e) = durable.wait().await {
                tracing::error!(error = %e, "transaction markers not durable");
                for p in response.markers[index]
                    .topics
                    .iter_mut()
                    .flat_map(|t| t.partitions.iter_mut())
                {
                    p.error_code = error::KAFKA_STORAGE_ERROR;
                }
            }
        }
        ResponseKind::WriteTxnMarkers(response)
    }))
}
