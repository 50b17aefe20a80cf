//! Prometheus metrics. Label values come from bounded sets: controller names, static reasons,
//! provider operations, and one series per ApiKey (removed when the ApiKey goes). Key values and
//! error texts never become labels.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::Instant,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Labels of reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `apikey` or `modelhub`.
    pub controller: &'static str,
}

/// Labels of reconcile errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `apikey` or `modelhub`.
    pub controller: &'static str,
    /// Static reason (a condition reason or an error variant).
    pub reason: &'static str,
}

/// Labels of provider calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// e.g. `openrouter`.
    pub provider: &'static str,
    /// e.g. `create_key`.
    pub operation: &'static str,
    /// `ok` or a static error reason such as `RateLimited`.
    pub outcome: &'static str,
}

/// Labels of per-ApiKey gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    /// Namespace of the ApiKey.
    pub namespace: String,
    /// Name of the ApiKey.
    pub name: String,
}

/// Labels of a ClusterModelHub's per-namespace gauges, and of unrevoked keys (any hub).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HubNamespaceLabels {
    /// Name of the hub.
    pub hub: String,
    /// The namespace using it.
    pub namespace: String,
}

/// Labels of refused keys.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Name of the ClusterModelHub.
    pub hub: String,
    /// The namespace using it.
    pub namespace: String,
    /// `HubNotAllowed` or `QuotaExceeded`.
    pub reason: &'static str,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Every metric keysmith exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    provider_calls: Family<ProviderLabels, Counter>,
    provider_duration: Family<ProviderLabels, Histogram>,
    key_spend: Family<KeyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    key_budget: Family<KeyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    key_limit_exceeded: Family<KeyLabels, Gauge>,
    key_ready: Family<KeyLabels, Gauge>,
    key_expiry: Family<KeyLabels, Gauge>,
    hub_keys: Family<HubNamespaceLabels, Gauge>,
    hub_allocated: Family<HubNamespaceLabels, FloatGauge>,
    hub_spend: Family<HubNamespaceLabels, FloatGauge>,
    hub_refused: Family<RefusalLabels, Gauge>,
    unrevoked: Family<HubNamespaceLabels, Counter>,
    /// The namespaces each hub has series for, so that series of namespaces that left go too.
    hub_namespaces: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keysmith");
        let seconds = || Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(seconds),
            provider_calls: Family::default(),
            provider_duration: Family::new_with_constructor(seconds),
            key_spend: Family::default(),
            key_budget: Family::default(),
            key_limit_exceeded: Family::default(),
            key_ready: Family::default(),
            key_expiry: Family::default(),
            hub_keys: Family::default(),
            hub_allocated: Family::default(),
            hub_spend: Family::default(),
            hub_refused: Family::default(),
            unrevoked: Family::default(),
            hub_namespaces: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles run, per controller",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that ended in a problem or error, per controller and reason",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles, per controller",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "provider_requests",
            "Provider API operations, per provider, operation and outcome (retries included in one operation)",
            metrics.provider_calls.clone(),
        );
        registry.register(
            "provider_request_duration_seconds",
            "Duration of provider API operations",
            metrics.provider_duration.clone(),
        );
        registry.register(
            "apikey_spend_usd",
            "Spend in the budget's current window, per ApiKey",
            metrics.key_spend.clone(),
        );
        registry.register(
            "apikey_budget_usd",
            "Budget in force, per ApiKey",
            metrics.key_budget.clone(),
        );
        registry.register(
            "apikey_limit_exceeded",
            "1 when usage reached an enforced limit, per ApiKey",
            metrics.key_limit_exceeded.clone(),
        );
        registry.register(
            "apikey_ready",
            "1 when the ApiKey is Ready",
            metrics.key_ready.clone(),
        );
        registry.register(
            "apikey_expiry_timestamp_seconds",
            "Expiry of the key in force (Unix seconds), per ApiKey",
            metrics.key_expiry.clone(),
        );
        registry.register(
            "clustermodelhub_namespace_keys",
            "ApiKeys admitted on a ClusterModelHub, per hub and namespace",
            metrics.hub_keys.clone(),
        );
        registry.register(
            "clustermodelhub_namespace_allocated_budget_usd",
            "Sum of the admitted ApiKeys' budgets, per ClusterModelHub and namespace",
            metrics.hub_allocated.clone(),
        );
        registry.register(
            "clustermodelhub_namespace_spend_usd",
            "Spend of the admitted ApiKeys, per ClusterModelHub and namespace",
            metrics.hub_spend.clone(),
        );
        registry.register(
            "clustermodelhub_namespace_refused_keys",
            "ApiKeys refused, per ClusterModelHub, namespace and reason",
            metrics.hub_refused.clone(),
        );
        registry.register(
            "unrevoked_provider_keys",
            "Provider keys left live because their ApiKey was deleted while the hub's credential was missing, per hub and ApiKey namespace",
            metrics.unrevoked.clone(),
        );
        Self { registry, ..metrics }
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: self.controller,
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// What the per-ApiKey gauges show.
#[derive(Debug, Default)]
pub struct KeyFigures {
    /// Spend in the current window.
    pub spend_usd: Option<f64>,
    /// Budget in force.
    pub budget_usd: Option<f64>,
    /// Whether an enforced limit is reached.
    pub limit_exceeded: bool,
    /// Whether the key is Ready.
    pub ready: bool,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

impl Metrics {
    /// Counts a reconcile and times it until the returned guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            metrics: self,
            controller,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_error(&self, controller: &'static str, reason: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { controller, reason })
            .inc();
    }

