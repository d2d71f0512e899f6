//! Client quotas: AlterClientQuotas entries Kafka accepts and refuses
//! (entity types and combinations, keys per entity, value types, removals
//! of what is not set, validate_only), then DescribeClientQuotas with each
//! match type, strict and not, and the filters Kafka refuses.

use sluice_protocol::kafka_protocol::messages::alter_client_quotas_request::{
    EntityData, EntryData, OpData,
};
use sluice_protocol::kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use sluice_protocol::kafka_protocol::messages::{
    AlterClientQuotasRequest, DescribeClientQuotasRequest, RequestKind, ResponseKind,
};

use super::topics::s;
use super::{Obs, Side};

type Entity<'a> = &'a [(&'a str, Option<&'a str>)];

fn entry(entity: Entity, ops: &[(&str, f64, bool)]) -> EntryData {
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v, remove)| {
                    OpData::default()
                        .with_key(s(k))
                        .with_value(*v)
                        .with_remove(*remove)
                })
                .collect(),
        )
}

fn alter(side: &mut Side, obs: &mut Obs, key: &str, entries: Vec<EntryData>, validate_only: bool) {
    let request = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    if let ResponseKind::AlterClientQuotas(r) =
        side.wire.send(RequestKind::AlterClientQuotas(request))
    {
        let mut results: Vec<_> = r
            .entries
            .iter()
            .map(|e| {
                // Kafka echoes the entity in its own order.
                let mut entity: Vec<_> = e
                    .entity
                    .iter()
                    .map(|c| {
                        format!(
                            "{}={}",
                            c.entity_type,
                            c.entity_name.as_deref().unwrap_or("<default>")
                        )
                    })
                    .collect();
                entity.sort();
                (entity.join(","), e.error_code)
            })
            .collect();
        results.sort();
        for (entity, code) in results {
            obs.error(format!("{key}/{entity}"), code);
        }
    }
}

fn describe(
    side: &mut Side,
    obs: &mut Obs,
    key: &str,
    filter: &[(&str, i8, Option<&str>)],
    strict: bool,
) {
    let request = DescribeClientQuotasRequest::default()
        .with_components(
            filter
                .iter()
                .map(|(t, m, name)| {
                    ComponentData::default()
                        .with_entity_type(s(t))
                        .with_match_type(*m)
                        .with_match(name.map(s))
                })
                .collect(),
        )
        .with_strict(strict);
    if let ResponseKind::DescribeClientQuotas(r) =
        side.wire.send(RequestKind::DescribeClientQuotas(request))
    {
        obs.error(format!("{key}/error"), r.error_code);
        let Some(entries) = r.entries else {
            obs.put(format!("{key}/entries"), "null");
            return;
        };
        let mut found: Vec<String> = entries
            .iter()
            .map(|e| {
                let mut entity: Vec<_> = e
                    .entity
                    .iter()
                    .map(|c| {
                        format!(
                            "{}={}",
                            c.entity_type,
                            c.entity_name.as_deref().unwrap_or("<default>")
                        )
                    })
                    .collect();
                entity.sort();
                let mut values: Vec<_> = e
                    .values
                    .iter()
                    .map(|v| format!("{}={}", v.key, v.value))
                    .collect();
                values.sort();
                format!("{} {}", entity.join(","), values.join(","))
            })
            // Only what this scenario set: the reference may hold others.
            .filter(|line| line.contains("diffq"))
            .collect();
        found.sort();
        obs.put(format!("{key}/entries"), found.join(" | "));
    }
}

