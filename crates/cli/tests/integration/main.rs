//! Integration, fault and interop tests for Sluice: one test binary (one
//! link step) with a module per area.
//!
//! * `rdkafka_client` — librdkafka (a client nobody here wrote) against an
//!   in-process broker: admin, every codec and acks level, offsets, configs.
//! * `cluster` — three `sluice serve` processes as one cluster (Raft
//!   controller quorum): brokers in Metadata, partitions spread, admin
//!   through any broker, a SIGKILLed broker fenced and back.
//! * `coordinator_failover` — a consumer group keeps its committed offsets
//!   when the broker coordinating it is SIGKILLed, on three processes.
//! * `connections` — connection limits and timeouts, accept back-off.
//! * `crash` — `sluice serve` child processes: SIGKILL during acks=all
//!   produce, damaged and torn segment files.
//! * `disk_faults` — `sluice serve` on a full disk (a small tmpfs, when
//!   mounting is permitted); a corrupt batch, `sluice log verify`.
//! * `edges` — librdkafka at the edges of what the broker accepts: commits
//!   for unknown partitions, per-record produce errors, the fetch byte
//!   budget across partitions.
//! * `groups` — consumer groups and the idempotent producer through
//!   librdkafka: assignment, commits, restarts, static membership.
//! * `hostile_sweep` — a `sluice serve` process under hostile requests for
//!   every advertised API key and version (seeded); it must keep serving.
//! * `http_endpoints` — the HTTP listener of a `sluice serve` process:
//!   `/metrics` after a librdkafka workload, `/healthz`, `/readyz`, wrong
//!   methods and paths, an address in use.
//! * `inter_broker` — three `sluice serve` processes replicating and
//!   writing transaction markers over a SASL_SSL (mTLS + SCRAM) listener.
//! * `kip848` — KIP-848 consumer groups (`group.protocol=consumer`)
//!   through librdkafka: server-side assignment, takeover.
//! * `lifecycle` — live topic config changes (segment size, retention) and
//!   consumers resetting past deleted data, through librdkafka.
//! * `metadata_damage` — `sluice serve` processes on a damaged, missing or
//!   torn metadata log, and topic creation out of file descriptors.
//! * `netns_partition` — three `sluice serve` processes in network
//!   namespaces; the leader cut off by blackhole routes acknowledges no
//!   acks=all write and its divergent tail is truncated after healing.
//! * `oauth` — SASL OAUTHBEARER through librdkafka: unsecured JWTs, and
//!   signed tokens checked against a JWKS.
//! * `protocol` — malformed frames and invalid batches on raw sockets.
//! * `quotas` — client quotas: AlterClientQuotas and DescribeClientQuotas,
//!   librdkafka producers and consumers held to their byte rates, request
//!   time and connection creation rate quotas.
//! * `reassignment` — AlterPartitionReassignments on three `sluice serve`
//!   processes: a partition moves with its records, a stuck move is
//!   listed and cancelled.
//! * `replication` — a replication-factor-3 partition on three `sluice
//!   serve` processes: acks=all records survive the SIGKILL of their
//!   leader, the ISR shrinks and grows back, a rolling restart under
//!   load loses and duplicates nothing.
//! * `sasl` — a SASL_PLAINTEXT listener: librdkafka with PLAIN, refused
//!   logins, nothing but ApiVersions and SASL before authentication.
//! * `sluice_client` — our own client against the broker.
//! * `startup` — `sluice serve` start-up safeguards: the data directory lock.
//! * `transactions` — librdkafka transactions: commit/abort visibility,
//!   zombie fencing, consume-transform-produce across broker SIGKILLs; on
//!   three processes, transactions over partitions led by every broker and
//!   an open transaction committed after its coordinator is SIGKILLed.

mod acls;
mod cluster;
mod common;
mod connections;
mod coordinator_failover;
mod crash;
mod differential;
mod disk_faults;
mod edges;
mod groups;
mod hostile_sweep;
mod http_endpoints;
mod inter_broker;
mod kip848;
mod lifecycle;
mod metadata_damage;
mod netns_partition;
mod oauth;
mod protocol;
mod quotas;
mod rdkafka_client;
mod reassignment;
mod replication;
mod sasl;
mod sluice_client;
mod startup;
mod tls;
mod transactions;
