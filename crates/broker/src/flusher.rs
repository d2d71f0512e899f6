//! Group commit: one thread syncs every partition that has acknowledgements
//! waiting. While it runs an fdatasync, new appends pile up and the next
//! sync covers them all, so the number of syncs follows the disk's pace, not
//! the request rate. Waiters are async tasks watching a partition's synced
//! offset; no thread blocks per request.

use crate::metrics::Histogram;
use crate::partition::Partition;
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;

/// Hands partitions with waiting acknowledgements to the flusher thread.
#[derive(Clone)]
pub(crate) struct Flusher {
    queue: mpsc::Sender<Arc<Partition>>,
    /// How long each fdatasync took, for `/metrics`.
    fsync_seconds: Arc<Histogram>,
}

impl Flusher {
    pub(crate) fn start() -> Self {
        let (queue, pending) = mpsc::channel::<Arc<Partition>>();
        let fsync_seconds = Arc::new(Histogram::seconds());
        let observed = Arc::clone(&fsync_seconds);
        std::thread::Builder::new()
            .name("sluice-flusher".into())
            .spawn(move || run(pending, &observed))
            .expect("spawning the flusher thread");
        Flusher {
            queue,
            fsync_seconds,
        }
    }

    pub(crate) fn fsync_seconds(&self) -> &Histogram {
        &self.fsync_seconds
    }

    pub(crate) fn request(&self, partition: Arc<Partition>) {
        // The thread lives as long as any sender; a send cannot fail first.
        let _ = self.queue.send(partition);
    }
}

fn run(pending: mpsc::Receiver<Arc<Partition>>, fsync_seconds: &Histogram) {
    while let Ok(first) = pending.recv() {
        // Everything queued meanwhile joins this round, once per partition.
        let mut round: HashMap<*const Partition, Arc<Partition>> = HashMap::new();
        round.insert(Arc::as_ptr(&first), first);
        while let Ok(more) = pending.try_recv() {
            round.insert(Arc::as_ptr(&more), more);
        }
        for partition in round.into_values() {
            if let Some(took) = partition.sync_now() {
                fsync_seconds.observe_duration(took);
            }
        }
    }
}
