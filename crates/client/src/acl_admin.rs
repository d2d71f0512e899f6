//! ACL administration (DescribeAcls, CreateAcls, DeleteAcls), with Kafka's
//! names for resource types, pattern types, operations and permissions.

use sluice_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
use sluice_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use sluice_protocol::kafka_protocol::messages::{
    CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{Error, Result};

/// Kafka's names and codes, in its order.
const RESOURCE_TYPES: &[(&str, i8)] = &[
    ("any", 1),
    ("topic", 2),
    ("group", 3),
    ("cluster", 4),
    ("transactional-id", 5),
    ("delegation-token", 6),
    ("user", 7),
];
const PATTERN_TYPES: &[(&str, i8)] = &[("any", 1), ("match", 2), ("literal", 3), ("prefixed", 4)];
const OPERATIONS: &[(&str, i8)] = &[
    ("any", 1),
    ("all", 2),
    ("read", 3),
    ("write", 4),
    ("create", 5),
    ("delete", 6),
    ("alter", 7),
    ("describe", 8),
    ("cluster-action", 9),
    ("describe-configs", 10),
    ("alter-configs", 11),
    ("idempotent-write", 12),
    ("create-tokens", 13),
    ("describe-tokens", 14),
    ("two-phase-commit", 15),
];
const PERMISSIONS: &[(&str, i8)] = &[("any", 1), ("deny", 2), ("allow", 3)];

fn code(table: &[(&str, i8)], what: &str, name: &str) -> Result<i8> {
    let wanted = name.to_ascii_lowercase().replace('_', "-");
    table
        .iter()
        .find(|(n, _)| *n == wanted || n.replace('-', "") == wanted)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown {what} '{name}' (one of {})",
                table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ))
        })
}

fn name(table: &[(&'static str, i8)], code: i8) -> &'static str {
    table
        .iter()
        .find(|(_, c)| *c == code)
        .map_or("unknown", |(n, _)| n)
}

/// One ACL, or (with `any`/`match` and `None`s) a filter of ACLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBinding {
    /// topic, group, cluster, transactional-id, ... (`any` in a filter).
    pub resource_type: String,
    /// The resource's name (`None` in a filter: any).
    pub resource_name: Option<String>,
    /// literal or prefixed (`any` or `match` in a filter).
    pub pattern_type: String,
    /// `User:alice` (`None` in a filter: any).
    pub principal: Option<String>,
    /// An IP address or `*` (`None` in a filter: any).
    pub host: Option<String>,
    /// read, write, describe, ... (`any` in a filter).
    pub operation: String,
    /// allow or deny (`any` in a filter).
    pub permission: String,
}

struct Codes {
    resource_type: i8,
    pattern_type: i8,
    operation: i8,
    permission: i8,
}

impl AclBinding {
    fn codes(&self) -> Result<Codes> {
        Ok(Codes {
            resource_type: code(RESOURCE_TYPES, "resource type", &self.resource_type)?,
            pattern_type: code(PATTERN_TYPES, "pattern type", &self.pattern_type)?,
            operation: code(OPERATIONS, "operation", &self.operation)?,
            permission: code(PERMISSIONS, "permission", &self.permission)?,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn from_codes(
        resource_type: i8,
        resource_name: String,
        pattern_type: i8,
        principal: String,
        host: String,
        operation: i8,
        permission: i8,
    ) -> AclBinding {
        AclBinding {
            resource_type: name(RESOURCE_TYPES, resource_type).to_string(),
            resource_name: Some(resource_name),
            pattern_type: name(PATTERN_TYPES, pattern_type).to_string(),
            principal: Some(principal),
            host: Some(host),
            operation: name(OPERATIONS, operation).to_string(),
            permission: name(PERMISSIONS, permission).to_string(),
        }
    }
}

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

impl Admin {
    /// The ACLs `filter` matches.
    pub async fn describe_acls(&self, filter: &AclBinding) -> Result<Vec<AclBinding>> {
        let c = filter.codes()?;
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(c.resource_type)
            .with_resource_name_filter(filter.resource_name.as_deref().map(s))
            .with_pattern_type_filter(c.pattern_type)
            .with_principal_filter(filter.principal.as_deref().map(s))
            .with_host_filter(filter.host.as_deref().map(s))
            .with_operation(c.operation)
            .with_permission_type(c.permission);
        let conn = self.cluster().any_connection().await?;
        let response = conn.call(request).await?;
        Error::check(
            response.error_code,
            response.error_message.map(|m| m.to_string()),
            "ACLs",
        )?;
        let mut out = Vec::new();
        for resource in response.resources {
            for acl in resource.acls {
                out.push(AclBinding::from_codes(
                    resource.resource_type,
                    resource.resource_name.to_string(),
                    resource.pattern_type,
                    acl.principal.to_string(),
                    acl.host.to_string(),
                    acl.operation,
                    acl.permission_type,
                ));
            }
        }
        Ok(out)
    }

    /// Creates `acls` (each must name its resource, principal and host).
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<()> {
        let mut creations = Vec::new();
        for acl in acls {
            let c = acl.codes()?;
            let need = |v: &Option<String>, what: &str| {
                v.clone()
                    .ok_or_else(|| Error::Config(format!("a new ACL needs its {what}")))
            };
            creations.push(
                AclCreation::default()
                    .with_resource_type(c.resource_type)
                    .with_resource_name(s(&need(&acl.resource_name, "resource name")?))
                    .with_resource_pattern_type(c.pattern_type)
                    .with_principal(s(&need(&acl.principal, "principal")?))
                    .with_host(s(&need(&acl.host, "host")?))
                    .with_operation(c.operation)
                    .with_permission_type(c.permission),
            );
        }
        let conn = self.cluster().controller_connection().await?;
        let response = conn
            .call(CreateAclsRequest::default().with_creations(creations))
            .await?;
        for r in response.results {
            Error::check(r.error_code, r.error_message.map(|m| m.to_string()), "ACL")?;
        }
        Ok(())
    }

    /// Deletes what each filter matches; returns the ACLs deleted.
    pub async fn delete_acls(&self, filters: &[AclBinding]) -> Result<Vec<AclBinding>> {
        let mut request = DeleteAclsRequest::default();
        for filter in filters {
            let c = filter.codes()?;
            request.filters.push(
                DeleteAclsFilter::default()
                    .with_resource_type_filter(c.resource_type)
                    .with_resource_name_filter(filter.resource_name.as_deref().map(s))
                    .with_pattern_type_filter(c.pattern_type)
                    .with_principal_filter(filter.principal.as_deref().map(s))
                    .with_host_filter(filter.host.as_deref().map(s))
                    .with_operation(c.operation)
                    .with_permission_type(c.permission),
            );
        }
        let conn = self.cluster().controller_connection().await?;
        let response = conn.call(request).await?;
        let mut deleted = Vec::new();
        for r in response.filter_results {
            Error::check(r.error_code, r.error_message.map(|m| m.to_string()), "ACLs")?;
            for acl in r.matching_acls {
                deleted.push(AclBinding::from_codes(
                    acl.resource_type,
                    acl.resource_name.to_string(),
                    acl.pattern_type,
                    acl.principal.to_string(),
                    acl.host.to_string(),
                    acl.operation,
                    acl.permission_type,
                ));
            }
        }
        Ok(deleted)
    }
}
