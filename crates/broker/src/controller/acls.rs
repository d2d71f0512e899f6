//! ACL changes (CreateAcls, DeleteAcls), as Kafka's AclControlManager makes
//! them: each new ACL is checked and appended once (creating one that exists
//! is a success that writes nothing); a delete filter removes every ACL it
//! matches.

use super::{ApiError, Controller};
use crate::security::acl_filter::{invalid_new_acl, AclFilter};
use sluice_metadata::{AclEntry, MetadataRecord, Uuid};
use sluice_protocol::error;

impl Controller<'_> {
    /// Creates `acls`; one outcome per entry, in order.
    pub(crate) fn create_acls(
        &self,
        acls: Vec<AclEntry>,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        self.commit_with(|image| {
            let mut records = Vec::new();
            let mut outcomes = Vec::new();
            let mut adding: Vec<&AclEntry> = Vec::new();
            for acl in &acls {
                if let Some(why) = invalid_new_acl(acl) {
                    outcomes.push(Err(ApiError::new(error::INVALID_REQUEST, why)));
                    continue;
                }
                let exists = image.acls().values().any(|a| a == acl) || adding.contains(&acl);
                if !exists {
                    adding.push(acl);
                    records.push(MetadataRecord::AclCreated {
                        id: Uuid::new_v4(),
                        acl: acl.clone(),
                    });
                }
                outcomes.push(Ok(()));
            }
            Ok((records, outcomes))
        })
    }

    /// Deletes what each filter matches; per filter, the ACLs it removed.
    pub(crate) fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Result<Vec<AclEntry>, ApiError>>, ApiError> {
        self.commit_with(|image| {
            let mut records = Vec::new();
            let mut removed: Vec<Uuid> = Vec::new();
            let mut outcomes = Vec::new();
            for filter in &filters {
                if let Some(why) = filter.invalid() {
                    outcomes.push(Err(ApiError::new(error::INVALID_REQUEST, why)));
                    continue;
                }
                let mut matched = Vec::new();
                for (id, acl) in image.acls() {
                    if filter.matches(acl) {
                        matched.push(acl.clone());
                        if !removed.contains(id) {
                            removed.push(*id);
                            records.push(MetadataRecord::AclDeleted { id: *id });
                        }
                    }
                }
                outcomes.push(Ok(matched));
            }
            Ok((records, outcomes))
        })
    }
}
