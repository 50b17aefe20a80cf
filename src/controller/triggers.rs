//! The watch streams that start ApiKey reconciles, and what they leave out. At ten thousand keys
//! most watch events are keysmith's own writes coming back; each one reconciled costs reads for
//! nothing, and each object cached with its `managedFields` costs memory for nothing.
//!
//! Each watch backs off on its own after an error. The controller's shared pause is switched off
//! ([`NoPause`]): it would hold every watch, the ApiKeys' own included, for the error of any one, and
//! after an apiserver restart each watch brings errors of its own, so those pauses added up to
//! minutes in which no new ApiKey was seen.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, future::ready};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{Store, store::Writer},
        utils::Backoff,
        watcher,
        watcher::Event,
    },
};

use super::Context;
use k8s_openapi::api::core::v1::Namespace;
use keysmith_api::well_known::{CREDENTIAL_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use keysmith_api::{ApiKey, ClusterModelHub, ModelHub};

/// Written by `kubectl apply` (client side): a copy of the whole object, which no reconcile reads.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no reconcile reads before an ApiKey enters the cache: the field-manager bookkeeping
/// (often the larger part of a small object) and the client-side apply copy.
pub(super) fn prune(key: &mut ApiKey) {
    key.metadata.managed_fields = None;
    if let Some(annotations) = key.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The ApiKeys to reconcile, cached through `writer` as they pass: every change except those keysmith
/// wrote itself (the reconcile that wrote one has already planned the next). Lists are read in pages
/// (a consistent list, not `resourceVersion=0`, which the watch cache answers in one response holding
/// every ApiKey). Not a streaming list (`sendInitialEvents`) either: with one, a CI run whose apiserver
/// restarted never took in the ApiKeys created meanwhile, which paged lists have not shown.
pub(super) fn api_keys(
    api: Api<ApiKey>,
    writer: Writer<ApiKey>,
    ctx: Arc<Context>,
) -> impl Stream<Item = Result<ApiKey, watcher::Error>> + Send {
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(prune);
    reconcilable(events, writer, move |key| !ctx.is_echo(key))
}

/// The ModelHubs to reconcile, cached through `writer`.
pub(super) fn model_hubs(
    api: Api<ModelHub>,
    writer: Writer<ModelHub>,
) -> impl Stream<Item = Result<ModelHub, watcher::Error>> + Send {
    let events = watcher(api, watcher::Config::default()).default_backoff();
    reconcilable(events, writer, |_| true)
}

/// A controller's own objects: cached through `writer`, and passed on to be reconciled when `wanted`
/// says so. A (re)list passes every object on once it is complete, never object by object: until
/// then the cache still shows the previous list, and a reconcile started for an object it does not
/// hold yet is dropped, not retried. An ApiKey created while the watch was down would then never be
/// reconciled.
fn reconcilable<K>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    writer: Writer<K>,
    mut wanted: impl FnMut(&K) -> bool + Send,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let store = writer.as_reader();
    events.reflect(writer).flat_map(move |event| {
        let batch: Box<dyn Iterator<Item = Result<K, watcher::Error>> + Send> = match event {
            Ok(Event::Apply(obj)) if wanted(&obj) => Box::new(std::iter::once(Ok(obj))),
            // The cache has just swapped in the new list (the event passed `reflect` first).
            Ok(Event::InitDone) => Box::new(store.state().into_iter().map(|obj| Ok(K::clone(&obj)))),
            // Deleted objects have nothing left to reconcile (an ApiKey's finalizer ran before).
            Ok(Event::Apply(_) | Event::Delete(_) | Event::Init | Event::InitApply(_)) => {
                Box::new(std::iter::empty())
            }
            Err(err) => Box::new(std::iter::once(Err(err))),
        };
        futures::stream::iter(batch)
    })
}

/// Changes to the Secrets keysmith manages (metadata only: values are never cached), except
/// keysmith's own writes. A deletion always counts.
pub(super) fn secrets(
    api: Api<PartialObjectMeta<Secret>>,
    ctx: Arc<Context>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send {
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let seen = ctx.clone();
    // Every version passing by is remembered, so a reconcile knows whether the Secret changed
    // without asking the API server.
    let events = watcher(api, config).default_backoff().inspect(move |event| {
        let (secret, gone) = match event {
            Ok(Event::Apply(s) | Event::InitApply(s)) => (s, false),
            Ok(Event::Delete(s)) => (s, true),
            _ => return,
        };
        if let Some(owner) = secret
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "ApiKey")
        {
            let version = secret.metadata.resource_version.as_deref().filter(|_| !gone);
            seen.saw_secret(&owner.uid, version);
        }
    });
    changes(events, move |secret| {
        let owner = secret
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "ApiKey");
        owner.is_none_or(|o| {
            ctx.secret_written(&o.uid).as_deref() != secret.metadata.resource_version.as_deref()
        })
    })
}

