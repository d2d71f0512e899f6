//! Kafka's connection limits (`max.connections`, `max.connections.per.ip`,
//! `max.connections.per.ip.overrides`), the back-off of the accept loop, and
//! log lines that are written at most once per interval, so that a client
//! storm or descriptor exhaustion cannot flood the log.

use crate::config::{parse_connection_overrides, BrokerConfig};
use crate::locks::MutexExt;
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
    rejected_log: LogThrottle,
    full_log: LogThrottle,
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
    _permit: OwnedSemaphorePermit,
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
        Ok(ConnectionLimits {
            slots: Arc::new(Semaphore::new(max_connections as usize)),
            max_connections,
            max_per_ip,
            per_ip_overrides,
            open_per_ip: Arc::default(),
            rejected_log: LogThrottle::new(LOG_INTERVAL),
            full_log: LogThrottle::new(LOG_INTERVAL),
        })
    }

    /// Waits until `max.connections` allows one more. Like Kafka, the broker
    /// stops accepting meanwhile: new connections wait in the listen backlog.
    pub(crate) async fn wait_for_slot(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return permit;
        }
        if let Some(times) = self.full_log.record(Instant::now()) {
            tracing::warn!(
                max_connections = self.max_connections,
                times,
                "max.connections reached: not accepting new connections until one closes"
            );
        }
        self.slots
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
        permit: OwnedSemaphorePermit,
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
            _permit: permit,
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

    fn permit() -> OwnedSemaphorePermit {
        Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap()
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
        let first = limits.wait_for_slot().await;
        let mut next = Box::pin(limits.wait_for_slot());
        assert!(futures_poll_once(next.as_mut()).is_none());
        drop(first);
        assert!(futures_poll_once(next.as_mut()).is_some());
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
