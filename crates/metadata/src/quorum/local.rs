//! The one-voter quorum of a single node: the durable [`MetadataLog`]
//! itself. An append is committed once it is fsynced, and this node is
//! always the leader, in term 1. It keeps the metadata log's file format,
//! its damage checks and its offline repair (`sluice metadata repair`).

use super::{
    Heartbeats, LogPosition, Quorum, QuorumError, QuorumFuture, QuorumStatus, VoterStatus,
};
use crate::image::MetadataImage;
use crate::log::{MetadataError, MetadataLog};
use crate::record::MetadataRecord;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::watch;

/// The term a one-voter quorum is in: it never holds an election.
const TERM: u64 = 1;

pub struct LocalQuorum {
    node_id: i32,
    log: Mutex<MetadataLog>,
    images: watch::Sender<Arc<MetadataImage>>,
    heartbeats: Heartbeats,
}

fn storage(e: MetadataError) -> QuorumError {
    QuorumError::Storage(e.to_string())
}

impl LocalQuorum {
    pub fn new(node_id: i32, log: MetadataLog) -> LocalQuorum {
        let image = Arc::new(log.image().clone());
        LocalQuorum {
            node_id,
            log: Mutex::new(log),
            images: watch::Sender::new(image),
            heartbeats: Heartbeats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MetadataLog> {
        // The log stays consistent: an append either wrote its entry or not.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends at once (the returned future is ready): used by callers
    /// that hold no runtime, such as start-up.
    fn append_now(
        &self,
        based_on: Option<u64>,
        records: &[MetadataRecord],
    ) -> Result<(LogPosition, Arc<MetadataImage>), QuorumError> {
        let mut log = self.lock();
        let applied = log.image().offset;
        if based_on.is_some_and(|b| b != applied) {
            return Err(QuorumError::Stale { applied });
        }
        let image = Arc::new(log.append(records).map_err(storage)?.clone());
        self.images.send_replace(Arc::clone(&image));
        Ok((
            LogPosition {
                term: TERM,
                index: image.offset,
            },
            image,
        ))
    }
}

impl Quorum for LocalQuorum {
    fn append(
        &self,
        records: Vec<MetadataRecord>,
    ) -> QuorumFuture<'_, Result<(LogPosition, Arc<MetadataImage>), QuorumError>> {
        let appended = self.append_now(None, &records);
        Box::pin(std::future::ready(appended))
    }

    fn append_after(
        &self,
        based_on: u64,
        records: Vec<MetadataRecord>,
    ) -> QuorumFuture<'_, Result<(LogPosition, Arc<MetadataImage>), QuorumError>> {
        let appended = self.append_now(Some(based_on), &records);
        Box::pin(std::future::ready(appended))
    }

    fn heartbeat(
        &self,
        node_id: i32,
        broker_epoch: i64,
    ) -> QuorumFuture<'_, Result<(), QuorumError>> {
        let recorded = self
            .heartbeats
            .record(&self.image(), node_id, broker_epoch, Instant::now());
        Box::pin(std::future::ready(recorded))
    }

    /// This node is always the leader.
    fn heard_from(&self) -> Option<BTreeMap<i32, Instant>> {
        Some(self.heartbeats.snapshot())
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    fn watch(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }

    fn status(&self) -> QuorumStatus {
        let end = self.image().offset;
        QuorumStatus {
            node_id: self.node_id,
            leader: Some(self.node_id),
            term: TERM,
            high_watermark: end,
            voters: vec![VoterStatus {
                node_id: self.node_id,
                log_end_offset: Some(end),
                lag: Some(0),
            }],
        }
    }

    /// Writes the metadata snapshot, the second copy a damaged log is
    /// restored from.
    fn close(&self) -> QuorumFuture<'_, Result<(), QuorumError>> {
        let written = self.lock().write_snapshot().map_err(storage);
        Box::pin(std::future::ready(written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_are_committed_at_once_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let quorum = LocalQuorum::new(1, MetadataLog::open(dir.path()).unwrap());
        let mut watch = quorum.watch();
        let (position, image) = quorum
            .append(vec![MetadataRecord::ProducerIdsAllocated { next: 1000 }])
            .await
            .unwrap();
        assert_eq!(position, LogPosition { term: 1, index: 1 });
        assert_eq!(image.next_producer_id, 1000);
        assert!(watch.has_changed().unwrap());
        assert_eq!(watch.borrow_and_update().next_producer_id, 1000);
        let status = quorum.status();
        assert_eq!(
            (status.leader, status.term, status.high_watermark),
            (Some(1), 1, 1)
        );
        quorum.close().await.unwrap();
        drop(quorum);
        let reopened = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(reopened.image().next_producer_id, 1000);
    }
}
