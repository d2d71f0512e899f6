//! Cluster metadata for Sluice.
//!
//! Every metadata change (topic created, partitions added, config changed,
//! topic deleted, SCRAM credential, ACL or client quota set) is a [`MetadataRecord`] appended to
//! a durable metadata log and then applied to an immutable
//! [`MetadataImage`] that the broker reads. At start the snapshot is
//! loaded and the log after it replayed to rebuild the image; damage
//! inside the log refuses to open (only a torn final entry is truncated),
//! and [`repair`] fixes it offline. A single node is a
//! one-voter quorum over this log today. [`quorum`] holds the controller
//! quorum that replicates the same records: the [`quorum::Quorum`] trait and
//! its Raft implementation on `openraft` (whose types never leave that
//! module), behind a [`quorum::Transport`] seam with an in-process and a
//! small TCP implementation. Apart from that transport this crate knows
//! nothing about sockets, and nothing about the Kafka protocol.

mod acl;
pub mod cluster;
pub mod duties;
mod entry;
mod image;
mod log;
pub mod quorum;
pub mod quota;
pub mod reassignment;
mod record;
mod repair;
mod scram;
mod snapshot;

pub use acl::AclEntry;
pub use entry::{entry_at, next_intact_entry, Entry, EntryProblem};
pub use image::{BrokerEndpoint, BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use log::{MetadataError, MetadataLog};
pub use quota::{QuotaEntity, QuotaValue, QuotaValues};
pub use record::MetadataRecord;
pub use repair::{repair, Repair};
pub use scram::{ScramCredential, ScramMechanism};
pub use uuid::Uuid;
