//! InitProducerId (key 22): hands idempotent producers their id and epoch.
//! Ids come from blocks recorded in the metadata log, so they never repeat
//! across restarts. Transactional ids need the transaction coordinator,
//! which is not implemented yet.

use super::ApiSupport;
use crate::controller::Controller;
use crate::state::BrokerState;
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use sluice_metadata::MetadataRecord;
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::InitProducerId, 0, 5);

/// Producer ids reserved per metadata record.
const ID_BLOCK: i64 = 1000;

fn response(code: i16, id: i64, epoch: i16) -> ResponseKind {
    ResponseKind::InitProducerId(
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
    )
}

/// Takes the next producer id, reserving a new block durably when the
/// current one is used up.
fn allocate(state: &BrokerState) -> Result<i64, crate::controller::ApiError> {
    let mut ids = state.producer_ids.lock().expect("producer id lock");
    let (next, end) = *ids;
    if next < end {
        ids.0 += 1;
        return Ok(next);
    }
    let start = state.image().next_producer_id.max(next);
    Controller::new(state).commit(vec![MetadataRecord::ProducerIdsAllocated {
        next: start + ID_BLOCK,
    }])?;
    *ids = (start + 1, start + ID_BLOCK);
    Ok(start)
}

pub(crate) fn handle(state: &BrokerState, request: InitProducerIdRequest) -> ResponseKind {
    match request.transactional_id.as_ref().map(|id| id.as_str()) {
        None => {}
        Some("") => return response(error::INVALID_REQUEST, -1, -1),
        Some(_) => return response(error::COORDINATOR_NOT_AVAILABLE, -1, -1),
    }
    // KIP-360: a known idempotent producer may bump its epoch to recover.
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return response(
            error::NONE,
            request.producer_id.0,
            request.producer_epoch + 1,
        );
    }
    match allocate(state) {
        Ok(id) => response(error::NONE, id, 0),
        Err(e) => {
            tracing::error!(error = %e.message, "cannot allocate producer ids");
            response(error::COORDINATOR_NOT_AVAILABLE, -1, -1)
        }
    }
}
