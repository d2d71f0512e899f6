//! Client quotas, enforced as Kafka's ClientQuotaManager does: each request
//! is counted against the quota that applies to its (user, client id), and
//! a client over its quota gets `throttle_time_ms` in the response while
//! its connection reads nothing more for that long (KIP-219).
//!
//! Quotas are metadata (AlterClientQuotas); the index over them is rebuilt
//! only when they change. Without a user or client-id quota requests are
//! not counted (and without an ip quota connections are not), so quotas
//! cost nothing until someone sets one.

pub(crate) mod entity;
pub(crate) mod mutations;
pub(crate) mod rate;
pub(crate) mod request;
pub(crate) mod throttle;

use crate::locks::MutexExt;
use rate::{QuotaWindow, TokenBucket};
use sluice_metadata::quota::{CLIENT_ID, IP, USER};
use sluice_metadata::MetadataImage;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The quota keys of (user, client-id) entities, and what each limits.
pub(crate) const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub(crate) const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub(crate) const REQUEST_PERCENTAGE: &str = "request_percentage";
pub(crate) const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// The quota key of ip entities.
pub(crate) const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum QuotaKind {
    /// Produce request bytes per second.
    Produce,
    /// Fetch response bytes per second.
    Fetch,
    /// Time on the broker's threads, in percent of one thread.
    Request,
    /// Partitions created and deleted per second (KIP-599).
    Mutation,
    /// New connections per second from one IP address.
    Connections,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
            QuotaKind::Mutation => CONTROLLER_MUTATION_RATE,
            QuotaKind::Connections => CONNECTION_CREATION_RATE,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Who a request is from, as quotas see it: the principal's name (without
/// `User:`) and the request header's client id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuotaClient<'a> {
    pub(crate) user: &'a str,
    pub(crate) client_id: &'a str,
}

/// One component of a (user, client-id) quota entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Absent,
    Default,
    Named(String),
}

impl Part {
    fn of(name: Option<Option<&str>>) -> Part {
        match name {
            None => Part::Absent,
            Some(None) => Part::Default,
            Some(Some(name)) => Part::Named(name.to_string()),
        }
    }
}

/// The (user, client-id) quotas by entity, each with its four limits,
/// and the connection creation rates of IP addresses (`None`: the default).
#[derive(Default)]
struct QuotaIndex {
    limits: HashMap<(Part, Part), [Option<f64>; 4]>,
    ip_rates: HashMap<Option<IpAddr>, f64>,
}

impl QuotaIndex {
    fn build(image: &MetadataImage) -> QuotaIndex {
        let mut limits = HashMap::new();
        let mut ip_rates = HashMap::new();
        for (entity, values) in image.client_quotas() {
            if let Some(ip) = entity.get(IP) {
                let ip = match ip {
                    None => None,
                    Some(ip) => match ip.parse() {
                        Ok(ip) => Some(ip),
                        Err(_) => continue,
                    },
                };
                if let Some(rate) = values.get(CONNECTION_CREATION_RATE) {
                    ip_rates.insert(ip, rate.0);
                }
                continue;
            }
            let user = entity.get(USER);
            let client = entity.get(CLIENT_ID);
            let only_user_and_client = entity
                .components()
                .iter()
                .all(|(t, _)| t == USER || t == CLIENT_ID);
            if !only_user_and_client || (user.is_none() && client.is_none()) {
                continue;
            }
            let mut entry = [None; 4];
            for kind in [
                QuotaKind::Produce,
                QuotaKind::Fetch,
                QuotaKind::Request,
                QuotaKind::Mutation,
            ] {
                entry[kind.index()] = values.get(kind.key()).map(|v| v.0);
            }
            limits.insert((Part::of(user), Part::of(client)), entry);
        }
        QuotaIndex { limits, ip_rates }
    }

    /// The connection creation rate of `ip` and the sensor counting it:
    /// its own, or the default's, each address on its own.
    fn resolve_ip(&self, ip: IpAddr) -> Option<(f64, SensorKey)> {
        let limit = self
            .ip_rates
            .get(&Some(ip))
            .or_else(|| self.ip_rates.get(&None))?;
        Some((
            *limit,
            SensorKey {
                kind: QuotaKind::Connections,
                user: None,
                client_id: Some(ip.to_string()),
            },
        ))
    }

