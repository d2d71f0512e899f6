//! A [`Transport`] inside one process: each call goes straight to the
//! target node's [`RpcHandler`]. A one-voter quorum (which never calls a
//! peer) runs on it, and so do simulations: links can be cut, and a seeded
//! generator can drop and delay messages, so a failing run replays.

use super::lock;
use super::network::{RpcHandler, Transport, TransportError};
use crate::quorum::QuorumFuture;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Nodes of one process and the links between them.
#[derive(Clone, Default)]
pub struct InProcessNetwork {
    links: Arc<Mutex<Links>>,
}

#[derive(Default)]
struct Links {
    nodes: HashMap<i32, RpcHandler>,
    /// Directed links that carry nothing.
    cut: HashSet<(i32, i32)>,
    faults: Option<Faults>,
}

struct Faults {
    rng: SplitMix64,
    drop_per_mille: u64,
    max_delay: Duration,
}

/// A small seeded generator (SplitMix64): the same seed gives the same
/// sequence of drops and delays.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }
}

/// What happens to one call, decided when it is sent.
struct Fate {
    delay: Duration,
    lose_request: bool,
    lose_answer: bool,
}

impl InProcessNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers requests for `node` to `handler` (again, after a restart).
    pub fn register(&self, node: i32, handler: RpcHandler) {
        lock(&self.links).nodes.insert(node, handler);
    }

    /// `node` is gone: calls to it fail until it registers again.
    pub fn unregister(&self, node: i32) {
        lock(&self.links).nodes.remove(&node);
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: i32, b: i32) {
        let mut links = lock(&self.links);
        links.cut.insert((a, b));
        links.cut.insert((b, a));
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        lock(&self.links).cut.clear();
    }

    /// From now on each message (request or answer) is lost with
    /// probability `drop_per_mille`/1000 and each call delayed by up to
    /// `max_delay`, as drawn from `seed`.
    pub fn set_faults(&self, seed: u64, drop_per_mille: u64, max_delay: Duration) {
        lock(&self.links).faults = Some(Faults {
            rng: SplitMix64::new(seed),
            drop_per_mille,
            max_delay,
        });
    }

    fn route(&self, from: i32, to: i32) -> Result<(RpcHandler, Fate), TransportError> {
        let mut links = lock(&self.links);
        let unreachable = |reason: &str| TransportError {
            to,
            reason: reason.to_string(),
        };
        if links.cut.contains(&(from, to)) {
            return Err(unreachable("the link is cut"));
        }
        let handler = links
            .nodes
            .get(&to)
            .cloned()
            .ok_or_else(|| unreachable("no such node is running"))?;
        let fate = match &mut links.faults {
            None => Fate {
                delay: Duration::ZERO,
                lose_request: false,
                lose_answer: false,
            },
            Some(f) => {
                let max_delay = u64::try_from(f.max_delay.as_micros()).unwrap_or(u64::MAX);
                Fate {
                    delay: Duration::from_micros(f.rng.below(max_delay.saturating_add(1))),
                    lose_request: f.rng.below(1000) < f.drop_per_mille,
                    lose_answer: f.rng.below(1000) < f.drop_per_mille,
                }
            }
        };
        Ok((handler, fate))
    }
}

impl Transport for InProcessNetwork {
    fn call(
        &self,
        from: i32,
        to: i32,
        request: Vec<u8>,
    ) -> QuorumFuture<'static, Result<Vec<u8>, TransportError>> {
        let network = self.clone();
        Box::pin(async move {
            let (handler, fate) = network.route(from, to)?;
            let lost = |what: &str| TransportError {
                to,
                reason: format!("the {what} was lost"),
            };
            tokio::time::sleep(fate.delay).await;
            if fate.lose_request {
                return Err(lost("request"));
            }
            let answer = handler.handle(request).await;
            // A link cut while the request was handled loses the answer.
            if fate.lose_answer || lock(&network.links).cut.contains(&(to, from)) {
                return Err(lost("answer"));
            }
            Ok(answer)
        })
    }
}
