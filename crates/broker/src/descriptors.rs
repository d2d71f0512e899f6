//! The open-file limit: raised to what the system allows at start-up, and
//! compared with what the broker's logs need, so that running out of
//! descriptors is foreseen in the log rather than met in a failed request.

use crate::partitions::Partitions;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors the broker holds whatever its partitions: stdio, the async
/// runtime, the listener, the metadata log, the data directory lock, and
/// short-lived files (checkpoints, snapshots, index rewrites).
const BASE_DESCRIPTORS: u64 = 64;

/// Fewer descriptors than this left for connections is worth a warning even
/// when `max.connections` is not set.
const MIN_CONNECTION_DESCRIPTORS: u64 = 1000;

/// Raises the soft limit on open files to the hard limit, as the JVM does
/// for Kafka: the usual soft default of 1024 is far below what a broker
/// with many partitions and connections needs. Logs the outcome.
pub fn raise_open_file_limit() {
    let show = |limit: Option<u64>| limit.map_or("unlimited".to_string(), |l| l.to_string());
    let found = getrlimit(Resource::Nofile);
    let below_hard = match (found.current, found.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !below_hard {
        tracing::info!(
            "open file limit (RLIMIT_NOFILE) is {}, the hard limit",
            show(found.current)
        );
        return;
    }
    let raised = Rlimit {
        current: found.maximum,
        maximum: found.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            "raised the open file limit (RLIMIT_NOFILE) from {} to the hard limit {}",
            show(found.current),
            show(found.maximum)
        ),
        Err(e) => tracing::warn!(
            error = %std::io::Error::from(e),
            "cannot raise the open file limit (RLIMIT_NOFILE) from {} to the hard limit {}",
            show(found.current),
            show(found.maximum)
        ),
    }
}

/// What the broker's logs need against the open-file limit in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DescriptorBudget {
    /// `.log` files open at most: one per segment, up to
    /// `log.max.open.segment.files` (the storage engine closes the least
    /// recently used beyond it).
    pub(crate) segment_files: u64,
    /// The soft `RLIMIT_NOFILE`; `None` is unlimited.
    pub(crate) limit: Option<u64>,
}

impl DescriptorBudget {
    /// Counts the segments of the open partitions (no second walk of the
    /// data directory), bounded by what the logs keep open, and reads the
    /// current limit.
    pub(crate) fn measure(partitions: &Partitions) -> DescriptorBudget {
        let segments: u64 = partitions
            .all()
            .iter()
            .map(|p| p.segment_count() as u64)
            .sum();
        DescriptorBudget {
            segment_files: segments.min(partitions.max_open_segment_files() as u64),
            limit: getrlimit(Resource::Nofile).current,
        }
    }

    /// Segment files plus [`BASE_DESCRIPTORS`].
    pub(crate) fn needed(&self) -> u64 {
        self.segment_files + BASE_DESCRIPTORS
    }

    /// Descriptors left for connections (and new segments); negative when
    /// the logs alone need more than the limit.
    pub(crate) fn left_for_connections(&self) -> Option<i64> {
        self.limit
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX) - self.needed() as i64)
    }

    /// Logs the budget: INFO normally, WARN when the logs leave fewer than
    /// [`MIN_CONNECTION_DESCRIPTORS`] descriptors, or fewer than an explicit
    /// `max.connections`, for connections.
    pub(crate) fn report(&self, max_connections: Option<u64>) {
        let Some(limit) = self.limit else {
            tracing::info!(
                needed = self.needed(),
                segment_files = self.segment_files,
                "open file limit: unlimited"
            );
            return;
        };
        let left = self.left_for_connections().unwrap_or(i64::MAX);
        let wanted = max_connections.unwrap_or(MIN_CONNECTION_DESCRIPTORS);
        if left < i64::try_from(wanted).unwrap_or(i64::MAX) {
            tracing::warn!(
                limit,
                needed = self.needed(),
                segment_files = self.segment_files,
                "open file limit {limit} is too low: the logs need about {} descriptors (one per \
                 open segment plus {BASE_DESCRIPTORS}), leaving {} for connections where {wanted} are \
                 wanted; raise the hard limit (ulimit -Hn, LimitNOFILE= under systemd)",
                self.needed(),
                left.max(0),
            );
        } else {
            tracing::info!(
                limit,
                needed = self.needed(),
                segment_files = self.segment_files,
                "open file limit {limit}: the logs need about {} descriptors, leaving {left} for connections",
                self.needed()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{create_topic, test_state};

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        raise_open_file_limit();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, limit.maximum);
    }

    #[tokio::test]
    async fn the_budget_counts_one_descriptor_per_segment() {
        let (_dir, state) = test_state();
        create_topic(&state, "a", 2).await;
        create_topic(&state, "b", 1).await;
        let budget = DescriptorBudget::measure(&state.partitions);
        assert_eq!(budget.segment_files, 3);
        assert_eq!(budget.needed(), 3 + BASE_DESCRIPTORS);
        let tight = DescriptorBudget {
            limit: Some(50),
            ..budget
        };
        assert_eq!(tight.left_for_connections(), Some(50 - 67));
    }
}
