//! The ModelHubs as the ApiKey controller's hub watch holds them. Every ApiKey reconcile reads its
//! hub; from memory that is one request per reconcile fewer than from the API server's watch cache.
//!
//! The store is filled by the same watch whose events wake the hub's ApiKeys (see
//! `triggers::hubs`), and an event passes on only after the store took it in, so a reconcile a hub
//! change started never reads the hub from before that change.

use std::sync::{Arc, RwLock};

use kube::runtime::reflector::{ObjectRef, Store};

use keysmith_api::ModelHub;

/// One store per watched scope (all namespaces, or each namespace of `--namespace`).
#[derive(Default)]
pub struct HubCache(RwLock<Vec<Store<ModelHub>>>);

impl HubCache {
    /// Adds the store of one scope's hub watch.
    pub(super) fn add(&self, store: Store<ModelHub>) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).push(store);
    }

    /// The hub `name` in `namespace`, if a watch holds it. `None` also while the watches are still
    /// listing: the caller then asks the API server.
    pub(super) fn get(&self, namespace: &str, name: &str) -> Option<Arc<ModelHub>> {
        let wanted = ObjectRef::new(name).within(namespace);
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|store| store.get(&wanted))
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher::Event};

    use super::*;

    fn hub(ns: &str, name: &str) -> ModelHub {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "keysmith.dev/v1alpha1", "kind": "ModelHub",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}")},
            "spec": {"provider": "openrouter"},
        }))
        .unwrap()
    }

    #[test]
    fn a_hub_is_found_in_whichever_scope_holds_it() {
        let cache = HubCache::default();
        for ns in ["a", "b"] {
            let (store, mut writer) = reflector::store();
            writer.apply_watcher_event(&Event::Init);
            writer.apply_watcher_event(&Event::InitApply(hub(ns, "shared")));
            writer.apply_watcher_event(&Event::InitDone);
            cache.add(store);
        }
        let found = cache.get("b", "shared").expect("hub in b");
        assert_eq!(found.metadata.namespace.as_deref(), Some("b"));
        assert!(cache.get("c", "shared").is_none());
        assert!(cache.get("a", "other").is_none());
    }
}
