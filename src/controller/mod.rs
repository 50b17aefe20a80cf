//! The two controllers and what they share: the context, the error type, status writes, Events,
//! back-off and the provider clients built from each hub.

mod api_key;
mod cluster_cache;
mod cluster_hub;
mod credential;
mod failpoint;
mod finalizer;
mod hub_cache;
mod hub_ref;
mod instrumented;
mod memory;
mod model_hub;
mod providers;
mod restart;
mod triggers;
mod unrevoked;
mod wiring;

use std::{sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
    },
};
use serde::Serialize;
use tracing::warn;

pub use api_key::Problem;
pub use failpoint::failpoint;
pub use providers::{DefaultProviderFactory, ProviderFactory};
pub use wiring::{Scope, run};

use crate::metrics::Metrics;
use keysmith_api::{ApiKey, FIELD_MANAGER, reasons::Reason};
use keysmith_core::clock::Clock;

/// Errors that end a reconcile early. Problems the user can fix (a missing hub, a refused
/// credential) are not errors here: they become conditions and Events instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace; both resources are namespaced, so this is a malformed event.
    #[error("object has no namespace")]
    MissingNamespace,
    /// The object has no uid yet.
    #[error("object has no uid")]
    MissingUid,
    /// Reading or writing a Kubernetes object failed.
    #[error("Kubernetes API call failed: {context}")]
    Kube {
        context: &'static str,
        #[source]
        source: kube::Error,
    },
    /// A status could not be serialised.
    #[error("cannot serialise status")]
    Serialize(#[source] serde_json::Error),
    /// Revoking the provider key during deletion failed.
    #[error("cannot revoke the provider key")]
    Revoke(#[source] keysmith_providers::Error),
}

impl Error {
    /// Short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingNamespace | Self::MissingUid => Reason::MalformedObject.as_str(),
            Self::Kube { .. } => Reason::KubernetesApiError.as_str(),
            Self::Serialize(_) => Reason::SerializationError.as_str(),
            Self::Revoke(e) => e.reason(),
        }
    }

    /// Whether a write conditional on the version a reconcile started from was refused because the
    /// object had moved on (409 Conflict).
    /// A conflict (the object changed since it was read) or a 404 (it is gone, as in every namespace
    /// deletion): the next reconcile starts from fresh state, and nobody needs to look.
    pub fn is_routine(&self) -> bool {
        matches!(self, Self::Kube { source: kube::Error::Api(status), .. } if status.code == 409 || status.code == 404)
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube { source: kube::Error::Api(status), .. } if status.code == 409)
    }

    pub(crate) fn kube(context: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self::Kube { context, source }
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Operator settings that reconcilers read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Usage polling interval when a hub does not set one.
    pub default_usage_interval: Duration,
    /// Shortest wait after a transient failure; it doubles per failure up to the usage interval.
    pub error_backoff_base: Duration,
    /// The operator's own namespace, where ClusterModelHubs' credential Secrets live.
    pub cluster_resource_namespace: String,
    /// Only the ClusterModelHubs with these labels (a label selector) are this operator's.
    pub cluster_hub_selector: Option<String>,
    /// keysmith-gateway, for ApiKeys with `delivery: Gateway`; `None` refuses them.
    pub gateway: Option<crate::plan::gateway::GatewaySettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_usage_interval: Duration::from_secs(300),
            error_backoff_base: Duration::from_secs(5),
            cluster_resource_namespace: "keysmith-system".to_owned(),
            cluster_hub_selector: None,
            gateway: None,
        }
    }
}

/// Everything a reconcile needs.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Builds (and caches, one per hub) provider clients.
    pub providers: providers::ProviderCache,
    /// Settings.
    pub settings: Settings,
    /// Metrics served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// "Now" for every decision: real time, shifted only by tests that cross windows and expiries.
    pub clock: Clock,
    /// What is remembered about each object between reconciles.
    memory: memory::ObjectMemory,
    /// The hubs, as the ApiKey controller's watches hold them.
    hubs: hub_cache::HubCache,
    /// ClusterModelHubs, Namespaces and every scope's ApiKeys.
    cluster: cluster_cache::ClusterCache,
    /// The usage keysmith-gateway last reported.
    gateway_usage: api_key::UsageCache,
}

