//! The Sluice broker.
//!
//! Owns the network side of a node: the listener and per-connection request
//! loop, one handler module per Kafka API under [`handlers`], the partitions
//! this node leads (log, high watermark, group-commit durability, fetch
//! wake-ups) and the controller operations that turn admin requests into
//! metadata records. Storage details live in `sluice-storage`, metadata
//! records and the image in `sluice-metadata`, wire formats in
//! `sluice-protocol`.

mod cleaner;
pub mod config;
mod connection;
mod connection_limits;
mod controller;
mod coordination;
pub mod descriptors;
mod flusher;
mod group;
mod handlers;
mod http;
pub mod listeners;
mod locks;
mod meta_properties;
mod metrics;
mod partition;
mod partitions;
mod producer_state;
mod quorum_setup;
mod quota;
mod replica;
mod replication;
mod retention;
mod scrubber;
mod security;
mod server;
mod state;
#[cfg(test)]
mod test_support;
mod txn;

pub use config::BrokerConfig;
pub use scrubber::ScrubProbe;
pub use security::ScramBootstrap;
pub use server::Broker;
