//! Differential tests: the same scenarios against a reference Apache Kafka
//! and against a `sluice serve` process, comparing what a client sees field
//! by field. Each scenario records observations (`path = value`, only what a
//! client can rely on: error codes, counts, offsets, config names, defaults
//! and sources — never ids, ports or timings); every observation that
//! differs must be listed in docs/COMPATIBILITY.md's "Intended differences"
//! table with its reason, and every entry of that table must still match a
//! difference, so the list stays true.
//!
//! Needs a running reference Kafka: `scripts/differential.sh` starts one
//! (scripts/kafka-ref.sh) and runs this test with `SLUICE_REFERENCE_KAFKA`
//! set to its address.

mod bad_input;
mod configs;
mod groups;
mod quotas;
mod records;
mod topics;
mod txns;
mod wire;

use std::collections::BTreeMap;
use std::fmt::Display;

use sluice_protocol::kafka_protocol::error::ResponseError;

use crate::common::{free_port, read_log, BrokerProcess};
use wire::{common_versions, ranges, VersionRanges, Wire};

/// One broker under comparison.
pub(crate) struct Side {
    pub(crate) name: &'static str,
    pub(crate) addr: String,
    pub(crate) wire: Wire,
    pub(crate) own_versions: VersionRanges,
    versions: VersionRanges,
}

impl Side {
    fn new(name: &'static str, addr: String) -> Side {
        let mut wire = Wire::connect(&addr);
        let own_versions = ranges(&wire.api_versions());
        Side {
            name,
            addr,
            wire,
            own_versions,
            versions: VersionRanges::new(),
        }
    }

    /// A second connection speaking the agreed versions.
    pub(crate) fn connection(&self) -> Wire {
        let mut wire = Wire::connect(&self.addr);
        wire.use_versions(self.versions.clone());
        wire
    }
}

/// What one scenario saw on one broker, in order of keys.
#[derive(Default)]
pub(crate) struct Obs(BTreeMap<String, String>);

impl Obs {
    pub(crate) fn put(&mut self, key: impl Into<String>, value: impl Display) {
        self.0.insert(key.into(), value.to_string());
    }

    /// An error code by name, e.g. `UnknownTopicOrPartition(3)`.
    pub(crate) fn error(&mut self, key: impl Into<String>, code: i16) {
        self.put(key, error_name(code));
    }
}

pub(crate) fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(e) => format!("{e:?}({code})"),
    }
}

type Scenario = fn(&mut Side, &mut Obs);

/// Every scenario, by name: the name is the first part of each difference's key.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("api_versions", topics::api_versions),
    ("metadata", topics::metadata),
    ("create_topics", topics::create_topics),
    ("delete_topics", topics::delete_topics),
    ("create_partitions", topics::create_partitions),
    ("describe_topic_configs", configs::describe_topic_configs),
    ("describe_broker_configs", configs::describe_broker_configs),
    ("alter_configs", configs::alter_configs),
    ("describe_cluster", topics::describe_cluster),
    ("describe_quorum", topics::describe_quorum),
    ("elect_leaders", topics::elect_leaders),
    ("reassignments", topics::reassignments),
    ("describe_log_dirs", topics::describe_log_dirs),
    ("produce", records::produce),
    ("fetch", records::fetch),
    ("list_offsets", records::list_offsets),
    ("offset_for_leader_epoch", records::offset_for_leader_epoch),
    ("delete_records", records::delete_records),
    ("find_coordinator", groups::find_coordinator),
    ("classic_group", groups::classic_group),
    ("offsets", groups::offsets),
    ("group_admin", groups::group_admin),
    ("consumer_group", groups::consumer_group),
    ("init_producer_id", txns::init_producer_id),
    ("transactions", txns::transactions),
    ("describe_transactions", txns::describe_transactions),
    ("broker_dynamic_configs", configs::broker_dynamic_configs),
    ("acls", configs::acls_without_an_authorizer),
    ("client_quotas", quotas::client_quotas),
    ("bad_input", bad_input::bad_input),
];

/// One entry of the intended-differences table: a key pattern (`*` matches
/// any run of characters), optionally `when <text>` that the two values
/// must contain (e.g. `when sluice=(absent)`), and whether any difference
/// matched it.
struct Intended {
    pattern: String,
    when: Option<String>,
    used: bool,
}

impl Intended {
    fn matches(&self, key: &str, values: &str) -> bool {
        glob_match(&self.pattern, key)
            && self
                .when
                .as_ref()
                .is_none_or(|w| values.contains(w.as_str()))
    }
}

const COMPATIBILITY_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/COMPATIBILITY.md");
const INTENDED_HEADING: &str = "## Intended differences";

