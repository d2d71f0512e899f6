//! How quota usage is measured: a token bucket, as Kafka measures its
//! controller mutation quota (KIP-599). A client's bucket holds up to one
//! whole quota window of its rate (`quota.window.num` ×
//! `quota.window.size.seconds` seconds' worth) and refills at the rate;
//! each request takes what it used, and a client in debt waits until the
//! bucket is back to empty. Kafka's other quotas use a sampled rate, whose
//! samples expire whole: a client that was throttled gets a sample's worth
//! of allowance back at once, so its rate saws between bursts and waits
//! (librdkafka consumers measured at 0.75× their quota). The bucket holds
//! the same average with no saw.

/// The sampling windows (`quota.window.num`, `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotaWindow {
    pub(crate) samples: u32,
    pub(crate) sample_ms: u64,
}

impl QuotaWindow {
    /// All but one sample, as Kafka sizes the most a fetch may return
    /// under a consumer quota (10 s by default).
    pub(crate) fn fetch_cap_span_ms(&self) -> u64 {
        u64::from(self.samples.saturating_sub(1).max(1)).saturating_mul(self.sample_ms)
    }

    /// The whole window: how long a full bucket lasts at its rate.
    pub(crate) fn total_ms(&self) -> u64 {
        u64::from(self.samples.max(1)).saturating_mul(self.sample_ms)
    }
}

/// One quota sensor: the tokens its client has left.
#[derive(Debug, Default)]
pub(crate) struct TokenBucket {
    /// `None` until the first use: a new client starts with a full bucket.
    tokens: Option<f64>,
    last_ms: u64,
    /// When the bucket is out of debt, as of the last use.
    debt_until_ms: u64,
}

impl TokenBucket {
    fn burst(limit: f64, window: QuotaWindow) -> f64 {
        limit * window.total_ms() as f64 / 1000.0
    }

    /// Refills for the time since the last use, at `limit` per second.
    fn refill(&mut self, limit: f64, window: QuotaWindow, now_ms: u64) -> f64 {
        let burst = Self::burst(limit, window);
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        let tokens = self
            .tokens
            .map_or(burst, |t| (t + limit * elapsed).min(burst));
        self.last_ms = now_ms.max(self.last_ms);
        tokens
    }

    /// Takes `value` at `now_ms` (milliseconds on a monotonic clock) and
    /// says how long the client must wait for its bucket to be out of
    /// debt: zero while it has tokens left.
    pub(crate) fn record(
        &mut self,
        limit: f64,
        window: QuotaWindow,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let tokens = self.refill(limit, window, now_ms) - value;
        self.tokens = Some(tokens);
        let wait_ms = if tokens >= 0.0 || limit <= 0.0 {
            0
        } else {
            // A float cast saturates: an absurd debt is u64::MAX, not 0.
            (-tokens / limit * 1000.0).ceil() as u64
        };
        self.debt_until_ms = now_ms.saturating_add(wait_ms);
        wait_ms
    }

    /// How long the client must still wait for its bucket to be out of
    /// debt, without taking anything.
    pub(crate) fn debt_ms(&mut self, limit: f64, window: QuotaWindow, now_ms: u64) -> u64 {
        self.record(limit, window, 0.0, now_ms)
    }

    /// Gives back what [`record`](Self::record) took (a connection that
    /// was refused, so did not happen).
    pub(crate) fn unrecord(&mut self, limit: f64, window: QuotaWindow, value: f64, now_ms: u64) {
        let tokens = self.refill(limit, window, now_ms) + value;
        self.tokens = Some(tokens.min(Self::burst(limit, window)));
    }

    /// Whether the bucket has surely refilled, debt included: the sensor
    /// can go, and comes back full.
    pub(crate) fn idle(&self, window: QuotaWindow, now_ms: u64) -> bool {
        let refilled = self
            .debt_until_ms
            .max(self.last_ms)
            .saturating_add(window.total_ms());
        now_ms >= refilled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: QuotaWindow = QuotaWindow {
        samples: 11,
        sample_ms: 1000,
    };

    #[test]
    fn a_new_client_has_a_whole_window_then_waits_out_its_debt() {
        let mut bucket = TokenBucket::default();
        // 11 s at 1000 B/s.
        assert_eq!(bucket.record(1000.0, WINDOW, 11_000.0, 0), 0);
        // 500 B over: half a second.
        assert_eq!(bucket.record(1000.0, WINDOW, 500.0, 0), 500);
        // Half a second later it is even; a second on it has 1000 B.
        assert_eq!(bucket.record(1000.0, WINDOW, 1000.0, 1500), 0);
    }

    #[test]
    fn a_steady_stream_at_the_limit_is_never_throttled_and_twice_it_is_halved() {
        let mut bucket = TokenBucket::default();
        for tick in 0..1000u64 {
            assert_eq!(bucket.record(1000.0, WINDOW, 100.0, tick * 100), 0);
        }
        // Twice the rate from a full bucket: the debt grows by 1000 B/s
        // once the 11 s of burst are gone.
        let mut waited = 0;
        for tick in 0..300u64 {
            waited = bucket.record(1000.0, WINDOW, 200.0, 100_000 + tick * 100);
        }
        assert!((18_000..=20_000).contains(&waited), "{waited}");
    }

    #[test]
    fn unrecord_gives_back_and_an_idle_bucket_can_go() {
        let mut bucket = TokenBucket::default();
        assert_eq!(bucket.record(1.0, WINDOW, 12.0, 0), 1000);
        bucket.unrecord(1.0, WINDOW, 12.0, 0);
        assert_eq!(bucket.record(1.0, WINDOW, 11.0, 0), 0);
        assert!(!bucket.idle(WINDOW, 5000));
        assert!(bucket.idle(WINDOW, 11_000));
        // A bucket in debt stays until the debt is paid and it refilled.
        assert_eq!(bucket.record(1.0, WINDOW, 20.0, 11_000), 9000);
        assert!(!bucket.idle(WINDOW, 22_000));
        assert!(bucket.idle(WINDOW, 31_000));
    }
}
