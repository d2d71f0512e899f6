//! One policy for poisoned locks. A panic while a lock is held (a bug hit by
//! one request) must not disable what the lock guards for the rest of the
//! process: with `lock().expect(..)` everywhere, one bad request turned a
//! partition, a group coordinator or the metadata log into something every
//! later request panicked on. Instead the state is used as the panicking
//! thread left it — as Kafka carries on after an unexpected exception in a
//! request handler — the poison is cleared, and the recovery is logged at
//! ERROR once per poisoning. The storage and metadata code return errors
//! rather than panicking mid-update, so the state left is one of their
//! consistent states.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

fn report(what: &str) {
    tracing::error!(
        lock = what,
        "a panic poisoned this lock; carrying on with the state it left"
    );
}

pub(crate) trait MutexExt<T> {
    /// Locks, recovering from poisoning (see the module docs).
    fn locked(&self, what: &str) -> MutexGuard<'_, T>;
}

impl<T> MutexExt<T> for Mutex<T> {
    fn locked(&self, what: &str) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| {
            report(what);
            self.clear_poison();
            poisoned.into_inner()
        })
    }
}

pub(crate) trait RwLockExt<T> {
    /// Read-locks, recovering from poisoning (see the module docs).
    fn read_locked(&self, what: &str) -> RwLockReadGuard<'_, T>;
    /// Write-locks, recovering from poisoning (see the module docs).
    fn write_locked(&self, what: &str) -> RwLockWriteGuard<'_, T>;
}

impl<T> RwLockExt<T> for RwLock<T> {
    fn read_locked(&self, what: &str) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|poisoned| {
            report(what);
            self.clear_poison();
            poisoned.into_inner()
        })
    }

    fn write_locked(&self, what: &str) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|poisoned| {
            report(what);
            self.clear_poison();
            poisoned.into_inner()
        })
    }
}

/// The value of a lock being taken apart (at shutdown), poisoned or not.
pub(crate) fn into_inner<T>(lock: Mutex<T>) -> T {
    lock.into_inner().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_lock_poisoned_by_a_panic_keeps_working_and_is_healed() {
        let lock = Arc::new(Mutex::new(vec![1]));
        let held = lock.clone();
        let panicked = std::thread::spawn(move || {
            let mut v = held.lock().unwrap();
            v.push(2);
            panic!("a handler bug while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(lock.is_poisoned());
        assert_eq!(*lock.locked("test"), vec![1, 2]);
        assert!(!lock.is_poisoned(), "recovery clears the poison");

        let rw = Arc::new(RwLock::new(0));
        let held = rw.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.write().unwrap();
            panic!("poison the rwlock");
        })
        .join();
        *rw.write_locked("test") += 1;
        assert_eq!(*rw.read_locked("test"), 1);
    }
}
