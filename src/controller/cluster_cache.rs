//! What the controllers of different scopes share: the ClusterModelHubs and Namespaces (one watch
//! each, cluster-wide even when ApiKeys are watched per namespace), every scope's ApiKey store, and a
//! way to wake ApiKeys in whichever scope holds them.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Namespace;
use keysmith_api::{ApiKey, ClusterModelHub};
use kube::{
    ResourceExt,
    core::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};

/// Wakes the ApiKey controller of one scope (`None`: every namespace).
type Waker = (Option<String>, UnboundedSender<ObjectRef<ApiKey>>);

/// The shared stores, filled as the controllers start.
#[derive(Default)]
pub struct ClusterCache {
    hubs: RwLock<Option<Store<ClusterModelHub>>>,
    namespaces: RwLock<Option<Store<PartialObjectMeta<Namespace>>>>,
    keys: RwLock<Vec<Store<ApiKey>>>,
    wakers: Mutex<Vec<Waker>>,
    hub_waker: Mutex<Option<UnboundedSender<ObjectRef<ClusterModelHub>>>>,
    /// Per hub name: when it was last woken, or that a wake is already on its way.
    hub_wakes: Arc<Mutex<HashMap<String, Wake>>>,
    /// Per hub uid: the generation verified with the provider, and when.
    verified: Mutex<HashMap<String, (Option<i64>, Instant)>>,
    /// Per Secret (namespace, name): the uid of the ApiKey that first wrote it from this process.
    secret_claims: Mutex<HashMap<(String, String), String>>,
}

/// A hub's wake-ups are spaced by [`WAKE_SPACING`]: a burst of ApiKey changes (a thousand keys created
/// at once) is one reconcile now and one when the spacing has passed, never one per key.
#[derive(Clone, Copy, Debug)]
enum Wake {
    At(Instant),
    Scheduled,
}

const WAKE_SPACING: Duration = Duration::from_secs(1);

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl ClusterCache {
    pub(super) fn set_hubs(&self, store: Store<ClusterModelHub>) {
        *write(&self.hubs) = Some(store);
    }

    pub(super) fn set_namespaces(&self, store: Store<PartialObjectMeta<Namespace>>) {
        *write(&self.namespaces) = Some(store);
    }

    pub(super) fn add_keys(&self, store: Store<ApiKey>) {
        write(&self.keys).push(store);
    }

    pub(super) fn add_waker(&self, scope: Option<String>, waker: UnboundedSender<ObjectRef<ApiKey>>) {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((scope, waker));
    }

    pub(super) fn set_hub_waker(&self, waker: UnboundedSender<ObjectRef<ClusterModelHub>>) {
        *self.hub_waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker);
    }

    /// Starts a reconcile of the ClusterModelHub `name`: now, or if it was woken less than
    /// [`WAKE_SPACING`] ago, once that has passed (one delayed wake stands for all that come meanwhile).
    pub fn wake_hub(&self, name: &str) {
        let Some(waker) = self.hub_waker.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let mut wakes = self.hub_wakes.lock().unwrap_or_else(|p| p.into_inner());
        let wait = match wakes.get(name) {
            Some(Wake::Scheduled) => return,
            Some(Wake::At(at)) => WAKE_SPACING.saturating_sub(at.elapsed()),
            None => Duration::ZERO,
        };
        if wait.is_zero() {
            wakes.insert(name.to_owned(), Wake::At(Instant::now()));
            let _ = waker.unbounded_send(ObjectRef::new(name));
            return;
        }
        wakes.insert(name.to_owned(), Wake::Scheduled);
        let (wakes, name) = (Arc::clone(&self.hub_wakes), name.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            wakes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), Wake::At(Instant::now()));
            let _ = waker.unbounded_send(ObjectRef::new(&name));
        });
    }

    /// Whether hub `uid` at `generation` is due for verification with the provider (its credential,
    /// account and key counts): when first seen, changed, or `interval` after the last time.
    pub fn verify_due(&self, uid: &str, generation: Option<i64>, interval: Duration) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified
            .get(uid)
            .is_none_or(|(seen, at)| *seen != generation || at.elapsed() >= interval)
    }

    /// Records a verification of hub `uid` at `generation`.
    pub fn verified(&self, uid: &str, generation: Option<i64>) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_owned(), (generation, Instant::now()));
    }

    /// Forgets the verification of hub `uid` (its credential changed, or it failed).
    pub fn forget_verified(&self, uid: &str) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    /// The ClusterModelHub `name`, if the watch holds it (`None` also before it has listed).
    pub fn hub(&self, name: &str) -> Option<Arc<ClusterModelHub>> {
        read(&self.hubs).as_ref()?.get(&ObjectRef::new(name))
    }

    /// Every ClusterModelHub the watch holds.
    pub fn hubs(&self) -> Vec<Arc<ClusterModelHub>> {
        read(&self.hubs).as_ref().map(Store::state).unwrap_or_default()
    }

    /// The labels of namespace `name`, if the watch holds it.
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let store = read(&self.namespaces);
        let ns = store.as_ref()?.get(&ObjectRef::new(name))?;
        Some(ns.labels().clone())
    }

    /// Claims Secret `ns/name` for the ApiKey `uid` before keysmith first writes it; false if another
    /// ApiKey that still names it claimed it first. Every write of a Secret comes from this process
    /// (one leader), with one field manager: two ApiKeys created at once naming one Secret would
    /// otherwise both find it missing, and the second apply would take it over from the first.
    pub fn claim_secret(&self, ns: &str, name: &str, uid: &str) -> bool {
        let mut claims = self.secret_claims.lock().unwrap_or_else(|p| p.into_inner());
        let at = (ns.to_owned(), name.to_owned());
        if let Some(holder) = claims.get(&at)
            && holder != uid
        {
            let still_names = !self
                .keys(|k| {
                    k.uid().as_deref() == Some(holder.as_str())
                        && k.metadata.deletion_timestamp.is_none()
                        && crate::plan::secret_name(k) == name
                })
                .is_empty();
            if still_names {
                return false;
            }
        }
        claims.insert(at, uid.to_owned());
        true
    }

    /// Whether namespace `name` is being deleted, as far as the watch knows.
    pub fn namespace_terminating(&self, name: &str) -> bool {
        let store = read(&self.namespaces);
        store
            .as_ref()
            .and_then(|s| s.get(&ObjectRef::new(name)))
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some())
    }

    /// The ApiKeys of every scope for which `wanted` holds.
    pub fn keys(&self, wanted: impl Fn(&ApiKey) -> bool) -> Vec<Arc<ApiKey>> {
        read(&self.keys)
            .iter()
            .flat_map(|store| store.state())
            .filter(|k| wanted(k))
            .collect()
    }

    /// The ApiKeys of namespace `ns` that use the ClusterModelHub `hub`.
    pub fn keys_on(&self, ns: &str, hub: &str) -> Vec<Arc<ApiKey>> {
        self.keys(|k| {
            k.namespace().as_deref() == Some(ns) && k.spec.hub_ref.is_cluster() && k.spec.hub_ref.name == hub
        })
    }

    /// Starts a reconcile of each of `keys`, in the scope that watches it.
    pub fn wake(&self, keys: &[Arc<ApiKey>]) {
        let wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            let ns = key.namespace();
            for (scope, waker) in wakers.iter() {
                if scope.is_none() || *scope == ns {
                    // A closed channel is a controller shutting down: nothing left to wake.
                    let _ = waker.unbounded_send(ObjectRef::from_obj(&**key));
                }
            }
        }
    }
}
