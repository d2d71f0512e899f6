//! ACL entries as the metadata keeps them (Kafka's AccessControlEntryRecord):
//! the resource pattern, the principal and host, the operation and the
//! permission, each with Kafka's wire codes so DescribeAcls answers what
//! CreateAcls was given. Their meaning is the broker's authorizer's.

use serde::{Deserialize, Serialize};

/// One ACL. Codes are Kafka's: `resource_type` (2 TOPIC, 3 GROUP, 4 CLUSTER,
/// 5 TRANSACTIONAL_ID, 6 DELEGATION_TOKEN, 7 USER), `pattern_type` (3 LITERAL,
/// 4 PREFIXED), `operation` (2 ALL ... 15 TWO_PHASE_COMMIT), `permission`
/// (2 DENY, 3 ALLOW).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclEntry {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// A client IP address, or `*` for any.
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}
