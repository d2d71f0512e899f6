//! Authorization with the semantics of Kafka's StandardAuthorizer
//! (`authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`):
//! ACLs from the metadata image on resources (Topic, Group, Cluster,
//! TransactionalId, ...) with LITERAL (or `*`) and PREFIXED names; for a
//! request, any matching DENY for its operation (or ALL) wins, then any
//! matching ALLOW for it, ALL, or an operation that implies it (Read, Write,
//! Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs).
//! `super.users` are allowed everything; with no ACL at all on a resource,
//! `allow.everyone.if.no.acl.found` decides (false by default).
//!
//! The ACLs are indexed once per change of the image's ACLs, so a check on
//! the produce and fetch paths is a hash lookup and a short scan of the
//! prefixed ACLs of that resource type.

use crate::config::BrokerConfig;
use crate::locks::MutexExt;
use sluice_metadata::{AclEntry, MetadataImage};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The one `authorizer.class.name` Sluice implements.
pub(crate) const STANDARD_AUTHORIZER: &str =
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// The name of the one Cluster resource.
pub(crate) const CLUSTER_NAME: &str = "kafka-cluster";

/// Kafka's resource type codes.
pub(crate) mod resource {
    pub(crate) const ANY: i8 = 1;
    pub(crate) const TOPIC: i8 = 2;
    pub(crate) const GROUP: i8 = 3;
    pub(crate) const CLUSTER: i8 = 4;
    pub(crate) const TRANSACTIONAL_ID: i8 = 5;
    pub(crate) const USER: i8 = 7;
}

/// Kafka's pattern type codes.
pub(crate) mod pattern {
    pub(crate) const ANY: i8 = 1;
    pub(crate) const MATCH: i8 = 2;
    pub(crate) const LITERAL: i8 = 3;
    pub(crate) const PREFIXED: i8 = 4;
}

/// Kafka's ACL operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub(crate) enum Operation {
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
    TwoPhaseCommit = 15,
}

impl Operation {
    pub(crate) fn from_code(code: i8) -> Option<Operation> {
        use Operation::*;
        [
            Any,
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            CreateTokens,
            DescribeTokens,
            TwoPhaseCommit,
        ]
        .into_iter()
        .find(|op| *op as i8 == code)
    }

    /// Whether an ALLOW for `granted` allows `self`.
    fn allowed_by(self, granted: Operation) -> bool {
        use Operation::*;
        granted == self
            || granted == All
            || match self {
                Describe => matches!(granted, Read | Write | Delete | Alter),
                DescribeConfigs => granted == AlterConfigs,
                _ => false,
            }
    }
}

/// Kafka's "authorized operations not requested" (KIP-430).
pub(crate) const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// The operations Kafka reports on a resource type in the
/// `authorized_operations` fields (its AclEntry.supportedOperations).
fn supported_operations(resource_type: i8) -> &'static [Operation] {
    use Operation::*;
    match resource_type {
        resource::TOPIC => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        resource::GROUP => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
        resource::CLUSTER => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        resource::TRANSACTIONAL_ID => &[Describe, Write],
        _ => &[],
    }
}

/// Kafka's bit field of operation codes (bit n for code n).
fn operation_bits(operations: impl Iterator<Item = Operation>) -> i32 {
    operations.fold(0, |bits, op| bits | (1 << (op as i8)))
}

/// Every reportable operation on `resource_type`: what a broker without
/// an authorizer answers when they are requested.
pub(crate) fn all_operations(resource_type: i8) -> i32 {
    operation_bits(supported_operations(resource_type).iter().copied())
}

/// Kafka's permission codes.
pub(crate) mod permission {
    pub(crate) const ANY: i8 = 1;
    pub(crate) const DENY: i8 = 2;
    pub(crate) const ALLOW: i8 = 3;
}

/// Who asks: the principal (`User:alice`) and the client's IP address.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) principal: String,
    pub(crate) host: String,
}

