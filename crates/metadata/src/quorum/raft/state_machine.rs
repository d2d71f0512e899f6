//! The Raft state machine: the [`MetadataImage`], built by applying each
//! committed entry's records in order, and its snapshot.
//!
//! Applying is not persisted; the snapshot is. `quorum.snapshot` holds two
//! framed entries, the snapshot's meta (last applied log id, membership)
//! and the serialized image, replaced whole and fsynced. After a restart
//! the image starts from it and openraft applies the log after it again.
//! The same image bytes are what a lagging node is sent.

use super::files::{decode_frames, frame_all, io_error, read_file, replace_file};
use super::log_store::Entry;
use super::{lock, storage_error, TypeConfig};
use crate::image::MetadataImage;
use crate::quorum::QuorumError;
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StoredMembership,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

const SNAPSHOT_FILE: &str = "quorum.snapshot";

type Meta = SnapshotMeta<u64, String>;

/// What applying one entry answers: the image right after it.
#[derive(Debug, Clone)]
pub(crate) struct Applied(pub(crate) Arc<MetadataImage>);

// openraft requires serde on responses but never sends them; the image
// serializes as itself.
impl Serialize for Applied {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Applied {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut image = MetadataImage::deserialize(deserializer)?;
        image.reindex();
        Ok(Applied(Arc::new(image)))
    }
}

struct State {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, String>,
    image: Arc<MetadataImage>,
}

/// The current snapshot: its meta and the serialized image.
#[derive(Clone)]
struct Stored {
    meta: Meta,
    data: Vec<u8>,
}

/// The current snapshot. Its lock is held across the file write, so two
/// snapshots never race on disk; once closed nothing is written any more.
struct Slot {
    current: Option<Stored>,
    closed: bool,
}

type SharedSlot = Arc<tokio::sync::Mutex<Slot>>;

pub(crate) struct StateMachine {
    state: Arc<Mutex<State>>,
    snapshot: SharedSlot,
    path: PathBuf,
    images: watch::Sender<Arc<MetadataImage>>,
}

/// Builds a snapshot of the state machine as it is when building starts.
pub(crate) struct SnapshotBuilder {
    state: Arc<Mutex<State>>,
    snapshot: SharedSlot,
    path: PathBuf,
}

fn decode_image(data: &[u8]) -> Result<MetadataImage, String> {
    let mut image: MetadataImage =
        serde_json::from_slice(data).map_err(|e| format!("not a metadata image: {e}"))?;
    image.reindex();
    Ok(image)
}

impl StateMachine {
    /// Opens the state machine in `dir` from its snapshot, if any; a
    /// damaged snapshot refuses to open (the log before it may be purged).
    /// The receiver sees the image after every applied batch.
    pub(crate) fn open(
        dir: &Path,
    ) -> Result<(Self, watch::Receiver<Arc<MetadataImage>>), QuorumError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(SNAPSHOT_FILE);
        let stored = match read_file(&path)? {
            None => None,
            Some(bytes) => Some(read_snapshot(&path, &bytes)?),
        };
        let state = match &stored {
            Some((stored, image)) => State {
                last_applied: stored.meta.last_log_id,
                membership: stored.meta.last_membership.clone(),
                image: Arc::new(image.clone()),
            },
            None => State {
                last_applied: None,
                membership: StoredMembership::default(),
                image: Arc::default(),
            },
        };
        let (images, receiver) = watch::channel(state.image.clone());
        Ok((
            StateMachine {
                state: Arc::new(Mutex::new(state)),
                snapshot: Arc::new(tokio::sync::Mutex::new(Slot {
                    current: stored.map(|(s, _)| s),
                    closed: false,
                })),
                path,
                images,
            },
            receiver,
        ))
    }

    pub(crate) fn fence(&self) -> SnapshotFence {
        SnapshotFence(self.snapshot.clone())
    }
}