    /// The quota of `kind` that applies to `client`, most specific entity
    /// first in Kafka's order, and the sensor that counts it: defaults
    /// apply to each user or client id on its own, not shared.
    fn resolve(&self, kind: QuotaKind, client: QuotaClient) -> Option<(f64, SensorKey)> {
        if self.limits.is_empty() {
            return None;
        }
        let user = || Part::Named(client.user.to_string());
        let id = || Part::Named(client.client_id.to_string());
        let levels = [
            (user(), id()),
            (user(), Part::Default),
            (user(), Part::Absent),
            (Part::Default, id()),
            (Part::Default, Part::Default),
            (Part::Default, Part::Absent),
            (Part::Absent, id()),
            (Part::Absent, Part::Default),
        ];
        levels.into_iter().find_map(|level| {
            let limit = (*self.limits.get(&level)?.get(kind.index())?)?;
            let sensor = SensorKey {
                kind,
                user: (level.0 != Part::Absent).then(|| client.user.to_string()),
                client_id: (level.1 != Part::Absent).then(|| client.client_id.to_string()),
            };
            Some((limit, sensor))
        })
    }
}

/// Whose usage one sensor counts: the user and/or client id of the entity
/// whose quota applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SensorKey {
    kind: QuotaKind,
    user: Option<String>,
    client_id: Option<String>,
}

/// How often idle sensors are swept out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Past this many sensors (clients inventing client ids under a default
/// quota), idle ones are swept every second instead.
const MANY_SENSORS: usize = 10_000;

struct Sensors {
    buckets: HashMap<SensorKey, TokenBucket>,
    swept_at_ms: u64,
}

/// The broker's client quota manager.
pub(crate) struct QuotaManager {
    window: QuotaWindow,
    started: Instant,
    /// Whether any user or client-id quota is set: without one, requests
    /// skip all of this without even reading the image.
    active: AtomicBool,
    /// Whether any ip quota is set: without one, new connections skip it.
    ip_active: AtomicBool,
    /// The index and the `quotas_changed_at` it was built for.
    index: Mutex<(u64, Arc<QuotaIndex>)>,
    sensors: Mutex<Sensors>,
}

/// What counting one request against its quota decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Throttle(pub(crate) Duration);

impl Throttle {
    pub(crate) fn ms(self) -> i32 {
        i32::try_from(self.0.as_millis()).unwrap_or(i32::MAX)
    }

