use super::*;
use sluice_metadata::{MetadataRecord, QuotaEntity, QuotaValue};

fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
    let part = |t: &str, n: Option<Option<&str>>| n.map(|n| (t.to_string(), n.map(str::to_string)));
    QuotaEntity::new(part(USER, user).into_iter().chain(part(CLIENT_ID, client))).unwrap()
}

fn set(image: &mut MetadataImage, entity: QuotaEntity, key: &str, value: f64) {
    image.apply(&MetadataRecord::ClientQuotaChanged {
        entity,
        key: key.to_string(),
        value: Some(QuotaValue(value)),
    });
}

const WINDOW: QuotaWindow = QuotaWindow {
    samples: 11,
    sample_ms: 1000,
};

fn client<'a>(user: &'a str, client_id: &'a str) -> QuotaClient<'a> {
    QuotaClient { user, client_id }
}

#[test]
fn the_most_specific_entity_wins_in_kafkas_order() {
    let quotas = QuotaManager::new(WINDOW);
    let mut image = MetadataImage::default();
    let limit = |image: &MetadataImage, u, c| quotas.limit(image, QuotaKind::Produce, client(u, c));
    assert_eq!(limit(&image, "alice", "app"), None);
    let levels = [
        (entity(None, Some(None)), 8.0),
        (entity(None, Some(Some("app"))), 7.0),
        (entity(Some(None), None), 6.0),
        (entity(Some(None), Some(None)), 5.0),
        (entity(Some(None), Some(Some("app"))), 4.0),
        (entity(Some(Some("alice")), None), 3.0),
        (entity(Some(Some("alice")), Some(None)), 2.0),
        (entity(Some(Some("alice")), Some(Some("app"))), 1.0),
    ];
    // Each more specific level, once set, takes over.
    for (entity, value) in levels {
        set(&mut image, entity, PRODUCER_BYTE_RATE, value);
        assert_eq!(limit(&image, "alice", "app"), Some(value));
    }
    // Others fall to the levels that name neither alice nor app.
    assert_eq!(limit(&image, "bob", "other"), Some(5.0));
    // Another key of the same entity does not count.
    assert_eq!(
        quotas.limit(&image, QuotaKind::Fetch, client("alice", "app")),
        None
    );
}

#[test]
fn defaults_apply_to_each_client_on_its_own() {
    let quotas = QuotaManager::new(WINDOW);
    let mut image = MetadataImage::default();
    set(
        &mut image,
        entity(None, Some(None)),
        PRODUCER_BYTE_RATE,
        1000.0,
    );
    // A whole 11 s window of the quota at once is allowed...
    let a = quotas.record(&image, QuotaKind::Produce, client("", "a"), 11_000.0);
    assert!(a.is_zero());
    // ...and another client id has its own sensor.
    let b = quotas.record(&image, QuotaKind::Produce, client("", "b"), 11_000.0);
    assert!(b.is_zero());
    // 10 KB more is 10 s of debt; byte rates have no cap.
    let a = quotas.record(&image, QuotaKind::Produce, client("", "a"), 10_000.0);
    assert_eq!(a.0, Duration::from_secs(10));
    let far_over = quotas.record(&image, QuotaKind::Produce, client("", "a"), 1e6);
    assert_eq!(far_over.0, Duration::from_secs(1010));
}

#[test]
fn request_time_throttles_are_at_most_one_sample_window() {
    let quotas = QuotaManager::new(WINDOW);
    let mut image = MetadataImage::default();
    set(
        &mut image,
        entity(Some(Some("alice")), None),
        REQUEST_PERCENTAGE,
        1.0,
    );
    let alice = client("alice", "c");
    // Five seconds of a whole thread.
    let throttle = quotas.record(&image, QuotaKind::Request, alice, 500.0);
    assert_eq!(throttle.0, Duration::from_secs(1));
}

#[test]
fn a_fetch_is_capped_to_a_windows_worth() {
    let quotas = QuotaManager::new(WINDOW);
    let mut image = MetadataImage::default();
    let alice = client("alice", "c");
    assert_eq!(quotas.max_fetch_bytes(&image, alice), None);
    set(
        &mut image,
        entity(Some(Some("alice")), None),
        CONSUMER_BYTE_RATE,
        1000.0,
    );
    assert_eq!(quotas.max_fetch_bytes(&image, alice), Some(10_000));
    assert!(quotas
        .record(&image, QuotaKind::Fetch, alice, 11_000.0)
        .is_zero());
    assert!(!quotas
        .record(&image, QuotaKind::Fetch, alice, 1.0)
        .is_zero());
}

#[test]
fn an_ip_over_its_connection_rate_is_refused_and_not_counted() {
    let quotas = QuotaManager::new(QuotaWindow {
        samples: 2,
        sample_ms: 1000,
    });
    let mut image = MetadataImage::default();
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let other: IpAddr = "10.0.0.1".parse().unwrap();
    assert!(quotas.connection_created(&image, local).is_zero());
    let default_ip = QuotaEntity::new([(IP.to_string(), None)]).unwrap();
    set(&mut image, default_ip, CONNECTION_CREATION_RATE, 2.0);
    // Two per second: a whole two-second window's worth at once.
    for _ in 0..4 {
        assert!(quotas.connection_created(&image, local).is_zero());
    }
    let refused = quotas.connection_created(&image, local);
    assert!(!refused.is_zero());
    // The refused one was not counted: the next is refused for as long.
    assert_eq!(quotas.connection_created(&image, local), refused);
    // Every address has a default of its own.
    assert!(quotas.connection_created(&image, other).is_zero());
}
