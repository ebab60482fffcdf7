//! openraft's storage conformance suite run against our log store and state
//! machine, on RocksDB (what we ship) and on the in-memory engine; snapshot
//! files go to a temp dir either way.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::{StorageError, TypeConfig};
use crate::storage::mem::MemEngine;
use crate::storage::rocks::RocksEngine;

struct Rocks;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Rocks {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Arc::new(RocksEngine::open(dir.path()).expect("open rocksdb"));
        let sm = StateMachine::open(engine.clone(), &dir.path().join("snap"))?;
        Ok((dir, LogStore::new(engine), sm))
    }
}

struct Mem;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Mem {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Arc::new(MemEngine::new());
        let sm = StateMachine::open(engine.clone(), &dir.path().join("snap"))?;
        Ok((dir, LogStore::new(engine), sm))
    }
}

#[test]
fn openraft_suite_on_rocksdb() {
    Suite::test_all(Rocks).unwrap();
}

#[test]
fn openraft_suite_on_memory() {
    Suite::test_all(Mem).unwrap();
}
