//! DescribeClientQuotas (key 48): the client quotas whose entity a filter
//! matches (Kafka's ClientQuotasImage.describe). The caller needs
//! DescribeConfigs on the cluster (checked in `authorize`).

use super::{str_bytes, ApiSupport};
use crate::quota::entity::{FilterComponent, QuotaFilter};
use crate::state::BrokerState;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    ApiKey, DescribeClientQuotasRequest, DescribeClientQuotasResponse, ResponseKind,
};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeClientQuotas, 0, 1);

pub(crate) fn handle(state: &BrokerState, request: DescribeClientQuotasRequest) -> ResponseKind {
    let components = request
        .components
        .into_iter()
        .map(|c| FilterComponent {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            name: c._match.map(|m| m.to_string()),
        })
        .collect();
    let filter = match QuotaFilter::new(components, request.strict) {
        Ok(filter) => filter,
        Err((code, why)) => {
            return ResponseKind::DescribeClientQuotas(
                DescribeClientQuotasResponse::default()
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(why)))
                    .with_entries(None),
            )
        }
    };
    let image = state.image();
    let entries = image
        .client_quotas()
        .iter()
        .filter(|(entity, _)| filter.matches(entity))
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .components()
                        .iter()
                        .map(|(t, name)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(t.clone()))
                                .with_entity_name(name.clone().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(key, value)| {
                            ValueData::default()
                                .with_key(str_bytes(key.clone()))
                                .with_value(value.0)
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::DescribeClientQuotas(
        DescribeClientQuotasResponse::default().with_entries(Some(entries)),
    )
}
