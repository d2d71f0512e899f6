//! Kafka's AclBindingFilter: which ACLs a DescribeAcls or DeleteAcls filter
//! selects, and what a CreateAcls entry must be to be stored.

use super::authorizer::{pattern, permission, resource, Operation};
use sluice_metadata::AclEntry;

/// One DescribeAcls / DeleteAcls filter, in Kafka's codes; `None` matches
/// any name, principal or host.
#[derive(Debug, Clone)]
pub(crate) struct AclFilter {
    pub(crate) resource_type: i8,
    pub(crate) resource_name: Option<String>,
    pub(crate) pattern_type: i8,
    pub(crate) principal: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) operation: i8,
    pub(crate) permission: i8,
}

impl AclFilter {
    /// Why the filter can match nothing sensible (Kafka's INVALID_REQUEST).
    pub(crate) fn invalid(&self) -> Option<String> {
        if !(resource::ANY..=resource::USER).contains(&self.resource_type) {
            return Some(format!("unknown resource type {}", self.resource_type));
        }
        if !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type) {
            return Some(format!("unknown pattern type {}", self.pattern_type));
        }
        if Operation::from_code(self.operation).is_none() {
            return Some(format!("unknown operation {}", self.operation));
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission) {
            return Some(format!("unknown permission type {}", self.permission));
        }
        None
    }

    pub(crate) fn matches(&self, acl: &AclEntry) -> bool {
        let name_matches = match (&self.resource_name, self.pattern_type) {
            (None, pattern::ANY | pattern::MATCH) => true,
            (None, wanted) => acl.pattern_type == wanted,
            (Some(name), pattern::ANY) => acl.resource_name == *name,
            (Some(name), pattern::MATCH) => match acl.pattern_type {
                pattern::LITERAL => acl.resource_name == *name || acl.resource_name == "*",
                pattern::PREFIXED => name.starts_with(acl.resource_name.as_str()),
                _ => false,
            },
            (Some(name), wanted) => acl.pattern_type == wanted && acl.resource_name == *name,
        };
        name_matches
            && (self.resource_type == resource::ANY || self.resource_type == acl.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any as i8 || self.operation == acl.operation)
            && (self.permission == permission::ANY || self.permission == acl.permission)
    }
}

/// Why a CreateAcls entry cannot be stored, as Kafka's controller checks it.
pub(crate) fn invalid_new_acl(acl: &AclEntry) -> Option<String> {
    if !(resource::TOPIC..=resource::USER).contains(&acl.resource_type) {
        return Some(format!("Invalid resourceType {}", acl.resource_type));
    }
    if acl.pattern_type != pattern::LITERAL && acl.pattern_type != pattern::PREFIXED {
        return Some(format!(
            "Invalid patternType {}: only LITERAL and PREFIXED ACLs can be created",
            acl.pattern_type
        ));
    }
    match Operation::from_code(acl.operation) {
        None | Some(Operation::Any) => {
            return Some(format!("Invalid operation {}", acl.operation));
        }
        Some(_) => {}
    }
    if acl.permission != permission::ALLOW && acl.permission != permission::DENY {
        return Some(format!("Invalid permissionType {}", acl.permission));
    }
    if acl.resource_name.is_empty() {
        return Some("Resource name should not be empty".to_string());
    }
    if acl.resource_type == resource::CLUSTER
        && acl.resource_name != super::authorizer::CLUSTER_NAME
    {
        return Some(format!(
            "The only valid name for the CLUSTER resource is {}",
            super::authorizer::CLUSTER_NAME
        ));
    }
    match acl.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return Some(format!("Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)", acl.principal)),
    }
    if acl.host.is_empty() {
        return Some("Invalid host: it must be an IP address or *".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, pt: i8) -> AclEntry {
        AclEntry {
            resource_type: resource::TOPIC,
            resource_name: name.into(),
            pattern_type: pt,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read as i8,
            permission: permission::ALLOW,
        }
    }

    fn filter(name: Option<&str>, pt: i8) -> AclFilter {
        AclFilter {
            resource_type: resource::ANY,
            resource_name: name.map(str::to_string),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: Operation::Any as i8,
            permission: permission::ANY,
        }
    }

    #[test]
    fn kafkas_filter_semantics() {
        let literal = entry("orders", pattern::LITERAL);
        let wildcard = entry("*", pattern::LITERAL);
        let prefixed = entry("ord", pattern::PREFIXED);
        let m = filter(Some("orders"), pattern::MATCH);
        assert!(m.matches(&literal) && m.matches(&wildcard) && m.matches(&prefixed));
        let any = filter(Some("orders"), pattern::ANY);
        assert!(any.matches(&literal) && !any.matches(&wildcard) && !any.matches(&prefixed));
        let p = filter(None, pattern::PREFIXED);
        assert!(!p.matches(&literal) && p.matches(&prefixed));
        assert!(filter(None, pattern::ANY).matches(&wildcard));
        let mut bob = filter(None, pattern::ANY);
        bob.principal = Some("User:bob".into());
        assert!(!bob.matches(&literal));
        assert!(filter(None, 9).invalid().is_some());
    }

    #[test]
    fn new_acls_are_checked() {
        assert!(invalid_new_acl(&entry("orders", pattern::LITERAL)).is_none());
        assert!(invalid_new_acl(&entry("orders", pattern::MATCH)).is_some());
        let mut bad = entry("orders", pattern::LITERAL);
        bad.principal = "alice".into();
        assert!(invalid_new_acl(&bad).unwrap().contains("principal"));
        let mut cluster = entry("my-cluster", pattern::LITERAL);
        cluster.resource_type = resource::CLUSTER;
        assert!(invalid_new_acl(&cluster).is_some());
        let mut any_op = entry("orders", pattern::LITERAL);
        any_op.operation = Operation::Any as i8;
        assert!(invalid_new_acl(&any_op).is_some());
    }
}