/// Hub changes that matter to its ApiKeys, cached through `writer` (the ApiKey reconciles read their
/// hub from that cache): its spec, and whether (and why) it is Ready. A hub's status also carries
/// account figures and key counts, refreshed on its own schedule; waking every key of the hub for
/// those would reconcile ten thousand keys to learn nothing. Like [`reconcilable`], a (re)list
/// passes its changes on only once the cache holds the whole list, so a woken ApiKey reads the hub
/// that woke it.
pub(super) fn hubs(
    api: Api<ModelHub>,
    writer: Writer<ModelHub>,
) -> impl Stream<Item = Result<ModelHub, watcher::Error>> + Send {
    let store = writer.as_reader();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut changed = move |hub: &ModelHub| {
        let inputs = super::api_key::hub_inputs(hub);
        seen.insert(hub.uid().unwrap_or_default(), inputs.clone()) != Some(inputs)
    };
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .flat_map(move |event| {
            let batch: Vec<Result<ModelHub, watcher::Error>> = match event {
                Ok(Event::Apply(hub)) => changed(&hub).then_some(Ok(hub)).into_iter().collect(),
                Ok(Event::Delete(hub)) => vec![Ok(hub)],
                Ok(Event::InitDone) => store
                    .state()
                    .into_iter()
                    .filter(|hub| changed(hub))
                    .map(|hub| Ok(ModelHub::clone(&hub)))
                    .collect(),
                Ok(Event::Init | Event::InitApply(_)) => Vec::new(),
                Err(err) => vec![Err(err)],
            };
            futures::stream::iter(batch)
        })
}

/// The ClusterModelHubs to reconcile, cached through `writer` (the ApiKey reconciles read them from
/// that cache). A change to a hub's spec or readiness also wakes the ApiKeys that use it, in every
/// scope, once the cache holds it.
pub(super) fn cluster_hubs(
    api: Api<ClusterModelHub>,
    selector: Option<String>,
    writer: Writer<ClusterModelHub>,
    ctx: Arc<Context>,
) -> impl Stream<Item = Result<ClusterModelHub, watcher::Error>> + Send {
    let mut seen: HashMap<String, String> = HashMap::new();
    let config = match selector {
        Some(labels) => watcher::Config::default().labels(&labels),
        None => watcher::Config::default(),
    };
    let events = watcher(api, config)
        .default_backoff()
        .modify(|hub| hub.metadata.managed_fields = None);
    let woken = ctx;
    reconcilable(events, writer, |_| true).inspect(move |hub| {
        let Ok(hub) = hub else { return };
        let standing = super::hub_ref::as_model_hub(hub, &woken.settings.cluster_resource_namespace);
        let inputs = format!("{}|{:?}", super::api_key::hub_inputs(&standing), hub.spec);
        if seen.insert(hub.uid().unwrap_or_default(), inputs.clone()) != Some(inputs) {
            let name = hub.name_any();
            woken.cluster.wake(
                &woken
                    .cluster
                    .keys(|k| k.spec.hub_ref.is_cluster() && k.spec.hub_ref.name == name),
            );
        }
    })
}

/// Namespaces, cached through `writer` (metadata only) for the ClusterModelHubs' `allowedNamespaces`. A
/// change of a namespace's labels wakes its ApiKeys that use a ClusterModelHub, and the hubs.
pub(super) async fn namespaces(
    api: Api<PartialObjectMeta<Namespace>>,
    writer: Writer<PartialObjectMeta<Namespace>>,
    ctx: Arc<Context>,
) {
    let mut seen: HashMap<String, std::collections::BTreeMap<String, String>> = HashMap::new();
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|ns| ns.metadata.managed_fields = None)
        .reflect(writer)
        .for_each(|event| {
            if let Ok(Event::Apply(ns) | Event::InitApply(ns)) = &event {
                let name = ns.name_any();
                let labels = ns.labels().clone();
                if let Some(before) = seen.insert(name.clone(), labels.clone())
                    && before != labels
                {
                    let keys = ctx.cluster.keys(|k| {
                        k.namespace().as_deref() == Some(name.as_str()) && k.spec.hub_ref.is_cluster()
                    });
                    let hubs: std::collections::BTreeSet<String> =
                        keys.iter().map(|k| k.spec.hub_ref.name.clone()).collect();
                    ctx.cluster.wake(&keys);
                    for hub in hubs {
                        ctx.cluster.wake_hub(&hub);
                    }
                }
            }
            ready(())
        })
        .await;
}