/// The ACLs of one image, by (resource type, literal name) and, for
/// prefixed ones, by resource type.
#[derive(Default)]
struct AclIndex {
    literal: HashMap<(i8, String), Vec<AclEntry>>,
    prefixed: HashMap<i8, Vec<AclEntry>>,
}

impl AclIndex {
    fn build(image: &MetadataImage) -> AclIndex {
        let mut index = AclIndex::default();
        for acl in image.acls().values() {
            if acl.pattern_type == pattern::PREFIXED {
                index
                    .prefixed
                    .entry(acl.resource_type)
                    .or_default()
                    .push(acl.clone());
            } else {
                index
                    .literal
                    .entry((acl.resource_type, acl.resource_name.clone()))
                    .or_default()
                    .push(acl.clone());
            }
        }
        index
    }

    /// Every ACL whose pattern matches the resource.
    fn matching<'a>(
        &'a self,
        resource_type: i8,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclEntry> {
        let exact = self.literal.get(&(resource_type, name.to_string()));
        let wildcard = self.literal.get(&(resource_type, "*".to_string()));
        let prefixed = self
            .prefixed
            .get(&resource_type)
            .into_iter()
            .flatten()
            .filter(move |acl| name.starts_with(acl.resource_name.as_str()));
        exact
            .into_iter()
            .flatten()
            .chain(wildcard.into_iter().flatten())
            .chain(prefixed)
    }
}

/// The broker's authorizer; disabled unless `authorizer.class.name` names
/// the StandardAuthorizer.
pub(crate) struct Authorizer {
    enabled: bool,
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
    /// The index and the `acls_changed_at` it was built for.
    index: Mutex<(u64, Arc<AclIndex>)>,
}

impl Authorizer {
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<Authorizer, String> {
        let class = config
            .get("authorizer.class.name")
            .unwrap_or_default()
            .trim();
        let enabled = match class {
            "" => false,
            STANDARD_AUTHORIZER => true,
            other => {
                return Err(format!(
                    "authorizer.class.name={other}: Sluice implements {STANDARD_AUTHORIZER} only (or empty for none)"
                ))
            }
        };
        let super_users = config
            .get("super.users")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Authorizer {
            enabled,
            super_users,
            allow_if_no_acl: config.get("allow.everyone.if.no.acl.found") == Some("true"),
            index: Mutex::new((u64::MAX, Arc::default())),
        })
    }

    /// Whether ACLs are enforced (and the ACL APIs served).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    fn index(&self, image: &MetadataImage) -> Arc<AclIndex> {
        let mut index = self.index.locked("acl index");
        if index.0 != image.acls_changed_at {
            *index = (image.acls_changed_at, Arc::new(AclIndex::build(image)));
        }
        Arc::clone(&index.1)
    }

    /// Whether `caller` may do `operation` on the resource.
    pub(crate) fn authorize(
        &self,
        image: &MetadataImage,
        caller: &Caller,
        operation: Operation,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.contains(&caller.principal) {
            return true;
        }
        let index = self.index(image);
        let mut any_acl = false;
        let mut allowed = false;
        for acl in index.matching(resource_type, name) {
            any_acl = true;
            let who = acl.principal == caller.principal || acl.principal == "User:*";
            let from = acl.host == "*" || acl.host == caller.host;
            if !who || !from {
                continue;
            }
            let Some(granted) = Operation::from_code(acl.operation) else {
                continue;
            };
            if acl.permission == permission::DENY
                && (granted == operation || granted == Operation::All)
            {
                return false;
            }
            if acl.permission == permission::ALLOW && operation.allowed_by(granted) {
                allowed = true;
            }
        }
        allowed || (!any_acl && self.allow_if_no_acl)
    }
}

impl Authorizer {
    /// The operations `caller` may do on the resource, as Kafka's
    /// AuthHelper.authorizedOperations reports them (KIP-430).
    pub(crate) fn authorized_operations(
        &self,
        image: &MetadataImage,
        caller: &Caller,
        resource_type: i8,
        name: &str,
    ) -> i32 {
        operation_bits(
            supported_operations(resource_type)
                .iter()
                .copied()
                .filter(|op| self.authorize(image, caller, *op, resource_type, name)),
        )
    }