    /// Records one provider operation.
    pub fn provider_call(&self, labels: ProviderLabels, seconds: f64) {
        self.provider_calls.get_or_create(&labels).inc();
        self.provider_duration.get_or_create(&labels).observe(seconds);
    }

    /// Sets the gauges of one ApiKey.
    pub fn set_key(&self, namespace: &str, name: &str, figures: &KeyFigures) {
        let labels = KeyLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        match figures.spend_usd {
            Some(v) => {
                self.key_spend.get_or_create(&labels).set(v);
            }
            None => {
                self.key_spend.remove(&labels);
            }
        }
        match figures.budget_usd {
            Some(v) => {
                self.key_budget.get_or_create(&labels).set(v);
            }
            None => {
                self.key_budget.remove(&labels);
            }
        }
        match figures.expires_at {
            Some(v) => {
                self.key_expiry.get_or_create(&labels).set(v);
            }
            None => {
                self.key_expiry.remove(&labels);
            }
        }
        self.key_limit_exceeded
            .get_or_create(&labels)
            .set(i64::from(figures.limit_exceeded));
        self.key_ready
            .get_or_create(&labels)
            .set(i64::from(figures.ready));
    }

    /// Drops the series of a deleted ApiKey, so label sets stay bounded by live objects.
    pub fn forget_key(&self, namespace: &str, name: &str) {
        let labels = KeyLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.key_spend.remove(&labels);
        self.key_budget.remove(&labels);
        self.key_limit_exceeded.remove(&labels);
        self.key_ready.remove(&labels);
        self.key_expiry.remove(&labels);
    }