/// Changes to the credential Secrets keysmith protects (metadata only), for the hubs that use them.
pub(super) fn credentials(
    api: Api<PartialObjectMeta<Secret>>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send {
    let config = watcher::Config::default().labels(&format!("{CREDENTIAL_LABEL}=true"));
    let mut versions: HashMap<(Option<String>, String), Option<String>> = HashMap::new();
    changes(watcher(api, config).default_backoff(), move |secret| {
        // Only a new version: a relist brings every Secret again.
        let at = (secret.namespace(), secret.name_any());
        versions.insert(at, secret.resource_version()) != Some(secret.resource_version())
    })
}

/// Changes to the Secrets that ApiKeys import (metadata only, nothing cached beyond their versions),
/// so that a new value reaches the workload in seconds, not at the next poll. The watch covers the
/// Secrets keysmith does not manage; most are imported by nobody and cost one scan of the ApiKey
/// cache. A (re)list only records versions: the ApiKeys read their import Secret when they start.
pub(super) fn import_secrets(
    api: Api<PartialObjectMeta<Secret>>,
    keys: Store<ApiKey>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send {
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}!={MANAGED_BY}"));
    let mut seen = ImportVersions::default();
    let imported = move |secret: &PartialObjectMeta<Secret>| !importers_of(&keys, secret).is_empty();
    watcher(api, config).default_backoff().filter_map(move |event| {
        ready(match event {
            Ok(Event::Apply(s)) => seen.changed(&s, imported(&s), true).then_some(Ok(s)),
            Ok(Event::InitApply(s)) => seen.changed(&s, imported(&s), false).then_some(Ok(s)),
            Ok(Event::Delete(s)) => {
                seen.changed(&s, false, false);
                imported(&s).then_some(Ok(s))
            }
            Ok(Event::Init | Event::InitDone) => None,
            Err(err) => Some(Err(err)),
        })
    })
}

/// The ApiKeys in `keys` that import `secret`.
pub(super) fn importers_of(keys: &Store<ApiKey>, secret: &PartialObjectMeta<Secret>) -> Vec<Arc<ApiKey>> {
    let (ns, name) = (secret.namespace(), secret.name_any());
    keys.state()
        .into_iter()
        .filter(|k| k.namespace() == ns && k.spec.import.as_ref().is_some_and(|i| i.secret_ref.name == name))
        .collect()
}

/// The versions of imported Secrets last seen, to tell a change from a relist.
#[derive(Debug, Default)]
struct ImportVersions(HashMap<(Option<String>, String), Option<String>>);

impl ImportVersions {
    /// Whether the Secret is new or changed since last seen and `live` (not a relist). Secrets nobody
    /// imports are forgotten, so the map holds imported Secrets only.
    fn changed(&mut self, secret: &PartialObjectMeta<Secret>, imported: bool, live: bool) -> bool {
        let at = (secret.namespace(), secret.name_any());
        if !imported {
            self.0.remove(&at);
            return false;
        }
        let version = secret.resource_version();
        let before = self.0.insert(at, version.clone());
        live && before != Some(version)
    }
}

/// The controller's pause after an error from any of its watches: none, as each watch keeps its own.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NoPause;

impl Iterator for NoPause {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl Backoff for NoPause {
    fn reset(&mut self) {}
}

/// The objects of a watch that should trigger: deletions always, additions and changes when
/// `wanted` says so.
fn changes<K: Send>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    mut wanted: impl FnMut(&K) -> bool + Send,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send {
    events.filter_map(move |event| {
        ready(match event {
            Ok(Event::Delete(obj)) => Some(Ok(obj)),
            Ok(Event::Apply(obj) | Event::InitApply(obj)) => wanted(&obj).then_some(Ok(obj)),
            Ok(Event::Init | Event::InitDone) => None,
            Err(err) => Some(Err(err)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_imported_secret_counts_as_changed_when_a_live_event_brings_a_new_version() {
        let mut seen = ImportVersions::default();
        let secret = |ns: &str, name: &str, version: &str| {
            let mut s = PartialObjectMeta::<Secret>::default();
            s.metadata.namespace = Some(ns.into());
            s.metadata.name = Some(name.into());
            s.metadata.resource_version = Some(version.into());
            s
        };
        assert!(
            !seen.changed(&secret("t", "src", "1"), true, false),
            "the initial list"
        );
        assert!(
            !seen.changed(&secret("t", "src", "1"), true, true),
            "the same version"
        );
        assert!(seen.changed(&secret("t", "src", "2"), true, true), "a new value");
        assert!(
            !seen.changed(&secret("t", "src", "3"), true, false),
            "a relist records only"
        );
        assert!(
            !seen.changed(&secret("t", "other", "9"), false, true),
            "imported by nobody"
        );
        assert!(
            seen.changed(&secret("b", "src", "5"), true, true),
            "first seen live"
        );
        assert!(
            !seen.changed(&secret("t", "src", "6"), false, true),
            "no longer imported"
        );
        assert_eq!(seen.0.len(), 1, "only imported Secrets are remembered");
    }

    #[test]
    fn pruning_keeps_what_reconciles_read() {
        let mut key: ApiKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "keysmith.dev/v1alpha1", "kind": "ApiKey",
            "metadata": {
                "name": "k", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "finalizers": ["apikeys.keysmith.dev/cleanup"],
                "annotations": {LAST_APPLIED: "{}", "keysmith.dev/rotate": "1"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"hubRef": {"name": "hub"}},
        }))
        .unwrap();
        prune(&mut key);
        assert!(key.metadata.managed_fields.is_none());
        assert_eq!(key.annotations().len(), 1);
        assert_eq!(key.annotations()["keysmith.dev/rotate"], "1");
        assert_eq!(key.finalizers(), ["apikeys.keysmith.dev/cleanup"]);
        assert_eq!(key.resource_version().as_deref(), Some("7"));
    }
}
