//! Wiring the controllers: which watches feed which reconcile, in which scope, and when the process
//! counts as ready. The reconciles themselves live in their own modules.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use keysmith_api::{ApiKey, ClusterModelHub, ModelHub};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller,
        reflector::{self, ObjectRef, Store},
    },
};
use tracing::{info, warn};

use super::{Context, Error, api_key, cluster_hub, model_hub, triggers};

/// Which namespaces the controllers watch.
#[derive(Clone, Debug, Default)]
pub enum Scope {
    /// Every namespace.
    #[default]
    All,
    /// These namespaces only (one pair of controllers each).
    Namespaces(Vec<String>),
}

fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        None => Api::all(client.clone()),
        Some(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// Runs both controllers until `shutdown` resolves. `ready` is called once every watch has listed
/// its objects, so `/readyz` reports a warm cache rather than a started process.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce() + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let namespaces: Vec<Option<String>> = match scope {
        Scope::All => vec![None],
        Scope::Namespaces(list) => list.into_iter().map(Some).collect(),
    };
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    let (cluster_run, ns_run, cluster_stores) = cluster_controllers(&ctx, concurrency, &stop_rx);
    runs.push(cluster_run);
    for ns in &namespaces {
        let (keys, hubs, key_store, hub_store) = controllers(&ctx, ns.as_deref(), concurrency, &stop_rx);
        runs.push(keys);
        runs.push(hubs);
        stores.push((key_store, hub_store));
    }
    tokio::spawn(async move {
        let (cluster_hubs, namespaces) = cluster_stores;
        if !synced(&cluster_hubs).await || !synced(&namespaces).await {
            return;
        }
        for (keys, hubs) in stores {
            if !synced(&keys).await || !synced(&hubs).await {
                return;
            }
        }
        info!("caches synced");
        ready();
    });
    let trigger = async move {
        shutdown.await;
        info!("stopping controllers");
        let _ = stop_tx.send(true);
    };
    // The Namespace watch ends with the process, not with the controllers: it only feeds a cache.
    tokio::select! {
        _ = async { tokio::join!(futures::future::join_all(runs), trigger) } => {}
        () = ns_run => {}
    }
}

