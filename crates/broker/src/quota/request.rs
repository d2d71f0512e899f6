//! One request's way through the client quotas: a produce is counted by its
//! size when it arrives, a fetch is capped to what the consumer's byte rate
//! allows in a window and counted by what it returns, and every request but
//! the exempt ones is counted by the time the broker's threads spend on it.
//! The longest throttle wins; the connection then reads nothing for that
//! long.

use super::mutations::{self, Mutations};
use super::throttle::{fetch_bytes, set_throttle_time};
use super::{thread_time_percent, QuotaClient, QuotaKind, Throttle};
use crate::handlers::fetch::replica_id;
use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use sluice_protocol::envelope::Request;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A request of a client that has quotas, from arrival to response.
pub(crate) struct QuotaAccount {
    user: String,
    client_id: String,
    api: ApiKey,
    /// Nanoseconds the broker's threads spent on the request so far.
    busy: Arc<AtomicU64>,
    /// The produce throttle, decided on arrival.
    produced: Throttle,
    /// Inter-broker and session requests count against no request quota.
    exempt: bool,
    /// What a topic mutation was charged to the controller mutation quota.
    mutations: Option<Mutations>,
}

impl QuotaAccount {
    /// Starts the account of `request` (`frame_len` bytes on the wire) from
    /// `principal`; `None` when no quota applies to anyone, so that quotas
    /// cost nothing until one is set. Only fetches that come to the
    /// inter-broker listener are exempt as a follower's.
    pub(crate) fn open(
        state: &BrokerState,
        request: &mut Request,
        frame_len: usize,
        principal: &str,
        from_inter_broker: bool,
    ) -> Option<QuotaAccount> {
        if !state.quotas.active() {
            return None;
        }
        let image = state.image();
        if image.client_quotas().is_empty() {
            return None;
        }
        let user = principal
            .strip_prefix("User:")
            .unwrap_or(principal)
            .to_string();
        let client_id = request
            .header
            .client_id
            .as_deref()
            .unwrap_or_default()
            .to_string();
        let client = QuotaClient {
            user: &user,
            client_id: &client_id,
        };
        let version = request.version();
        // Kafka exempts cluster actions from the request quota; SASL
        // responses have no field to carry a throttle.
        let mut exempt = matches!(
            request.api_key,
            ApiKey::SaslHandshake
                | ApiKey::SaslAuthenticate
                | ApiKey::WriteTxnMarkers
                | ApiKey::DescribeQuorum
        );
        let mut produced = Throttle::default();
        match &mut request.body {
            RequestKind::Produce(_) => {
                produced =
                    state
                        .quotas
                        .record(&image, QuotaKind::Produce, client, frame_len as f64);
            }
            RequestKind::Fetch(fetch)
                if from_inter_broker && replica_id(fetch, version).is_some() =>
            {
                exempt = true
            }
            RequestKind::Fetch(fetch) => {
                if let Some(cap) = state.quotas.max_fetch_bytes(&image, client) {
                    let cap = i32::try_from(cap).unwrap_or(i32::MAX);
                    if fetch.max_bytes <= 0 || fetch.max_bytes > cap {
                        fetch.max_bytes = cap;
                    }
                    fetch.min_bytes = fetch.min_bytes.min(cap);
                }
            }
            _ => {}
        }
        let mutations = mutations::charge(state, &image, client, &mut request.body, version);
        Some(QuotaAccount {
            user,
            client_id,
            api: request.api_key,
            busy: Arc::default(),
            produced,
            exempt,
            mutations,
        })
    }

    /// Wraps a part of the request's handling so its time is counted.
    pub(crate) fn timed<F: Future + Unpin>(&self, future: F) -> Timed<F> {
        Timed {
            future,
            busy: Arc::clone(&self.busy),
        }
    }

    /// Counts the response against the client's quotas and writes the
    /// throttle into it. A throttled fetch keeps its records: Kafka drops
    /// them and has the consumer fetch them again after the throttle, which
    /// costs a read and a round trip per throttle and holds librdkafka at
    /// about three quarters of its quota; muting holds the rate either way.
    pub(crate) fn close(self, state: &BrokerState, response: &mut ResponseKind) -> Throttle {
        let image = state.image();
        let client = QuotaClient {
            user: &self.user,
            client_id: &self.client_id,
        };
        let fetched = (self.api == ApiKey::Fetch && !self.exempt).then(|| fetch_bytes(response));
        let fetch_throttle = fetched.map_or(Throttle::default(), |bytes| {
            state
                .quotas
                .record(&image, QuotaKind::Fetch, client, bytes as f64)
        });
        let request_throttle = if self.exempt {
            Throttle::default()
        } else {
            let busy = Duration::from_nanos(self.busy.load(Ordering::Relaxed));
            state.quotas.record(
                &image,
                QuotaKind::Request,
                client,
                thread_time_percent(busy),
            )
        };
        let mutation_throttle = match self.mutations {
            None => Throttle::default(),
            Some(mutations) => {
                mutations.settle(&state.quotas, &image, client, response);
                let debt = state.quotas.debt(&image, QuotaKind::Mutation, client);
                Throttle(Duration::from_millis(debt))
            }
        };
        let throttle = self
            .produced
            .max(fetch_throttle)
            .max(request_throttle)
            .max(mutation_throttle);
        if !throttle.is_zero() {
            set_throttle_time(response, throttle.ms());
        }
        throttle
    }

    /// The throttle known when the request arrives (a produce's).
    pub(crate) fn arrival_throttle(&self) -> Throttle {
        self.produced
    }

    /// The throttle of a request that gets no response (acks=0 produce).
    pub(crate) fn close_silent(self) -> Throttle {
        self.produced
    }
}

/// A future whose polls are timed: the time the broker's threads spend on
/// it, without the time it waits.
pub(crate) struct Timed<F> {
    future: F,
    busy: Arc<AtomicU64>,
}

thread_local! {
    /// The busy counter of the request being polled on this thread, for
    /// work it hands to the blocking pool (`handlers::off_reactor`).
    static POLLING: std::cell::RefCell<Option<Arc<AtomicU64>>> = const { std::cell::RefCell::new(None) };
}

/// The busy counter of the request being polled here, if it has quotas:
/// what its blocking work adds its time to.
pub(crate) fn current_busy() -> Option<Arc<AtomicU64>> {
    POLLING.with(|p| p.borrow().clone())
}

/// Sets [`POLLING`] for one poll, and back even if the poll panics.
struct Polling {
    previous: Option<Arc<AtomicU64>>,
}

impl Polling {
    fn enter(busy: &Arc<AtomicU64>) -> Polling {
        let previous = POLLING.with(|p| p.replace(Some(Arc::clone(busy))));
        Polling { previous }
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        let previous = self.previous.take();
        POLLING.with(|p| *p.borrow_mut() = previous);
    }
}

/// Adds `elapsed` to a request's busy time.
pub(crate) fn add_busy(busy: &AtomicU64, elapsed: Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    busy.fetch_add(nanos, Ordering::Relaxed);
}

impl<F: Future + Unpin> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let started = Instant::now();
        let _polling = Polling::enter(&this.busy);
        let poll = Pin::new(&mut this.future).poll(cx);
        this.busy
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        poll
    }
}
