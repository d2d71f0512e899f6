//! openraft's own storage suite against our log store and state machine:
//! it checks the contracts (log state, purge, truncate, membership,
//! snapshot transfer) that openraft's safety relies on.

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::TypeConfig;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError, StorageIOError};

struct InTempDir;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for InTempDir {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let failed = |e: &dyn std::fmt::Display| -> StorageError<u64> {
            StorageIOError::new(
                ErrorSubject::Store,
                ErrorVerb::Read,
                openraft::AnyError::error(e.to_string()),
            )
            .into()
        };
        let dir = tempfile::tempdir().map_err(|e| failed(&e))?;
        let log = LogStore::open(dir.path()).map_err(|e| failed(&e))?;
        let (state_machine, _images) = StateMachine::open(dir.path()).map_err(|e| failed(&e))?;
        Ok((dir, log, state_machine))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(InTempDir) {
        panic!("openraft's storage suite failed: {e}");
    }
}