impl Context {
    /// A context with the given provider factory.
    pub fn new(
        client: Client,
        factory: Arc<dyn ProviderFactory>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Self::with_clock(client, factory, settings, metrics, Clock::new())
    }

    /// The same, deciding with `clock` (tests share it with their simulators).
    pub fn with_clock(
        client: Client,
        factory: Arc<dyn ProviderFactory>,
        settings: Settings,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: "keysmith".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            providers: providers::ProviderCache::new(factory, metrics.clone()),
            metrics,
            client,
            settings,
            clock,
            memory: memory::ObjectMemory::default(),
            hubs: hub_cache::HubCache::default(),
            cluster: cluster_cache::ClusterCache::default(),
            gateway_usage: api_key::UsageCache::default(),
        })
    }

    /// Current time as a Kubernetes timestamp.
    pub fn now(&self) -> Time {
        Time(self.clock.now())
    }

    /// Records a failure for `uid` and returns how long to wait: doubling from the base, capped at
    /// `cap` (the healthy polling interval), with jitter, so a broken object never polls faster than a
    /// healthy one does once its back-off has grown.
    pub fn backoff(&self, uid: &str, cap: Duration) -> Duration {
        let n = self.memory.failed(uid);
        let base = self.settings.error_backoff_base.as_secs_f64() * 2f64.powi(n.min(20) as i32 - 1);
        let capped = base.min(cap.as_secs_f64()).max(1.0);
        crate::plan::jittered(capped.round() as u64, rand::random::<f64>())
    }

    /// How long until `uid` is due, if its inputs are unchanged since the last reconcile and it is not
    /// due yet.
    pub fn not_due(&self, uid: &str, inputs: &str) -> Option<Duration> {
        self.memory.not_due(uid, inputs)
    }

    /// Records the inputs of a finished reconcile and when the next one is due.
    pub fn remember(&self, uid: &str, inputs: String, delay: Duration) {
        self.memory.remember(uid, inputs, delay);
    }

    /// Makes `uid` due now: something it reads changed that its inputs do not show (an import
    /// Secret's value).
    pub fn make_due(&self, uid: &str) {
        self.memory.make_due(uid);
    }

    /// Forgets everything about a deleted object.
    pub fn forget(&self, uid: &str) {
        self.memory.forget(uid);
    }

    /// Records that the reconcile of `uid` in progress wrote the object, producing `version`.
    pub fn wrote(&self, uid: &str, version: Option<String>) {
        if let Some(version) = version {
            self.memory.wrote(uid, &version);
        }
    }

    /// Whether this watch event of `key` brings a version keysmith wrote itself (it is then no longer
    /// awaited). Such an event changes nothing the reconcile that wrote it did not already know.
    pub fn is_echo(&self, key: &ApiKey) -> bool {
        match (key.uid(), key.resource_version()) {
            (Some(uid), Some(version)) => self.memory.take_echo(&uid, &version),
            _ => false,
        }
    }

    /// Records that keysmith wrote the Secret of `uid`, producing `version`.
    pub fn wrote_secret(&self, uid: &str, version: Option<String>) {
        self.memory.wrote_secret(uid, version);
    }

    /// Records the version of the Secret of `uid` a read or the Secret watch showed (`None`: gone).
    pub fn saw_secret(&self, uid: &str, version: Option<&str>) {
        self.memory.saw_secret(uid, version);
    }

    /// The newest version of the Secret of `uid` keysmith knows of.
    pub fn secret_seen(&self, uid: &str) -> Option<String> {
        self.memory.secret_seen(uid)
    }

    /// The version of the Secret of `uid` that keysmith last wrote, if it wrote one since it started.
    pub fn secret_written(&self, uid: &str) -> Option<String> {
        self.memory.secret_written(uid)
    }

    /// Ends the bookkeeping of a reconcile of `uid` that started from `version`: the version it
    /// started from and all but its last write are superseded.
    pub fn settle_writes(&self, uid: &str, version: Option<&str>) {
        self.memory.settle_writes(uid, version);
    }

    /// Whether `version` of `uid` is one its last reconcile already wrote over.
    pub fn is_superseded(&self, uid: &str, version: Option<&str>) -> bool {
        self.memory.is_superseded(uid, version)
    }

    /// Writes an ApiKey's status under keysmith's field manager, refused with a conflict unless the
    /// object is still at `at` when that is given, and notes the version it produced.
    pub(crate) async fn write_key_status(
        &self,
        api: &Api<ApiKey>,
        key: &ApiKey,
        at: Option<String>,
        status: &keysmith_api::ApiKeyStatus,
    ) -> Result<()> {
        let version = write_status(api, &key.name_any(), at, status).await?;
        self.wrote(&key.uid().unwrap_or_default(), version);
        Ok(())
    }

    /// Forgets the failures of `uid` after a success.
    pub fn succeeded(&self, uid: &str) {
        self.memory.succeeded(uid);
    }

    /// Publishes an Event about `obj`; failures to publish are logged, never fatal. `reason` is a
    /// [`Reason`]'s wire string, or a condition's reason being announced.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, 1000)),
            action: action.into(),
            secondary: None,
        };
        match self.recorder.publish(&event, &obj.object_ref(&())).await {
            Ok(()) => {}
            // The namespace is being deleted (the API server refuses new objects in it) or is gone:
            // expected while a namespace goes, and nobody would see the Event anyway.
            Err(kube::Error::Api(status))
                if status.code == 404 || status.message.contains("being terminated") =>
            {
                tracing::debug!(reason, "Event not published: its namespace is going");
            }
            Err(err) => warn!(error = %err, reason, "cannot publish Event"),
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Writes `status` with server-side apply under keysmith's field manager.
pub(crate) async fn patch_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    write_status(api, name, None, status).await.map(drop)
}

