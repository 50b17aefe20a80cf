//! Routes from Kubernetes: a watch on the labelled route Secrets of the gateway's namespace.

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use keysmith_api::gateway_route::ROUTE_LABEL;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};

use crate::routes::{Route, RouteError, RouteSource, RouteTable, route_from_secret_data};

/// Watches route Secrets in one namespace.
#[derive(Clone)]
pub struct KubeRoutes {
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for KubeRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeRoutes")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl KubeRoutes {
    /// A source for the route Secrets of `namespace`.
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }
}

fn route_of(secret: &Secret) -> (String, Result<Route, RouteError>) {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .as_ref()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default();
    (name, route_from_secret_data(&data))
}

#[async_trait::async_trait]
impl RouteSource for KubeRoutes {
    async fn run(self: Box<Self>, table: Arc<RouteTable>) -> Result<(), crate::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let config = watcher::Config::default().labels(&format!("{ROUTE_LABEL}=true"));
        let mut events = watcher(api, config).default_backoff().boxed();
        let mut listing = Vec::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(secret)) => listing.push(route_of(&secret)),
                Ok(watcher::Event::InitDone) => {
                    table.resync(std::mem::take(&mut listing));
                    table.mark_synced();
                    tracing::info!(routes = table.routes().len(), "route Secrets synced");
                }
                Ok(watcher::Event::Apply(secret)) => {
                    let (name, route) = route_of(&secret);
                    table.apply(&name, route);
                }
                Ok(watcher::Event::Delete(secret)) => {
                    table.remove(secret.metadata.name.as_deref().unwrap_or_default());
                }
                // The watcher retries with backoff; the table keeps serving what it has meanwhile.
                Err(err) => tracing::warn!(error = %err, "route Secret watch failed; retrying"),
            }
        }
        Ok(())
    }
}
