//! Failed SASL logins counted per client address, so one address cannot
//! guess passwords faster than `sasl.failed.authentications.per.ip.per.minute`
//! however many connections it opens: past the limit, its logins are refused
//! without checking the credentials until the minute is over. (The delay of
//! `connection.failed.authentication.delay.ms` slows one connection; this
//! bounds them all.)

use crate::connection_limits::{LogThrottle, LOG_INTERVAL};
use crate::locks::MutexExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked before stale ones are dropped.
const PRUNE_AT: usize = 4096;

pub(crate) struct FailedLogins {
    /// Failures per address per minute; 0 for no limit.
    limit: u32,
    /// When each address's minute began and its failures in it.
    by_address: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    refused_log: LogThrottle,
}

impl FailedLogins {
    pub(crate) fn new(limit: u32) -> FailedLogins {
        FailedLogins {
            limit,
            by_address: Mutex::default(),
            refused_log: LogThrottle::new(LOG_INTERVAL),
        }
    }

    /// Whether `address` has used up its failures for this minute; logs
    /// the refusal (at most once per interval).
    pub(crate) fn locked_out(&self, address: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        let by_address = self.by_address.locked("failed logins");
        let out = by_address
            .get(&address)
            .is_some_and(|(since, n)| now.duration_since(*since) < WINDOW && *n >= self.limit);
        drop(by_address);
        if out {
            if let Some(refused) = self.refused_log.record(now) {
                tracing::warn!(
                    client = %address,
                    refused,
                    limit = self.limit,
                    "refusing SASL logins from an address past sasl.failed.authentications.per.ip.per.minute (logged at most every {}s)",
                    LOG_INTERVAL.as_secs()
                );
            }
        }
        out
    }

    /// Counts one failed login from `address`.
    pub(crate) fn record(&self, address: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut by_address = self.by_address.locked("failed logins");
        if by_address.len() >= PRUNE_AT {
            by_address.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        let entry = by_address.entry(address).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_for_the_rest_of_its_minute() {
        let logins = FailedLogins::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..3 {
            assert!(!logins.locked_out(a, start));
            logins.record(a, start);
        }
        assert!(logins.locked_out(a, start + Duration::from_secs(59)));
        assert!(
            !logins.locked_out(b, start),
            "another address is not affected"
        );
        assert!(!logins.locked_out(a, start + WINDOW));
        logins.record(a, start + WINDOW);
        assert!(
            !logins.locked_out(a, start + WINDOW),
            "a new minute starts afresh"
        );
        assert!(!FailedLogins::new(0).locked_out(a, start));
    }
}
