//! Cluster metadata for Sluice.
//!
//! Every metadata change (topic created, partitions added, config changed,
//! topic deleted) is a [`MetadataRecord`] appended to a durable metadata log
//! and then applied to an immutable [`MetadataImage`] that the broker reads.
//! At start the log is replayed to rebuild the image. A single node is a
//! one-voter quorum over this log; the Raft quorum of a cluster will replicate
//! the same records. This crate knows nothing about sockets or the protocol.

mod image;
mod log;
mod record;

pub use image::{MetadataImage, PartitionImage, TopicImage};
pub use log::{MetadataError, MetadataLog};
pub use record::MetadataRecord;
pub use uuid::Uuid;