/// Writes `status` with server-side apply under keysmith's field manager, refused with a conflict
/// unless the object is still at `resource_version` when that is given: a decision made from a stale
/// cache (which may lack a marker written just before an outage) never reaches the provider. Returns
/// the version written.
async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<String>,
    status: &S,
) -> Result<Option<String>>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let mut body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": serde_json::to_value(status).map_err(Error::Serialize)?,
    });
    if let Some(rv) = resource_version {
        body["metadata"] = serde_json::json!({"resourceVersion": rv});
    }
    let written = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(Error::kube("patch status"))?;
    Ok(written.meta().resource_version.clone())
}

/// Reads `name` from the API server's watch cache (`resourceVersion=0`) instead of etcd: cheaper, and
/// never older than a watch event the caller has already seen. `None` when it does not exist.
pub(crate) async fn get_cached<K>(api: &Api<K>, name: &str) -> kube::Result<Option<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_with(name, &kube::api::GetParams::any()).await {
        Ok(obj) => Ok(Some(obj)),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// How soon a reconcile that met a newer or deleted object looks again.
pub(crate) const ROUTINE_RETRY: Duration = Duration::from_secs(1);

/// Logs a failed reconcile: WARN, unless it is routine (see [`Error::is_routine`]).
pub(crate) fn log_failure(kind: &str, name: &str, err: &Error) {
    if err.is_routine() {
        tracing::debug!(error = %err, reason = err.reason(), name, "{kind} reconcile met a newer or deleted object");
    } else {
        warn!(error = %err, reason = err.reason(), name, "{kind} reconcile failed");
    }
}

/// Requeue action after `d`.
pub(crate) fn requeue(d: Duration) -> Action {
    Action::requeue(d)
}
