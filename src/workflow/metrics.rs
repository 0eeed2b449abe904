//! The runner's counters, rendered as Prometheus text on `/metrics`.
//!
//! Plain atomics behind one shared struct: the runner is one process with one loop, and the
//! numbers an operator needs (passes, actions by kind, API errors, pending CHGs, outbox depth)
//! do not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges of one runner.
#[derive(Debug, Default)]
pub struct Metrics {
    passes: AtomicU64,
    pass_failures: AtomicU64,
    last_pass_ms: AtomicU64,
    pending_changes: AtomicU64,
    outbox_depth: AtomicU64,
    wakeups: AtomicU64,
    actions: Mutex<BTreeMap<(String, String), u64>>,
    api_errors: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// A finished pass and how long it took.
    pub fn pass(&self, millis: u64, ok: bool) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.pass_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.last_pass_ms.store(millis, Ordering::Relaxed);
    }

    /// One action, by kind and outcome (`done`, `skipped`, `blocked`, `failed`).
    pub fn action(&self, kind: &str, outcome: &str) {
        if let Ok(mut map) = self.actions.lock() {
            *map.entry((kind.to_owned(), outcome.to_owned())).or_default() += 1;
        }
    }

    /// An API call that failed for good, by API (`bytebase`, `servicenow`).
    pub fn api_error(&self, api: &str) {
        if let Ok(mut map) = self.api_errors.lock() {
            *map.entry(api.to_owned()).or_default() += 1;
        }
    }

    /// Issues waiting for the CAB after the last pass.
    pub fn set_pending_changes(&self, n: u64) {
        self.pending_changes.store(n, Ordering::Relaxed);
    }

    /// Alerts not yet delivered to every sink.
    pub fn set_outbox_depth(&self, n: u64) {
        self.outbox_depth.store(n, Ordering::Relaxed);
    }

    /// A webhook woke the loop.
    pub fn wakeup(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }

    /// Total passes so far.
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        gauge(
            "cabgate_passes_total",
            "counter",
            "Passes run.",
            self.passes.load(Ordering::Relaxed),
        );
        gauge(
            "cabgate_pass_failures_total",
            "counter",
            "Passes that ended on an API failure.",
            self.pass_failures.load(Ordering::Relaxed),
        );
        gauge(
            "cabgate_last_pass_milliseconds",
            "gauge",
            "Wall time of the last pass.",
            self.last_pass_ms.load(Ordering::Relaxed),
        );
        gauge(
            "cabgate_pending_changes",
            "gauge",
            "Issues whose CHG waits for the CAB.",
            self.pending_changes.load(Ordering::Relaxed),
        );
        gauge(
            "cabgate_outbox_depth",
            "gauge",
            "Alerts not yet delivered to every sink.",
            self.outbox_depth.load(Ordering::Relaxed),
        );
        gauge(
            "cabgate_wakeups_total",
            "counter",
            "Webhooks that woke the loop early.",
            self.wakeups.load(Ordering::Relaxed),
        );
        out.push_str("# HELP cabgate_actions_total Actions taken, by kind and outcome.\n");
        out.push_str("# TYPE cabgate_actions_total counter\n");
        if let Ok(map) = self.actions.lock() {
            for ((kind, outcome), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "cabgate_actions_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP cabgate_api_errors_total API calls that failed after retries.\n");
        out.push_str("# TYPE cabgate_api_errors_total counter\n");
        if let Ok(map) = self.api_errors.lock() {
            for (api, n) in map.iter() {
                let _ = writeln!(out, "cabgate_api_errors_total{{api=\"{api}\"}} {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.pass(12, true);
        m.action("approve_issue", "done");
        m.api_error("servicenow");
        m.set_outbox_depth(2);
        let text = m.render();
        assert!(text.contains("cabgate_passes_total 1\n"));
        assert!(text.contains("cabgate_actions_total{kind=\"approve_issue\",outcome=\"done\"} 1"));
        assert!(text.contains("cabgate_api_errors_total{api=\"servicenow\"} 1"));
        assert!(text.contains("cabgate_outbox_depth 2\n"));
    }
}
