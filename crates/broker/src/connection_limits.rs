//! Kafka's connection limits (`max.connections`, `max.connections.per.ip`,
//! `max.connections.per.ip.overrides`, `max.connection.creation.rate`, and
//! per listener `listener.name.<name>.max.connections` and
//! `listener.name.<name>.max.connection.creation.rate`), the back-off of
//! the accept loop, and
//! log lines that are written at most once per interval, so that a client
//! storm or descriptor exhaustion cannot flood the log.

use crate::config::{parse_connection_overrides, BrokerConfig};
use crate::locks::MutexExt;
use crate::quota::rate::{QuotaWindow, TokenBucket};
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shortest gap between two log lines about one kind of event.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How many connections the broker holds, and from each address.
pub(crate) struct ConnectionLimits {
    /// One permit per connection allowed by `max.connections`.
    slots: Arc<Semaphore>,
    max_connections: u32,
    max_per_ip: u32,
    per_ip_overrides: HashMap<IpAddr, u32>,
    open_per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
    /// `max.connection.creation.rate`, across the listeners.
    broker_rate: Option<CreationRate>,
    /// Limits of single listeners, by lowercase listener name.
    listeners: HashMap<String, ListenerLimits>,
    rejected_log: LogThrottle,
    full_log: LogThrottle,
    rate_log: LogThrottle,
}

/// What `listener.name.<name>.` settings limit on one listener.
#[derive(Default)]
struct ListenerLimits {
    /// `max.connections` of this listener and its permits.
    slots: Option<(Arc<Semaphore>, u32)>,
    rate: Option<CreationRate>,
}

/// A connection creation rate limit: new connections per second, measured
/// as client quotas are (`quota.window.num` × `quota.window.size.seconds`).
struct CreationRate {
    limit: f64,
    window: QuotaWindow,
    started: Instant,
    bucket: Mutex<TokenBucket>,
}

impl CreationRate {
    fn new(limit: u32, window: QuotaWindow) -> Option<CreationRate> {
        (limit < i32::MAX as u32).then(|| CreationRate {
            limit: f64::from(limit.max(1)),
            window,
            started: Instant::now(),
            bucket: Mutex::default(),
        })
    }

    /// Counts one new connection; how long to wait before accepting it
    /// for the rate to stay at the limit.
    fn record(&self) -> Duration {
        let now_ms = self.started.elapsed().as_millis() as u64;
        let mut bucket = self.bucket.locked("connection rate");
        let wait_ms = bucket.record(self.limit, self.window, 1.0, now_ms);
        Duration::from_millis(wait_ms.min(self.window.sample_ms))
    }
}

/// The `max.connections` permits a connection holds: the broker's (none on
/// the inter-broker listener, which the broker-wide limit does not cover,
/// as in Kafka) and its listener's, if that has a limit.
pub(crate) struct ConnectionPermits {
    _broker: Option<OwnedSemaphorePermit>,
    _listener: Option<OwnedSemaphorePermit>,
}

/// A connection refused because its address already has its maximum.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyFromAddress {
    pub(crate) max: u32,
}

/// An admitted connection's place in the counts, given back on drop.
pub(crate) struct ConnectionSlot {
    ip: IpAddr,
    open_per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
    _permits: ConnectionPermits,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open_per_ip.locked("connection counts");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    /// Reads the limits from the broker's settings. Host names in
    /// `max.connections.per.ip.overrides` are resolved once, here, as Kafka
    /// does; the override applies to every address a name resolves to.
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<ConnectionLimits, String> {
        let max_connections = setting_u32(config, "max.connections");
        let max_per_ip = setting_u32(config, "max.connections.per.ip");
        let overrides = parse_connection_overrides(
            config.get("max.connections.per.ip.overrides").unwrap_or(""),
        )?;
        if max_per_ip == 0 && overrides.is_empty() {
            return Err("max.connections.per.ip can be set to zero only if \
                 max.connections.per.ip.overrides is set"
                .into());
        }
        let mut per_ip_overrides = HashMap::new();
        for (host, max) in overrides {
            let addresses = (host.as_str(), 0).to_socket_addrs().map_err(|e| {
                format!("max.connections.per.ip.overrides: cannot resolve {host}: {e}")
            })?;
            for address in addresses {
                per_ip_overrides.insert(address.ip(), max);
            }
        }
        let window = QuotaWindow {
            samples: setting_u32(config, "quota.window.num").max(1),
            sample_ms: u64::from(setting_u32(config, "quota.window.size.seconds").max(1)) * 1000,
        };
        let mut listeners: HashMap<String, ListenerLimits> = HashMap::new();
        for (listener, setting, value) in config.listener_settings() {
            let value = u32::try_from(value.trim().parse::<i64>().unwrap_or(0)).unwrap_or(0);
            let limits = listeners.entry(listener.to_ascii_lowercase()).or_default();
            match setting {
                "max.connections" => {
                    limits.slots = Some((Arc::new(Semaphore::new(value as usize)), value))
                }
                "max.connection.creation.rate" => limits.rate = CreationRate::new(value, window),
                _ => {}
            }
        }
        Ok(ConnectionLimits {
            slots: Arc::new(Semaphore::new(max_connections as usize)),
            max_connections,
            max_per_ip,
            per_ip_overrides,
            open_per_ip: Arc::default(),
            broker_rate: CreationRate::new(
                setting_u32(config, "max.connection.creation.rate"),
                window,
            ),
            listeners,
            rejected_log: LogThrottle::new(LOG_INTERVAL),
            full_log: LogThrottle::new(LOG_INTERVAL),
            rate_log: LogThrottle::new(LOG_INTERVAL),
        })
    }

