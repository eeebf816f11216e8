//! The latest known state of every monitored member, written by the member tasks and read by the
//! controller (e.g. the topology step treats a member whose probe keeps failing as unreachable).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::client::Endpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHealth {
    pub endpoint: Endpoint,
    /// The last probe: its latency or why it failed; `None` before the first probe finished.
    pub last_probe: Option<Result<Duration, String>>,
    pub consecutive_probe_failures: u32,
    /// Whether a notice session is open (always false for probe-only targets).
    pub session_open: bool,
}

impl MemberHealth {
    fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            last_probe: None,
            consecutive_probe_failures: 0,
            session_open: false,
        }
    }

    pub(super) fn record_probe(&mut self, outcome: &Result<Duration, String>) {
        self.consecutive_probe_failures = match outcome {
            Ok(_) => 0,
            Err(_) => self.consecutive_probe_failures.saturating_add(1),
        };
        self.last_probe = Some(outcome.clone());
    }
}

/// One entry per member task; `owner` identifies the task so that a stopped task cannot
/// overwrite the entry of its replacement.
struct Slot {
    owner: u64,
    health: MemberHealth,
}

pub(super) struct HealthBoard<K> {
    inner: Arc<Mutex<HashMap<K, HashMap<Endpoint, Slot>>>>,
}

impl<K> Clone for HealthBoard<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K> Default for HealthBoard<K> {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> HealthBoard<K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, HashMap<Endpoint, Slot>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a fresh entry owned by task `owner`.
    pub(super) fn register(&self, cluster: &K, endpoint: &Endpoint, owner: u64) {
        let slot = Slot {
            owner,
            health: MemberHealth::new(endpoint.clone()),
        };
        self.lock()
            .entry(cluster.clone())
            .or_default()
            .insert(endpoint.clone(), slot);
    }

    pub(super) fn unregister(&self, cluster: &K, endpoint: &Endpoint) {
        let mut board = self.lock();
        if let Some(members) = board.get_mut(cluster) {
            members.remove(endpoint);
            if members.is_empty() {
                board.remove(cluster);
            }
        }
    }

    /// Applies `f` to the entry if task `owner` still owns it.
    pub(super) fn update(
        &self,
        cluster: &K,
        endpoint: &Endpoint,
        owner: u64,
        f: impl FnOnce(&mut MemberHealth),
    ) {
        let mut board = self.lock();
        let slot = board.get_mut(cluster).and_then(|m| m.get_mut(endpoint));
        if let Some(slot) = slot.filter(|s| s.owner == owner) {
            f(&mut slot.health);
        }
    }

    /// The members of `cluster`, sorted by endpoint.
    pub(super) fn snapshot(&self, cluster: &K) -> Vec<MemberHealth> {
        let mut members: Vec<MemberHealth> = self
            .lock()
            .get(cluster)
            .map(|m| m.values().map(|s| s.health.clone()).collect())
            .unwrap_or_default();
        members.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_failures_count_up_and_reset() {
        let mut health = MemberHealth::new(Endpoint::new("h", 1));
        health.record_probe(&Err("timeout".into()));
        health.record_probe(&Err("refused".into()));
        assert_eq!(health.consecutive_probe_failures, 2);
        assert_eq!(health.last_probe, Some(Err("refused".into())));
        health.record_probe(&Ok(Duration::from_millis(1)));
        assert_eq!(health.consecutive_probe_failures, 0);
    }

    #[test]
    fn a_replaced_task_cannot_write() {
        let board = HealthBoard::<&str>::default();
        let endpoint = Endpoint::new("h", 1);
        board.register(&"c", &endpoint, 1);
        board.register(&"c", &endpoint, 2);
        board.update(&"c", &endpoint, 1, |h| h.session_open = true);
        assert!(!board.snapshot(&"c")[0].session_open);
        board.update(&"c", &endpoint, 2, |h| h.session_open = true);
        assert!(board.snapshot(&"c")[0].session_open);
        board.unregister(&"c", &endpoint);
        assert!(board.snapshot(&"c").is_empty());
        board.update(&"c", &endpoint, 2, |h| h.session_open = false);
        assert!(board.snapshot(&"c").is_empty());
    }
}
