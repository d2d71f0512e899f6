//! Integration, fault and interop tests for Sluice: one test binary (one
//! link step) with a module per area.
//!
//! * `rdkafka_client` — librdkafka (a client nobody here wrote) against an
//!   in-process broker: admin, every codec and acks level, offsets, configs.
//! * `crash` — `sluice serve` child processes: SIGKILL during acks=all
//!   produce, damaged and torn segment files.
//! * `protocol` — malformed frames and invalid batches on raw sockets.
//! * `sluice_client` — our own client against the broker.

mod common;
mod crash;
mod protocol;
mod rdkafka_client;
mod sluice_client;