    /// Waits until `max.connections` (unless `inter_broker`) and the
    /// listener's own limit allow one more, and then as long as the
    /// connection creation rates require. Like Kafka, the broker stops
    /// accepting meanwhile: new connections wait in the listen backlog.
    pub(crate) async fn wait_for_slot(
        &self,
        listener: &str,
        inter_broker: bool,
    ) -> ConnectionPermits {
        let own = self.listeners.get(&listener.to_ascii_lowercase());
        let listener_permit = match own.and_then(|l| l.slots.as_ref()) {
            Some((slots, max)) => Some(self.acquire(slots, *max, Some(listener)).await),
            None => None,
        };
        let broker_permit = if inter_broker {
            None
        } else {
            Some(self.acquire(&self.slots, self.max_connections, None).await)
        };
        // The inter-broker listener is exempt from the broker-wide rate
        // too; each wait is at most one sample window, as in Kafka.
        let broker_rate = self.broker_rate.as_ref().filter(|_| !inter_broker);
        let rates = [broker_rate, own.and_then(|l| l.rate.as_ref())];
        let wait = rates.into_iter().flatten().map(CreationRate::record).max();
        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
            if let Some(times) = self.rate_log.record(Instant::now()) {
                tracing::info!(
                    listener,
                    times,
                    wait_ms = wait.as_millis() as u64,
                    "connection creation rate reached (max.connection.creation.rate): accepting more slowly"
                );
            }
            tokio::time::sleep(wait).await;
        }
        ConnectionPermits {
            _broker: broker_permit,
            _listener: listener_permit,
        }
    }

    async fn acquire(
        &self,
        slots: &Arc<Semaphore>,
        max: u32,
        listener: Option<&str>,
    ) -> OwnedSemaphorePermit {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return permit;
        }
        if let Some(times) = self.full_log.record(Instant::now()) {
            tracing::warn!(
                max_connections = max,
                listener = listener.unwrap_or("(all)"),
                times,
                "max.connections reached: not accepting new connections until one closes"
            );
        }
        slots
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed")
    }

    /// Counts a new connection from `ip`, or refuses it when the address
    /// already has `max.connections.per.ip` (or its override).
    pub(crate) fn admit(
        &self,
        ip: IpAddr,
        permits: ConnectionPermits,
    ) -> Result<ConnectionSlot, TooManyFromAddress> {
        let max = self
            .per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.max_per_ip);
        let mut open = self.open_per_ip.locked("connection counts");
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&ip);
            }
            drop(open);
            if let Some(times) = self.rejected_log.record(Instant::now()) {
                tracing::info!(
                    client = %ip,
                    max,
                    times,
                    "rejected connection: the address already has the configured maximum of connections (max.connections.per.ip)"
                );
            }
            return Err(TooManyFromAddress { max });
        }
        *count += 1;
        Ok(ConnectionSlot {
            ip,
            open_per_ip: self.open_per_ip.clone(),
            _permits: permits,
        })
    }
}

/// An `Int` setting whose validation keeps it at 0 or more.
fn setting_u32(config: &BrokerConfig, name: &str) -> u32 {
    u32::try_from(config.get_i64(name)).unwrap_or(0)
}

