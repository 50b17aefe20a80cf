//! The floor: a bare client doing, for each ApiKey, only what no implementation of keysmith's
//! contract can skip, at the operator's concurrency:
//!
//! 1. the crash-safety marker: a merge patch of `status.pendingCreate` (the provider shows a key's
//!    value once, so the attempt must be on record before the call);
//! 2. the provider create, through the same HTTP client the operator builds from the hub;
//! 3. the Secret create, with the content keysmith writes (`plan::desired_secret`);
//! 4. the status write: key id, fingerprint, Secret name and `Ready=True`, clearing the marker.
//!
//! It reads nothing from the API server: the ApiKeys come from the benchmark's own create calls.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use keysmith::controller::{DefaultProviderFactory, ProviderFactory};
use keysmith::plan;
use keysmith_api::{ApiKey, ModelHub};
use keysmith_providers::{DynProvider, SecretValue};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::Result;
use crate::cluster::MANAGEMENT_KEY;

/// The floor client's workers, fed with created ApiKeys.
pub struct Floor {
    tx: mpsc::UnboundedSender<ApiKey>,
    task: JoinHandle<()>,
    writes: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

struct Shared {
    client: Client,
    hub: ModelHub,
    provider: DynProvider,
    base_url: String,
    writes: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

impl Floor {
    /// Starts `concurrency` workers for ApiKeys of `hub`.
    pub fn start(client: Client, hub: ModelHub, concurrency: usize) -> Result<Self> {
        let provider = DefaultProviderFactory::default()
            .build(&hub, Some(SecretValue::new(MANAGEMENT_KEY)))
            .map_err(|e| format!("cannot build the provider client: {e}"))?;
        let base_url = hub.spec.inference_endpoint.clone().unwrap_or_default();
        let writes = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            client,
            hub,
            provider,
            base_url,
            writes: writes.clone(),
            failures: failures.clone(),
        });
        let (tx, rx) = mpsc::unbounded_channel::<ApiKey>();
        let keys = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|k| (k, rx)) });
        let task = tokio::spawn(keys.for_each_concurrent(concurrency, move |key| {
            let shared = shared.clone();
            async move {
                if let Err(e) = shared.converge(&key).await {
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("floor: {}: {e}", key.name_any());
                }
            }
        }));
        Ok(Self {
            tx,
            task,
            writes,
            failures,
        })
    }

    /// Queues one ApiKey.
    pub fn push(&self, key: ApiKey) {
        let _ = self.tx.send(key);
    }

    /// Waits for the queued keys and returns (writes sent, keys that failed).
    pub async fn finish(self) -> Result<(u64, u64)> {
        drop(self.tx);
        self.task.await?;
        Ok((
            self.writes.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        ))
    }
}

impl Shared {
    async fn converge(&self, key: &ApiKey) -> Result<()> {
        let ns = key.namespace().ok_or("no namespace")?;
        let uid = key.uid().ok_or("no uid")?;
        let name = key.name_any();
        let keys = Api::<ApiKey>::namespaced(self.client.clone(), &ns);
        let params = PatchParams::default();
        let tag = keysmith_providers::tag::attempt_tag(&uid, &format!("{:08x}", rand::random::<u32>()));

        let marker = json!({"status": {"pendingCreate": {"tag": tag, "reason": "Create"}}});
        self.write(keys.patch_status(&name, &params, &Patch::Merge(&marker)))
            .await?;

        let settings = plan::desired_settings(key, &self.hub, &tag);
        let created = self.provider.create_key(&settings).await?;

        let delivery = plan::Delivery {
            base_url: self.base_url.clone(),
            published: keysmith_limits::published_limits(key, &self.hub),
        };
        let secret = plan::desired_secret(key, &created.value, Some(&created.record.id), &delivery);
        let secrets = Api::<Secret>::namespaced(self.client.clone(), &ns);
        self.write(secrets.create(&PostParams::default(), &secret))
            .await?;

        let now = jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "pendingCreate": null,
            "keyId": created.record.id,
            "keyLabel": created.record.label,
            "fingerprint": created.value.fingerprint(),
            "secretName": plan::secret_name(key),
            "observedGeneration": key.metadata.generation,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KeyReady",
                "message": "the Secret holds a key the provider accepts",
                "lastTransitionTime": now, "observedGeneration": key.metadata.generation,
            }],
        }});
        self.write(keys.patch_status(&name, &params, &Patch::Merge(&status)))
            .await?;
        Ok(())
    }

    async fn write<T>(&self, call: impl Future<Output = kube::Result<T>>) -> Result<T> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(call.await?)
    }
}