/// The ClusterModelHub controller and the Namespace watch: one each, cluster-wide, whatever the scope
/// of the ApiKey controllers.
fn cluster_controllers(
    ctx: &Arc<Context>,
    concurrency: u16,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> (BoxedRun, BoxedRun, ClusterStores) {
    let client = ctx.client.clone();
    let (ns_store, ns_writer) = reflector::store();
    ctx.cluster.set_namespaces(ns_store.clone());
    let ns_run = triggers::namespaces(Api::all(client.clone()), ns_writer, ctx.clone());

    let (hub_store, hub_writer) = reflector::store();
    ctx.cluster.set_hubs(hub_store.clone());
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    ctx.cluster.set_hub_waker(wake_tx);
    let config = kube::runtime::controller::Config::default().concurrency(concurrency);
    let mapper_store = hub_store.clone();
    let mapper_ctx = ctx.clone();
    let mut stop = stop_rx.clone();
    let run = Controller::for_stream(
        triggers::cluster_hubs(
            Api::all(client.clone()),
            ctx.settings.cluster_hub_selector.clone(),
            hub_writer,
            ctx.clone(),
        ),
        hub_store.clone(),
    )
    .with_config(config)
    .trigger_backoff(triggers::NoPause)
    .watches_stream(
        triggers::credentials(Api::namespaced(client, &ctx.settings.cluster_resource_namespace)),
        move |secret| {
            let name = secret.name_any();
            mapper_store
                .state()
                .into_iter()
                .filter(|h| {
                    h.spec
                        .hub
                        .credentials_ref
                        .as_ref()
                        .is_some_and(|r| r.name == name)
                })
                .map(|h| {
                    let uid = h.uid().unwrap_or_default();
                    mapper_ctx.providers.forget_credential(&uid);
                    mapper_ctx.cluster.forget_verified(&uid);
                    ObjectRef::from_obj(&*h)
                })
                .collect::<Vec<_>>()
        },
    )
    .reconcile_on(wake_rx)
    .graceful_shutdown_on(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .run(cluster_hub::reconcile, cluster_hub::error_policy, ctx.clone())
    .for_each(|res| async move {
        log_outcome("ClusterModelHub", res);
    });
    (Box::pin(run), Box::pin(ns_run), (hub_store, ns_store))
}

/// Whether `store` has listed its objects (false if its writer went away first).
async fn synced<K>(store: &Store<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    loop {
        // Re-poll on a timer: the readiness signal behind `wait_until_ready` wakes only the most
        // recently registered waiter, and the controller waits on the same store.
        if let Ok(result) = tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready()).await {
            return result.is_ok();
        }
    }
}

type BoxedRun = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The stores of the cluster-wide watches: ClusterModelHubs and Namespaces.
type ClusterStores = (Store<ClusterModelHub>, Store<PartialObjectMeta<Namespace>>);

/// The ApiKey and ModelHub controllers for one namespace (or all), with their stores.
fn controllers(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    concurrency: u16,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> (BoxedRun, BoxedRun, Store<ApiKey>, Store<ModelHub>) {
    let client = ctx.client.clone();
    let stop = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let config = kube::runtime::controller::Config::default().concurrency(concurrency);

    let (key_store, key_writer) = reflector::store();
    let keys = Controller::for_stream(
        triggers::api_keys(api_in::<ApiKey>(&client, namespace), key_writer, ctx.clone()),
        key_store.clone(),
    )
    .with_config(config.clone())
    .trigger_backoff(triggers::NoPause);
    let mapper_store = key_store.clone();
    let (key_hubs, key_hubs_writer) = reflector::store();
    ctx.hubs.add(key_hubs);
    ctx.cluster.add_keys(key_store.clone());
    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    ctx.cluster.add_waker(namespace.map(str::to_owned), wake_tx);
    let keys = keys
        .reconcile_on(wake_rx)
        .owns_stream(triggers::secrets(
            api_in::<PartialObjectMeta<Secret>>(&client, namespace),
            ctx.clone(),
        ))
        .watches_stream(
            triggers::import_secrets(
                api_in::<PartialObjectMeta<Secret>>(&client, namespace),
                key_store.clone(),
            ),
            {
                let (keys, ctx) = (key_store.clone(), ctx.clone());
                move |secret| {
                    triggers::importers_of(&keys, &secret)
                        .iter()
                        .map(|k| {
                            // Its inputs show no change: the value is read in the sync.
                            ctx.make_due(&k.uid().unwrap_or_default());
                            ObjectRef::from_obj(&**k)
                        })
                        .collect::<Vec<_>>()
                }
            },
        )
        .watches_stream(
            triggers::hubs(api_in::<ModelHub>(&client, namespace), key_hubs_writer),
            move |hub| {
                let ns = hub.namespace();
                let name = hub.name_any();
                mapper_store
                    .state()
                    .into_iter()
                    .filter(|k| {
                        k.namespace() == ns && !k.spec.hub_ref.is_cluster() && k.spec.hub_ref.name == name
                    })
                    .map(|k| ObjectRef::from_obj(&*k))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stop())
        .run(api_key::reconcile, api_key::error_policy, ctx.clone())
        .for_each(|res| async move {
            log_outcome("ApiKey", res);
        });

    let (hub_store, hub_writer) = reflector::store();
    let hubs = Controller::for_stream(
        triggers::model_hubs(api_in::<ModelHub>(&client, namespace), hub_writer),
        hub_store.clone(),
    )
    .with_config(config)
    .trigger_backoff(triggers::NoPause);
    let credential_hubs = hub_store.clone();
    let credential_ctx = ctx.clone();
    let hubs = hubs
        .watches_stream(
            triggers::credentials(api_in::<PartialObjectMeta<Secret>>(&client, namespace)),
            move |secret| {
                let (ns, name) = (secret.namespace(), secret.name_any());
                credential_hubs
                    .state()
                    .into_iter()
                    .filter(|h| {
                        h.namespace() == ns && h.spec.credentials_ref.as_ref().is_some_and(|r| r.name == name)
                    })
                    .map(|h| {
                        credential_ctx
                            .providers
                            .forget_credential(&h.uid().unwrap_or_default());
                        ObjectRef::from_obj(&*h)
                    })
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stop())
        .run(model_hub::reconcile, model_hub::error_policy, ctx.clone())
        .for_each(|res| async move {
            log_outcome("ModelHub", res);
        });
    (Box::pin(keys), Box::pin(hubs), key_store, hub_store)
}

/// Logs a reconcile that failed. An object a watch event named but the cache no longer holds (it was
/// just deleted, as in every namespace deletion), or a write that met a newer version, is expected and
/// logged at debug.
fn log_outcome<T, Q: std::error::Error>(
    kind: &str,
    res: std::result::Result<T, kube::runtime::controller::Error<Error, Q>>,
) {
    match res {
        Ok(_) => {}
        Err(err @ kube::runtime::controller::Error::ObjectNotFound(_)) => {
            tracing::debug!(error = %err, kind, "reconcile skipped: the object is gone");
        }
        Err(kube::runtime::controller::Error::ReconcilerFailed(err, obj)) if err.is_routine() => {
            tracing::debug!(error = %err, kind, object = %obj, "reconcile met a newer or deleted object; retrying");
        }
        Err(err) => warn!(error = %err, kind, "reconcile failed"),
    }
}