    /// Whether `caller` may do `operation` on some resource of the type
    /// (Kafka's authorizeByResourceType, e.g. Write on any topic for an
    /// idempotent producer): an ALLOW for it on any pattern, unless a DENY
    /// on every name (`*`) takes it away.
    pub(crate) fn authorize_any(
        &self,
        image: &MetadataImage,
        caller: &Caller,
        operation: Operation,
        resource_type: i8,
    ) -> bool {
        if !self.enabled || self.super_users.contains(&caller.principal) {
            return true;
        }
        let applies = |acl: &AclEntry| {
            acl.resource_type == resource_type
                && (acl.principal == caller.principal || acl.principal == "User:*")
                && (acl.host == "*" || acl.host == caller.host)
        };
        let acls = image.acls().values().filter(|a| applies(a));
        let mut allowed = false;
        for acl in acls {
            let Some(granted) = Operation::from_code(acl.operation) else {
                continue;
            };
            if acl.permission == permission::DENY
                && acl.pattern_type == pattern::LITERAL
                && acl.resource_name == "*"
                && (granted == operation || granted == Operation::All)
            {
                return false;
            }
            if acl.permission == permission::ALLOW && operation.allowed_by(granted) {
                allowed = true;
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_metadata::{MetadataRecord, Uuid};

    fn acl(
        rt: i8,
        name: &str,
        pt: i8,
        principal: &str,
        host: &str,
        op: Operation,
        perm: i8,
    ) -> AclEntry {
        AclEntry {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: host.into(),
            operation: op as i8,
            permission: perm,
        }
    }

    fn image(acls: &[AclEntry]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for a in acls {
            image.apply(&MetadataRecord::AclCreated {
                id: Uuid::new_v4(),
                acl: a.clone(),
            });
        }
        image
    }

    fn authorizer(settings: &[(&str, &str)]) -> Authorizer {
        let mut all = vec![("authorizer.class.name", STANDARD_AUTHORIZER)];
        all.extend_from_slice(settings);
        Authorizer::from_config(&BrokerConfig::from_settings(all).unwrap()).unwrap()
    }

    fn caller(principal: &str) -> Caller {
        Caller {
            principal: principal.into(),
            host: "10.0.0.1".into(),
        }
    }

    use super::permission::{ALLOW, DENY};
    use super::resource::{GROUP, TOPIC};
    use Operation::*;

    #[test]
    fn kafkas_rules() {
        let a = authorizer(&[("super.users", "User:root;User:ops")]);
        let img = image(&[
            acl(
                TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                "*",
                Read,
                ALLOW,
            ),
            acl(
                TOPIC,
                "pay",
                pattern::PREFIXED,
                "User:bob",
                "*",
                Write,
                ALLOW,
            ),
            acl(
                TOPIC,
                "pay-secret",
                pattern::LITERAL,
                "User:bob",
                "*",
                All,
                DENY,
            ),
            acl(
                TOPIC,
                "*",
                pattern::LITERAL,
                "User:*",
                "10.0.0.9",
                Describe,
                ALLOW,
            ),
            acl(
                GROUP,
                "g",
                pattern::LITERAL,
                "User:alice",
                "10.0.0.1",
                Read,
                ALLOW,
            ),
            acl(
                TOPIC,
                "cfg",
                pattern::LITERAL,
                "User:alice",
                "*",
                AlterConfigs,
                ALLOW,
            ),
        ]);
        let alice = caller("User:alice");
        let bob = caller("User:bob");
        assert!(a.authorize(&img, &alice, Read, TOPIC, "orders"));
        assert!(
            a.authorize(&img, &alice, Describe, TOPIC, "orders"),
            "Read implies Describe"
        );
        assert!(!a.authorize(&img, &alice, Write, TOPIC, "orders"));
        assert!(!a.authorize(&img, &bob, Read, TOPIC, "orders"));
        assert!(
            a.authorize(&img, &bob, Write, TOPIC, "payments"),
            "prefixed"
        );
        assert!(
            !a.authorize(&img, &bob, Write, TOPIC, "pay-secret"),
            "DENY wins"
        );
        assert!(!a.authorize(&img, &bob, Describe, TOPIC, "pay-secret"));
        assert!(!a.authorize(&img, &bob, Write, TOPIC, "other"));
        assert!(a.authorize(&img, &alice, Read, GROUP, "g"), "host matches");
        assert!(!a.authorize(
            &img,
            &Caller {
                host: "10.0.0.2".into(),
                ..alice.clone()
            },
            Read,
            GROUP,
            "g"
        ));
        let from_9 = Caller {
            principal: "User:carol".into(),
            host: "10.0.0.9".into(),
        };
        assert!(
            a.authorize(&img, &from_9, Describe, TOPIC, "anything"),
            "wildcard name and principal"
        );
        assert!(
            a.authorize(&img, &alice, DescribeConfigs, TOPIC, "cfg"),
            "AlterConfigs implies DescribeConfigs"
        );
        assert!(!a.authorize(&img, &alice, Describe, TOPIC, "cfg"));
        assert!(
            a.authorize(&img, &caller("User:ops"), Delete, TOPIC, "pay-secret"),
            "super user"
        );
        assert!(
            !a.authorize(&img, &alice, Read, TOPIC, "no-acls"),
            "default deny"
        );
    }

    #[test]
    fn allow_everyone_if_no_acl_found_only_where_there_is_none() {
        let a = authorizer(&[("allow.everyone.if.no.acl.found", "true")]);
        let img = image(&[acl(
            TOPIC,
            "guarded",
            pattern::LITERAL,
            "User:alice",
            "*",
            Read,
            ALLOW,
        )]);
        assert!(a.authorize(&img, &caller("User:bob"), Write, TOPIC, "open"));
        assert!(!a.authorize(&img, &caller("User:bob"), Read, TOPIC, "guarded"));
    }

    #[test]
    fn the_index_follows_acl_changes_and_a_disabled_authorizer_allows_all() {
        let a = authorizer(&[]);
        let mut img = image(&[]);
        assert!(!a.authorize(&img, &caller("User:alice"), Read, TOPIC, "t"));
        img.apply(&MetadataRecord::AclCreated {
            id: Uuid::new_v4(),
            acl: acl(TOPIC, "t", pattern::LITERAL, "User:alice", "*", Read, ALLOW),
        });
        assert!(a.authorize(&img, &caller("User:alice"), Read, TOPIC, "t"));
        let off =
            Authorizer::from_config(&BrokerConfig::from_settings([("node.id", "1")]).unwrap())
                .unwrap();
        assert!(off.authorize(&img, &caller("User:bob"), Delete, TOPIC, "t"));
        // Another authorizer class is refused with the setting itself.
        assert!(BrokerConfig::from_settings([(
            "authorizer.class.name",
            "kafka.security.authorizer.AclAuthorizer"
        )])
        .is_err());
    }

    #[test]
    fn authorized_operations_are_kafkas_bit_field() {
        let a = authorizer(&[("super.users", "User:root")]);
        let img = image(&[
            acl(
                TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                "*",
                Read,
                ALLOW,
            ),
            acl(
                TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                "*",
                AlterConfigs,
                ALLOW,
            ),
            acl(
                TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                "*",
                Describe,
                DENY,
            ),
        ]);
        // Read and AlterConfigs, DescribeConfigs implied; Describe denied.
        let bits = a.authorized_operations(&img, &caller("User:alice"), TOPIC, "orders");
        assert_eq!(bits, (1 << 3) | (1 << 10) | (1 << 11));
        assert_eq!(
            a.authorized_operations(&img, &caller("User:bob"), TOPIC, "orders"),
            0
        );
        assert_eq!(
            a.authorized_operations(&img, &caller("User:root"), TOPIC, "orders"),
            all_operations(TOPIC)
        );
        // Kafka's values for every topic, group and cluster operation.
        assert_eq!(all_operations(TOPIC), 3576);
        assert_eq!(all_operations(GROUP), 3400);
        assert_eq!(all_operations(resource::CLUSTER), 8096);
    }
}