    pub(crate) fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl QuotaManager {
    pub(crate) fn new(window: QuotaWindow) -> QuotaManager {
        QuotaManager {
            window,
            active: AtomicBool::new(false),
            ip_active: AtomicBool::new(false),
            started: Instant::now(),
            index: Mutex::new((u64::MAX, Arc::default())),
            sensors: Mutex::new(Sensors {
                buckets: HashMap::new(),
                swept_at_ms: 0,
            }),
        }
    }

    pub(crate) fn from_config(
        config: &crate::config::BrokerConfig,
        image: &MetadataImage,
    ) -> QuotaManager {
        let quotas = QuotaManager::new(QuotaWindow {
            samples: config.get_i64("quota.window.num").clamp(1, u32::MAX as i64) as u32,
            sample_ms: config.get_i64("quota.window.size.seconds").max(1) as u64 * 1000,
        });
        quotas.observe(image);
        quotas
    }

    /// Notes which kinds of quota the image being published has.
    pub(crate) fn observe(&self, image: &MetadataImage) {
        let (mut clients, mut ips) = (false, false);
        for entity in image.client_quotas().keys() {
            if entity.get(IP).is_some() {
                ips = true;
            } else {
                clients = true;
            }
        }
        self.active.store(clients, Ordering::Relaxed);
        self.ip_active.store(ips, Ordering::Relaxed);
    }

    /// Whether any user or client-id quota is set (as of the last image
    /// published).
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The longest one throttle mutes a connection: a whole quota window.
    pub(crate) fn max_mute(&self) -> Duration {
        Duration::from_millis(self.window.total_ms())
    }

    /// Whether any ip quota is set.
    pub(crate) fn ip_active(&self) -> bool {
        self.ip_active.load(Ordering::Relaxed)
    }

    fn index(&self, image: &MetadataImage) -> Arc<QuotaIndex> {
        let mut index = self.index.locked("quota index");
        if index.0 != image.quotas_changed_at {
            *index = (image.quotas_changed_at, Arc::new(QuotaIndex::build(image)));
        }
        Arc::clone(&index.1)
    }

    /// The quota of `kind` that applies to `client`, if any.
    pub(crate) fn limit(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
    ) -> Option<f64> {
        if image.client_quotas().is_empty() {
            return None;
        }
        self.index(image)
            .resolve(kind, client)
            .map(|(limit, _)| limit)
    }

    /// The most a fetch may return so one response does not overrun the
    /// consumer's byte rate for a whole window (Kafka's
    /// `getMaxValueInQuotaWindow`); `None` without a quota.
    pub(crate) fn max_fetch_bytes(
        &self,
        image: &MetadataImage,
        client: QuotaClient,
    ) -> Option<usize> {
        let limit = self.limit(image, QuotaKind::Fetch, client)?;
        let bytes = limit * self.window.fetch_cap_span_ms() as f64 / 1000.0;
        Some(bytes.clamp(1.0, i32::MAX as f64) as usize)
    }

    /// Counts `value` against `client`'s quota of `kind` and says how long
    /// to throttle it: until its bucket is out of debt.
    /// As in Kafka, byte-rate throttles have no cap and request-time ones
    /// are at most one sample window.
    pub(crate) fn record(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
        value: f64,
    ) -> Throttle {
        if image.client_quotas().is_empty() {
            return Throttle::default();
        }
        let Some((limit, key)) = self.index(image).resolve(kind, client) else {
            return Throttle::default();
        };
        let cap = (kind == QuotaKind::Request).then_some(self.window.sample_ms);
        self.count(limit, key, value, cap, false)
    }

    /// Whether `client`'s bucket of `kind` is in debt now.
    pub(crate) fn in_debt(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
    ) -> bool {
        self.debt(image, kind, client) > 0
    }

    /// How long `client`'s bucket of `kind` is still in debt, in ms.
    pub(crate) fn debt(&self, image: &MetadataImage, kind: QuotaKind, client: QuotaClient) -> u64 {
        let Some((limit, key)) = self.index(image).resolve(kind, client) else {
            return 0;
        };
        let now_ms = self.now_ms();
        let mut sensors = self.sensors.locked("quota sensors");
        match sensors.buckets.get_mut(&key) {
            Some(bucket) => bucket.debt_ms(limit, self.window, now_ms),
            // A client with no bucket has a full one.
            None => 0,
        }
    }

    /// Gives back `value` counted against `client`'s quota of `kind` for
    /// something that did not happen (a topic that failed to be created).
    pub(crate) fn give_back(
        &self,
        image: &MetadataImage,
        kind: QuotaKind,
        client: QuotaClient,
        value: f64,
    ) {
        let Some((limit, key)) = self.index(image).resolve(kind, client) else {
            return;
        };
        let now_ms = self.now_ms();
        if let Some(bucket) = self.sensors.locked("quota sensors").buckets.get_mut(&key) {
            bucket.unrecord(limit, self.window, value, now_ms);
        }
    }

    /// Counts a new connection from `ip` against its connection_creation_rate
    /// quota. One over it is not counted (it is refused) and the throttle,
    /// at most one sample window, says how long to hold it before closing it.
    pub(crate) fn connection_created(&self, image: &MetadataImage, ip: IpAddr) -> Throttle {
        if image.client_quotas().is_empty() {
            return Throttle::default();
        }
        let Some((limit, key)) = self.index(image).resolve_ip(ip) else {
            return Throttle::default();
        };
        self.count(limit, key, 1.0, Some(self.window.sample_ms), true)
    }

    /// Records `value` on the sensor `key` and how far over `limit` that
    /// puts it, at most `cap_ms`; with `refuse`, a value that goes over is
    /// taken back.
    fn count(
        &self,
        limit: f64,
        key: SensorKey,
        value: f64,
        cap_ms: Option<u64>,
        refuse: bool,
    ) -> Throttle {
        let now_ms = self.now_ms();
        let mut sensors = self.sensors.locked("quota sensors");
        self.sweep(&mut sensors, now_ms);
        let bucket = sensors.buckets.entry(key).or_default();
        let wait_ms = bucket.record(limit, self.window, value, now_ms);
        if wait_ms == 0 {
            return Throttle::default();
        }
        if refuse {
            bucket.unrecord(limit, self.window, value, now_ms);
        }
        Throttle(Duration::from_millis(
            cap_ms.map_or(wait_ms, |cap| wait_ms.min(cap)),
        ))
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Drops sensors whose buckets have surely refilled.
    fn sweep(&self, sensors: &mut Sensors, now_ms: u64) {
        let interval = if sensors.buckets.len() > MANY_SENSORS {
            1000
        } else {
            SWEEP_INTERVAL.as_millis() as u64
        };
        if now_ms.saturating_sub(sensors.swept_at_ms) < interval {
            return;
        }
        sensors.swept_at_ms = now_ms;
        let window = self.window;
        sensors
            .buckets
            .retain(|_, bucket| !bucket.idle(window, now_ms));
    }
}

/// Time on the broker's threads as Kafka's request quota counts it:
/// percent of one thread for a second.
pub(crate) fn thread_time_percent(busy: Duration) -> f64 {
    busy.as_secs_f64() * 100.0
}

#[cfg(test)]
mod tests;