pub(crate) fn client_quotas(side: &mut Side, obs: &mut Obs) {
    const USER: &str = "user";
    const CLIENT: &str = "client-id";
    let alice: Entity = &[(USER, Some("diffq-alice"))];
    let alice_app: Entity = &[(USER, Some("diffq-alice")), (CLIENT, Some("diffq-app"))];
    let app: Entity = &[(CLIENT, Some("diffq-app"))];
    let ip: Entity = &[("ip", Some("10.9.8.7"))];
    alter(
        side,
        obs,
        "set",
        vec![
            entry(
                alice,
                &[
                    ("producer_byte_rate", 1024.0, false),
                    ("request_percentage", 12.5, false),
                ],
            ),
            entry(alice_app, &[("consumer_byte_rate", 2048.0, false)]),
            entry(app, &[("controller_mutation_rate", 3.5, false)]),
            entry(ip, &[("connection_creation_rate", 7.0, false)]),
        ],
        false,
    );
    let bad: &[(&str, Entity, (&str, f64, bool))] = &[
        (
            "fractional_long",
            &[(USER, Some("diffq-bad1"))],
            ("producer_byte_rate", 10.5, false),
        ),
        (
            "zero",
            &[(USER, Some("diffq-bad2"))],
            ("consumer_byte_rate", 0.0, false),
        ),
        (
            "negative",
            &[(USER, Some("diffq-bad3"))],
            ("request_percentage", -1.0, false),
        ),
        (
            "ip_key_on_user",
            &[(USER, Some("diffq-bad4"))],
            ("connection_creation_rate", 1.0, false),
        ),
        (
            "user_key_on_ip",
            &[("ip", Some("10.9.8.6"))],
            ("producer_byte_rate", 1.0, false),
        ),
        (
            "unknown_key",
            &[(USER, Some("diffq-bad5"))],
            ("no_such_quota", 1.0, false),
        ),
        (
            "fractional_int",
            &[("ip", Some("10.9.8.5"))],
            ("connection_creation_rate", 1.5, false),
        ),
        (
            "bad_ip",
            &[("ip", Some("not an address"))],
            ("connection_creation_rate", 1.0, false),
        ),
        (
            "ip_with_user",
            &[("ip", None), (USER, Some("diffq-bad6"))],
            ("connection_creation_rate", 1.0, false),
        ),
        (
            "unknown_type",
            &[("group", Some("diffq-bad7"))],
            ("producer_byte_rate", 1.0, false),
        ),
        (
            "empty_name",
            &[(USER, Some(""))],
            ("producer_byte_rate", 1.0, false),
        ),
        (
            "remove_unset",
            &[(USER, Some("diffq-bad8"))],
            ("producer_byte_rate", 0.0, true),
        ),
        (
            "remove_unknown_key",
            &[(USER, Some("diffq-bad9"))],
            ("no_such_quota", 0.0, true),
        ),
    ];
    for (name, entity, op) in bad {
        alter(
            side,
            obs,
            &format!("refuse/{name}"),
            vec![entry(entity, &[*op])],
            false,
        );
    }
    alter(
        side,
        obs,
        "validate_only",
        vec![entry(
            &[(USER, Some("diffq-vo"))],
            &[("producer_byte_rate", 1.0, false)],
        )],
        true,
    );
    alter(
        side,
        obs,
        "empty_entity",
        vec![entry(&[], &[("producer_byte_rate", 1.0, false)])],
        false,
    );

    // Kafka applies quota records a moment after the answer.
    std::thread::sleep(std::time::Duration::from_millis(500));
    describe(side, obs, "describe/all", &[], false);
    describe(side, obs, "describe/all_strict", &[], true);
    describe(
        side,
        obs,
        "describe/alice",
        &[(USER, 0, Some("diffq-alice"))],
        false,
    );
    describe(
        side,
        obs,
        "describe/alice_strict",
        &[(USER, 0, Some("diffq-alice"))],
        true,
    );
    describe(side, obs, "describe/any_user", &[(USER, 2, None)], false);
    describe(
        side,
        obs,
        "describe/any_client_strict",
        &[(CLIENT, 2, None)],
        true,
    );
    describe(
        side,
        obs,
        "describe/default_user",
        &[(USER, 1, None)],
        false,
    );
    describe(side, obs, "describe/ip", &[("ip", 2, None)], false);
    describe(
        side,
        obs,
        "describe/validated_only",
        &[(USER, 0, Some("diffq-vo"))],
        false,
    );
    describe(side, obs, "describe/exact_null", &[(USER, 0, None)], false);
    describe(
        side,
        obs,
        "describe/default_with_name",
        &[(USER, 1, Some("x"))],
        false,
    );
    describe(
        side,
        obs,
        "describe/any_with_name",
        &[(USER, 2, Some("x"))],
        false,
    );
    describe(
        side,
        obs,
        "describe/repeated",
        &[(USER, 2, None), (USER, 2, None)],
        false,
    );
    describe(
        side,
        obs,
        "describe/ip_and_user",
        &[("ip", 2, None), (USER, 2, None)],
        false,
    );
    describe(
        side,
        obs,
        "describe/unknown_type",
        &[("group", 2, None)],
        false,
    );
    describe(
        side,
        obs,
        "describe/unknown_match",
        &[(USER, 7, None)],
        false,
    );

    alter(
        side,
        obs,
        "remove",
        vec![
            entry(
                alice,
                &[
                    ("producer_byte_rate", 0.0, true),
                    ("request_percentage", 0.0, true),
                ],
            ),
            entry(alice_app, &[("consumer_byte_rate", 0.0, true)]),
            entry(app, &[("controller_mutation_rate", 0.0, true)]),
            entry(ip, &[("connection_creation_rate", 0.0, true)]),
        ],
        false,
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    describe(side, obs, "describe/after_remove", &[], false);
}