/// Decides when an often-repeated event is logged: the first occurrence at
/// once, then at most one line per interval, carrying how many times the
/// event happened since the last line.
pub(crate) struct LogThrottle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            state: Mutex::default(),
        }
    }

    /// Notes one occurrence at `now`; `Some(n)` when a line is due, `n`
    /// being the occurrences it reports (this one included).
    pub(crate) fn record(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.locked("log throttle");
        state.unlogged += 1;
        let due = state
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        state.last_logged = Some(now);
        Some(std::mem::take(&mut state.unlogged))
    }
}

/// The pause after a failed accept: 10 ms doubling to 1 s, reset by a
/// success. Without it a listener whose backlog holds a connection it cannot
/// accept (out of descriptors) is ready again at once, and the loop spins.
pub(crate) struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> AcceptBackoff {
        AcceptBackoff { next: Self::FIRST }
    }

    /// The pause to take after this failure.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        pause
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(settings: &[(&str, &str)]) -> Result<ConnectionLimits, String> {
        let config = BrokerConfig::from_settings(settings.iter().copied())?;
        ConnectionLimits::from_config(&config)
    }

    fn permit() -> ConnectionPermits {
        ConnectionPermits {
            _broker: None,
            _listener: None,
        }
    }

    #[test]
    fn per_ip_limit_counts_open_connections_and_frees_closed_ones() {
        let limits = limits(&[("max.connections.per.ip", "2")]).unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limits.admit(local, permit()).unwrap();
        let _second = limits.admit(local, permit()).unwrap();
        assert_eq!(
            limits.admit(local, permit()).err(),
            Some(TooManyFromAddress { max: 2 })
        );
        let _elsewhere = limits.admit(other, permit()).unwrap();
        drop(first);
        assert!(limits.admit(local, permit()).is_ok());
    }

    #[test]
    fn overrides_replace_the_per_ip_default_for_their_address() {
        let limits = limits(&[
            ("max.connections.per.ip", "0"),
            (
                "max.connections.per.ip.overrides",
                "127.0.0.1:1, localhost:1",
            ),
        ])
        .unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let _only = limits.admit(local, permit()).unwrap();
        assert!(limits.admit(local, permit()).is_err());
        assert!(limits.admit("10.0.0.1".parse().unwrap(), permit()).is_err());
    }

    #[test]
    fn a_zero_per_ip_limit_needs_overrides() {
        let err = limits(&[("max.connections.per.ip", "0")]).err().unwrap();
        assert!(err.contains("max.connections.per.ip.overrides"), "{err}");
    }

    #[tokio::test]
    async fn max_connections_holds_back_the_next_until_one_closes() {
        let limits = limits(&[("max.connections", "1")]).unwrap();
        let first = limits.wait_for_slot("PLAINTEXT", false).await;
        let mut next = Box::pin(limits.wait_for_slot("PLAINTEXT", false));
        assert!(futures_poll_once(next.as_mut()).is_none());
        // The inter-broker listener is not held back by the broker-wide limit.
        let _replication = limits.wait_for_slot("REPLICATION", true).await;
        drop(first);
        assert!(futures_poll_once(next.as_mut()).is_some());
    }

    #[tokio::test]
    async fn a_listener_limit_holds_back_only_its_own_listener() {
        let limits = limits(&[("listener.name.external.max.connections", "1")]).unwrap();
        let first = limits.wait_for_slot("EXTERNAL", false).await;
        let mut next = Box::pin(limits.wait_for_slot("EXTERNAL", false));
        assert!(futures_poll_once(next.as_mut()).is_none());
        let _other = limits.wait_for_slot("PLAINTEXT", false).await;
        drop(first);
        assert!(futures_poll_once(next.as_mut()).is_some());
    }

    #[test]
    fn a_creation_rate_over_its_limit_asks_for_a_wait() {
        let window = QuotaWindow {
            samples: 11,
            sample_ms: 1000,
        };
        let rate = CreationRate::new(1, window).unwrap();
        // A whole window's worth (11) at once is allowed...
        for _ in 0..11 {
            assert_eq!(rate.record(), Duration::ZERO);
        }
        // ...the twelfth waits for its token, a second.
        assert_eq!(rate.record(), Duration::from_secs(1));
        assert!(CreationRate::new(i32::MAX as u32, window).is_none());
    }

    /// Polls a future once with a no-op waker.
    fn futures_poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn a_repeated_event_is_logged_once_per_interval_with_its_count() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.record(start), Some(1));
        for ms in 1..=250 {
            assert_eq!(throttle.record(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.record(start + Duration::from_secs(10)), Some(251));
        assert_eq!(throttle.record(start + Duration::from_secs(11)), None);
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets_on_success() {
        let mut backoff = AcceptBackoff::new();
        let pauses: Vec<u64> = (0..9)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(10));
    }
}
