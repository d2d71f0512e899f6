//! KIP-430 `authorized_operations`: the handlers report every operation
//! when asked (what a broker without an authorizer allows); with an
//! authorizer these patches narrow each reported resource to what the
//! caller may do, as Kafka's AuthHelper.authorizedOperations does. Entries
//! the handler left at "not requested" (errors, refused resources) stay so.

use super::{Access, Patch};
use crate::security::authorizer::{resource, Operation, CLUSTER_NAME, OPERATIONS_NOT_REQUESTED};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DescribeClusterRequest, DescribeGroupsRequest, MetadataRequest,
    ResponseKind,
};

/// The caller's operations on a resource, computed when the response is
/// patched.
fn operations(access: &Access) -> impl Fn(i8, &str) -> i32 + Send + 'static {
    let (state, image, caller) = (
        std::sync::Arc::clone(access.state),
        std::sync::Arc::clone(&access.image),
        access.caller.clone(),
    );
    move |resource_type, name| {
        state
            .authorizer
            .authorized_operations(&image, &caller, resource_type, name)
    }
}

/// Kafka reports the cluster's operations only to a caller that may
/// describe the cluster, and 0 to others.
fn cluster_operations(access: &Access) -> i32 {
    if access.cluster(Operation::Describe) {
        access.state.authorizer.authorized_operations(
            &access.image,
            access.caller,
            resource::CLUSTER,
            CLUSTER_NAME,
        )
    } else {
        0
    }
}

fn narrowed(current: i32, computed: impl FnOnce() -> i32) -> i32 {
    if current == OPERATIONS_NOT_REQUESTED {
        current
    } else {
        computed()
    }
}

pub(super) fn metadata(access: &Access, request: &MetadataRequest) -> Option<Patch> {
    let (topics, cluster) = (
        request.include_topic_authorized_operations,
        request.include_cluster_authorized_operations,
    );
    if !topics && !cluster {
        return None;
    }
    let on = operations(access);
    let cluster_ops = cluster.then(|| cluster_operations(access));
    Some(Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::Metadata(r) = response {
            if let Some(ops) = cluster_ops {
                r.cluster_authorized_operations = narrowed(r.cluster_authorized_operations, || ops);
            }
            for t in &mut r.topics {
                let Some(name) = &t.name else { continue };
                t.topic_authorized_operations =
                    narrowed(t.topic_authorized_operations, || on(resource::TOPIC, name));
            }
        }
    }))
}

pub(super) fn describe_cluster(access: &Access, request: &DescribeClusterRequest) -> Option<Patch> {
    if !request.include_cluster_authorized_operations {
        return None;
    }
    let ops = cluster_operations(access);
    Some(Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::DescribeCluster(r) = response {
            r.cluster_authorized_operations = narrowed(r.cluster_authorized_operations, || ops);
        }
    }))
}

pub(super) fn describe_groups(access: &Access, request: &DescribeGroupsRequest) -> Option<Patch> {
    if !request.include_authorized_operations {
        return None;
    }
    let on = operations(access);
    Some(Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::DescribeGroups(r) = response {
            for g in &mut r.groups {
                g.authorized_operations =
                    narrowed(g.authorized_operations, || on(resource::GROUP, &g.group_id));
            }
        }
    }))
}

pub(super) fn consumer_group_describe(
    access: &Access,
    request: &ConsumerGroupDescribeRequest,
) -> Option<Patch> {
    if !request.include_authorized_operations {
        return None;
    }
    let on = operations(access);
    Some(Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::ConsumerGroupDescribe(r) = response {
            for g in &mut r.groups {
                g.authorized_operations =
                    narrowed(g.authorized_operations, || on(resource::GROUP, &g.group_id));
            }
        }
    }))
}