/// The first-column patterns of the table under [`INTENDED_HEADING`], or
/// why they cannot be read.
fn intended_differences() -> Result<Vec<Intended>, String> {
    let doc = std::fs::read_to_string(COMPATIBILITY_DOC)
        .map_err(|e| format!("cannot read docs/COMPATIBILITY.md: {e}"))?;
    let section = doc
        .split(INTENDED_HEADING)
        .nth(1)
        .ok_or_else(|| format!("docs/COMPATIBILITY.md has no '{INTENDED_HEADING}' section"))?;
    let section = section.split("\n## ").next().unwrap_or_default();
    Ok(section
        .lines()
        .filter_map(|line| {
            let cell = line.strip_prefix("| `")?;
            let entry = cell.split('`').next()?;
            let (pattern, when) = match entry.split_once(" when ") {
                Some((p, w)) => (p, Some(w.to_string())),
                None => (entry, None),
            };
            Some(Intended {
                pattern: pattern.to_string(),
                when,
                used: false,
            })
        })
        .collect())
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// `scenario/key: kafka=… sluice=…` for every key whose values differ.
fn differences(scenario: &str, kafka: &Obs, sluice: &Obs) -> Vec<(String, String)> {
    let keys: std::collections::BTreeSet<&String> = kafka.0.keys().chain(sluice.0.keys()).collect();
    let absent = "(absent)".to_string();
    keys.into_iter()
        .filter_map(|key| {
            let k = kafka.0.get(key).unwrap_or(&absent);
            let s = sluice.0.get(key).unwrap_or(&absent);
            (k != s).then(|| (format!("{scenario}/{key}"), format!("kafka={k} sluice={s}")))
        })
        .collect()
}

/// Kafka creates `__consumer_offsets` and `__transaction_state` on first
/// use and answers COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS
/// until they are loaded; clients retry. Both brokers get their internal
/// topics ready before any scenario, so the scenarios compare settled answers.
fn warm_up(side: &mut Side) {
    use sluice_protocol::kafka_protocol::messages::{
        FindCoordinatorRequest, InitProducerIdRequest, RequestKind, ResponseKind,
    };
    use sluice_protocol::kafka_protocol::protocol::StrBytes;
    let deadline = std::time::Instant::now() + crate::common::PATIENCE;
    for key_type in [0i8, 1] {
        loop {
            let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
            if side
                .wire
                .version_of(sluice_protocol::kafka_protocol::messages::ApiKey::FindCoordinator)
                >= Some(4)
            {
                request.coordinator_keys = vec![StrBytes::from_static_str("diff-warm-up")];
            } else {
                request.key = StrBytes::from_static_str("diff-warm-up");
            }
            let ready = match side.wire.send(RequestKind::FindCoordinator(request)) {
                ResponseKind::FindCoordinator(r) => {
                    r.error_code == 0 && r.coordinators.iter().all(|c| c.error_code == 0)
                }
                _ => false,
            };
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: coordinators never ready",
                side.name
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    loop {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(
                sluice_protocol::kafka_protocol::messages::TransactionalId(
                    StrBytes::from_static_str("diff-warm-up"),
                ),
            ))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(sluice_protocol::kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1);
        if let ResponseKind::InitProducerId(r) =
            side.wire.send(RequestKind::InitProducerId(request))
        {
            if r.error_code == 0 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: transactions never ready",
            side.name
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs a reference Kafka: run scripts/differential.sh"]
fn sluice_answers_like_the_reference_kafka() {
    let reference = std::env::var("SLUICE_REFERENCE_KAFKA")
        .expect("SLUICE_REFERENCE_KAFKA=HOST:PORT of a reference Kafka (scripts/differential.sh)");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let broker = BrokerProcess::spawn(
        free_port(),
        &dir.path().join("data"),
        &log,
        &["group.initial.rebalance.delay.ms=0"],
    );
    let mut kafka = Side::new("kafka", reference);
    let mut sluice = Side::new("sluice", broker.bootstrap());
    let agreed = common_versions(&kafka.own_versions, &sluice.own_versions);
    for side in [&mut kafka, &mut sluice] {
        side.versions = agreed.clone();
        side.wire.use_versions(agreed.clone());
    }

    for side in [&mut kafka, &mut sluice] {
        warm_up(side);
    }
    let mut seen = Vec::new();
    for (name, scenario) in SCENARIOS {
        let (mut on_kafka, mut on_sluice) = (Obs::default(), Obs::default());
        scenario(&mut kafka, &mut on_kafka);
        scenario(&mut sluice, &mut on_sluice);
        println!(
            "{name}: {} observations",
            on_kafka.0.len().max(on_sluice.0.len())
        );
        if std::env::var_os("SLUICE_DIFFERENTIAL_VERBOSE").is_some() {
            for (key, value) in &on_kafka.0 {
                println!("  kafka {name}/{key} = {value}");
            }
        }
        seen.extend(differences(name, &on_kafka, &on_sluice));
    }
    let mut unexplained = Vec::new();
    let mut intended = intended_differences().unwrap_or_else(|why| {
        unexplained.push(why);
        Vec::new()
    });
    for (key, values) in seen {
        match intended.iter_mut().find(|i| i.matches(&key, &values)) {
            Some(entry) => {
                entry.used = true;
                println!("  intended {key}: {values}");
            }
            None => {
                println!("  DIFFERENT {key}: {values}");
                unexplained.push(format!("{key}: {values}"));
            }
        }
    }
    let stale: Vec<&str> = intended
        .iter()
        .filter(|i| !i.used)
        .map(|i| i.pattern.as_str())
        .collect();
    broker.terminate();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "{} difference(s) from Kafka not listed in docs/COMPATIBILITY.md:\n  {}\n\
         {} listed difference(s) no longer seen (remove them):\n  {}\nbroker log:\n{}",
        unexplained.len(),
        unexplained.join("\n  "),
        stale.len(),
        stale.join("\n  "),
        read_log(&log)
    );
}

#[test]
fn glob_patterns_match_as_documented() {
    assert!(glob_match("a/b", "a/b"));
    assert!(!glob_match("a/b", "a/bc"));
    assert!(glob_match("a/*", "a/b/c"));
    assert!(glob_match("a/*/c", "a/xyz/c"));
    assert!(!glob_match("a/*/c", "a/xyz/d"));
    assert!(glob_match("*.max", "api/Produce.max"));
}
