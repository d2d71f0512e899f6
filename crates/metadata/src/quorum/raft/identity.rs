//! Which cluster a voter belongs to, said by both ends of every voter
//! connection before any Raft message (as Kafka's Raft requests carry a
//! ClusterId): a voter whose data directory holds another cluster's log
//! must never vote in, or replicate into, this one.

use super::lock;
use std::sync::Mutex;

/// The first message each end of a connection sends: this prefix and the
/// cluster id it knows (nothing after it when it knows none yet).
const HELLO: &[u8] = b"sluice-voter-hello/1 ";

/// What this voter knows of its cluster, and whether a peer of another
/// cluster has been seen.
#[derive(Default)]
pub struct ClusterIdentity {
    known: Mutex<Option<String>>,
    conflict: Mutex<Option<String>>,
    /// Whether a peer has accepted this node's hello (and it the peer's)
    /// since the process started.
    confirmed: std::sync::atomic::AtomicBool,
}

impl ClusterIdentity {
    /// `cluster_id`: what the data directory says, if anything yet.
    pub fn new(cluster_id: Option<String>) -> Self {
        ClusterIdentity {
            known: Mutex::new(cluster_id),
            conflict: Mutex::new(None),
            confirmed: Default::default(),
        }
    }

    /// Records the cluster id once the node has learned it.
    pub fn set(&self, cluster_id: &str) {
        *lock(&self.known) = Some(cluster_id.to_string());
    }

    /// Whether some peer has exchanged hellos with this node: until then
    /// the node cannot know that the leader its log remembers is of this
    /// cluster.
    pub fn confirmed(&self) -> bool {
        self.confirmed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Why a peer was refused for belonging to another cluster, if one was.
    pub fn conflict(&self) -> Option<String> {
        lock(&self.conflict).clone()
    }

    pub(super) fn hello(&self) -> Vec<u8> {
        let mut message = HELLO.to_vec();
        if let Some(id) = lock(&self.known).as_deref() {
            message.extend_from_slice(id.as_bytes());
        }
        message
    }

    /// Checks the peer's hello; `peer` names it in the refusal.
    pub(super) fn check(&self, peer: &str, message: &[u8]) -> Result<(), String> {
        let theirs = message
            .strip_prefix(HELLO)
            .ok_or_else(|| format!("{peer} is not a Sluice voter of this version (no hello)"))?;
        let theirs =
            std::str::from_utf8(theirs).map_err(|_| format!("{peer} sent a malformed hello"))?;
        let mine = lock(&self.known).clone();
        match mine {
            Some(mine) if !theirs.is_empty() && theirs != mine => {
                let why = format!(
                    "{peer} belongs to cluster {theirs}, but this node belongs to cluster {mine} (its data directory's meta.properties): a node joins one cluster only; start it on a new, empty data directory to join {theirs}"
                );
                *lock(&self.conflict) = Some(why.clone());
                Err(why)
            }
            _ => {
                self.confirmed
                    .store(true, std::sync::atomic::Ordering::Release);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_known_and_different_ids_conflict() {
        let unknown = ClusterIdentity::new(None);
        let a = ClusterIdentity::new(Some("cluster-a".into()));
        let b = ClusterIdentity::new(Some("cluster-b".into()));
        assert!(!a.confirmed());
        assert!(a.check("voter 2", &unknown.hello()).is_ok());
        assert!(a.confirmed());
        assert!(unknown.check("voter 1", &a.hello()).is_ok());
        assert!(a.check("voter 1", &a.hello()).is_ok());
        assert_eq!(a.conflict(), None);
        let err = a.check("voter 3", &b.hello()).unwrap_err();
        assert!(
            err.contains("voter 3 belongs to cluster cluster-b"),
            "{err}"
        );
        assert_eq!(a.conflict(), Some(err));
        assert!(a
            .check("voter 4", b"{\"Vote\":{}}")
            .unwrap_err()
            .contains("no hello"));
        unknown.set("cluster-b");
        assert!(unknown.check("voter 1", &a.hello()).is_err());
    }
}