    /// Counts `n` provider keys an ApiKey in `namespace` left unrevoked on hub `hub`.
    pub fn unrevoked_keys(&self, namespace: &str, hub: &str, n: usize) {
        let labels = HubNamespaceLabels {
            hub: hub.to_owned(),
            namespace: namespace.to_owned(),
        };
        self.unrevoked
            .get_or_create(&labels)
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Sets the gauges of every namespace using ClusterModelHub `hub`, and drops those of namespaces
    /// no longer in `figures`.
    pub fn set_hub_namespaces(&self, hub: &str, figures: &[keysmith_api::NamespaceFigures]) {
        let now: BTreeSet<String> = figures.iter().map(|f| f.name.clone()).collect();
        let gone = {
            let mut known = self.hub_namespaces.lock().unwrap_or_else(|p| p.into_inner());
            let before = known.insert(hub.to_owned(), now.clone()).unwrap_or_default();
            before.difference(&now).cloned().collect::<Vec<_>>()
        };
        for ns in gone {
            self.forget_hub_namespace(hub, &ns);
        }
        for f in figures {
            let labels = HubNamespaceLabels {
                hub: hub.to_owned(),
                namespace: f.name.clone(),
            };
            self.hub_keys.get_or_create(&labels).set(i64::from(f.keys));
            self.hub_allocated
                .get_or_create(&labels)
                .set(f.allocated_budget_usd);
            match f.spend_usd {
                Some(v) => {
                    self.hub_spend.get_or_create(&labels).set(v);
                }
                None => {
                    self.hub_spend.remove(&labels);
                }
            }
            let (reason, other) = if f.allowed {
                ("QuotaExceeded", "HubNotAllowed")
            } else {
                ("HubNotAllowed", "QuotaExceeded")
            };
            let refusal = |reason| RefusalLabels {
                hub: hub.to_owned(),
                namespace: f.name.clone(),
                reason,
            };
            self.hub_refused
                .get_or_create(&refusal(reason))
                .set(i64::from(f.refused));
            self.hub_refused.remove(&refusal(other));
        }
    }

    /// Drops every series of ClusterModelHub `hub` (it was deleted).
    pub fn forget_hub(&self, hub: &str) {
        let known = self
            .hub_namespaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hub)
            .unwrap_or_default();
        for ns in known {
            self.forget_hub_namespace(hub, &ns);
        }
    }

    fn forget_hub_namespace(&self, hub: &str, ns: &str) {
        let labels = HubNamespaceLabels {
            hub: hub.to_owned(),
            namespace: ns.to_owned(),
        };
        self.hub_keys.remove(&labels);
        self.hub_allocated.remove(&labels);
        self.hub_spend.remove(&labels);
        for reason in ["QuotaExceeded", "HubNotAllowed"] {
            self.hub_refused.remove(&RefusalLabels {
                hub: hub.to_owned(),
                namespace: ns.to_owned(),
                reason,
            });
        }
    }

    /// The exposition text for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an error would only mean a bug in a metric's encoder.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_series_appear_and_disappear_with_the_apikey() {
        let metrics = Metrics::default();
        metrics.set_key(
            "team-a",
            "chat",
            &KeyFigures {
                spend_usd: Some(1.5),
                budget_usd: Some(10.0),
                ready: true,
                ..Default::default()
            },
        );
        let text = metrics.encode();
        assert!(
            text.contains(r#"keysmith_apikey_spend_usd{namespace="team-a",name="chat"} 1.5"#),
            "{text}"
        );
        assert!(text.contains(r#"keysmith_apikey_ready{namespace="team-a",name="chat"} 1"#));
        metrics.forget_key("team-a", "chat");
        assert!(!metrics.encode().contains("team-a"));
    }

    #[test]
    fn reconciles_errors_and_provider_calls_are_counted_with_static_labels() {
        let metrics = Metrics::default();
        drop(metrics.reconcile("apikey"));
        metrics.reconcile_error("apikey", "HubNotFound");
        metrics.provider_call(
            ProviderLabels {
                provider: "openrouter",
                operation: "create_key",
                outcome: "ok",
            },
            0.01,
        );
        let text = metrics.encode();
        assert!(
            text.contains(r#"keysmith_reconciles_total{controller="apikey"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keysmith_reconcile_errors_total{controller="apikey",reason="HubNotFound"} 1"#)
        );
        assert!(text.contains(
            r#"keysmith_provider_requests_total{provider="openrouter",operation="create_key",outcome="ok"} 1"#
        ));
        assert!(text.contains("keysmith_reconcile_duration_seconds_count{controller=\"apikey\"} 1"));
    }
}