fn read_snapshot(path: &Path, bytes: &[u8]) -> Result<(Stored, MetadataImage), QuorumError> {
    let frames = decode_frames(path, bytes, false, |p| Ok(p.to_vec()))?;
    let damaged =
        |reason: String| QuorumError::Storage(format!("{} is damaged: {reason}", path.display()));
    let [(_, meta), (at, data)] = <[_; 2]>::try_from(frames.items)
        .map_err(|items| damaged(format!("{} entries instead of 2", items.len())))?;
    let meta: Meta = serde_json::from_slice(&meta)
        .map_err(|e| damaged(format!("not a snapshot meta at byte offset 0: {e}")))?;
    let image = decode_image(&data).map_err(|e| damaged(format!("at byte offset {at}: {e}")))?;
    Ok((Stored { meta, data }, image))
}

/// Stops snapshot writes once the quorum is shut down: openraft builds
/// snapshots in a task of their own that can outlive its core.
pub(crate) struct SnapshotFence(SharedSlot);

impl SnapshotFence {
    /// Waits for a write in progress, then lets no other start.
    pub(crate) async fn close(&self) {
        self.0.lock().await.closed = true;
    }
}

/// Writes `stored` as the snapshot file unless the slot's is newer.
async fn save_snapshot(
    path: &Path,
    slot: &mut Slot,
    stored: Stored,
) -> Result<(), StorageError<u64>> {
    let signature = Some(stored.meta.signature());
    if slot.closed {
        let e = "the metadata quorum is shut down";
        return Err(storage_error(
            ErrorSubject::Snapshot(signature),
            ErrorVerb::Write,
            e,
        ));
    }
    if slot
        .current
        .as_ref()
        .is_some_and(|c| c.meta.last_log_id > stored.meta.last_log_id)
    {
        return Ok(());
    }
    let meta = serde_json::to_vec(&stored.meta).map_err(|e| {
        storage_error(
            ErrorSubject::Snapshot(signature.clone()),
            ErrorVerb::Write,
            e,
        )
    })?;
    let bytes = frame_all(&[&meta, &stored.data]);
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || replace_file(&path, &bytes, true))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|e| storage_error(ErrorSubject::Snapshot(signature), ErrorVerb::Write, e))?;
    slot.current = Some(stored);
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (last_applied, membership, image) = {
            let state = lock(&self.state);
            (
                state.last_applied,
                state.membership.clone(),
                state.image.clone(),
            )
        };
        let data = serde_json::to_vec(&*image)
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}", id.leader_id, id.index),
            None => "empty".to_string(),
        };
        let meta = Meta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let mut slot = self.snapshot.lock().await;
        save_snapshot(
            &self.path,
            &mut slot,
            Stored {
                meta: meta.clone(),
                data: data.clone(),
            },
        )
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, String>), StorageError<u64>> {
        let state = lock(&self.state);
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut state = lock(&self.state);
        let mut answers = Vec::new();
        let mut changed = false;
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(records) => {
                    let image = Arc::make_mut(&mut state.image);
                    for record in &records {
                        image.apply(record);
                    }
                    changed = true;
                }
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            answers.push(Applied(state.image.clone()));
        }
        if changed {
            self.images.send_replace(state.image.clone());
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            snapshot: self.snapshot.clone(),
            path: self.path.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let image = decode_image(&data).map_err(|e| {
            storage_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        })?;
        let mut slot = self.snapshot.lock().await;
        save_snapshot(
            &self.path,
            &mut slot,
            Stored {
                meta: meta.clone(),
                data,
            },
        )
        .await?;
        let image = Arc::new(image);
        {
            let mut state = lock(&self.state);
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.image = image.clone();
        }
        self.images.send_replace(image);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .snapshot
            .lock()
            .await
            .current
            .clone()
            .map(|stored| Snapshot {
                meta: stored.meta,
                snapshot: Box::new(Cursor::new(stored.data)),
            }))
    }
}
