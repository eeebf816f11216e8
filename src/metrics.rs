//! Prometheus metrics of the operator, served on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the failures counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub(crate) error: String,
}

/// The operator's metrics and the registry that serves them.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    reconciles: Counter,
    failures: Family<ErrorLabels, Counter>,
    duration: Histogram,
    writes: Counter,
    probes: Histogram,
    probe_failures: Counter,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("innodb_operator");
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let writes = Counter::default();
        let probes = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let probe_failures = Counter::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by kind of error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile took",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes (apply, create, delete, status) made to the Kubernetes API",
            writes.clone(),
        );
        registry.register(
            "member_probe_seconds",
            "Round trip of the X protocol capabilities probe to a member",
            probes.clone(),
        );
        registry.register(
            "member_probe_failures",
            "X protocol probes that got no answer",
            probe_failures.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the operator's lease and acts, 0 while it stands by",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            writes,
            probes,
            probe_failures,
            leader,
        }
    }
}

impl Metrics {
    /// Counts a reconcile that took `elapsed`.
    pub(crate) fn reconciled(&self, elapsed: Duration) {
        self.reconciles.inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a failed reconcile.
    pub(crate) fn failed(&self, error: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: error.to_string(),
            })
            .inc();
    }

    /// Counts API writes.
    pub(crate) fn api_writes(&self, n: u64) {
        self.writes.inc_by(n);
    }

    /// Counts an X protocol probe: its latency, or a failure when it got no answer.
    pub(crate) fn member_probe(&self, latency_seconds: Option<f64>) {
        match latency_seconds {
            Some(l) => self.probes.observe(l),
            None => {
                self.probe_failures.inc();
            }
        }
    }

    /// Says whether this replica leads.
    pub(crate) fn leading(&self, leads: bool) {
        self.leader.set(i64::from(leads));
    }

    /// The text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_counts_failures_and_durations() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(20));
        m.failed("apply");
        m.failed("apply");
        m.api_writes(3);
        m.leading(true);
        let text = m.encode();
        assert!(
            text.contains("innodb_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("innodb_operator_reconcile_failures_total{error=\"apply\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("innodb_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("innodb_operator_api_writes_total 3"),
            "{text}"
        );
        assert!(text.contains("innodb_operator_leader 1"), "{text}");
    }
}
