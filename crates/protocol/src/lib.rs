//! Kafka wire protocol for Sluice.
//!
//! This crate owns the bytes: length-prefixed frames, the request/response
//! envelope over the `kafka-protocol` crate's generated message types, codec
//! helpers, a zero-copy view of v2 record batches, and the client's SCRAM
//! computation. It performs no I/O and knows nothing about sockets, storage
//! or brokers.

pub mod batch;
pub mod compression;
pub mod control;
pub mod envelope;
pub mod error;
pub mod frame;
pub mod record;
pub mod scram;

#[cfg(test)]
mod hostile_tests;

pub use kafka_protocol;
