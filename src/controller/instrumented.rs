//! A [`ProviderClient`] decorator that counts and times every operation for `/metrics`.

use std::{sync::Arc, time::Instant};

use crate::metrics::{Metrics, ProviderLabels};
use keysmith_api::Capabilities;
use keysmith_providers::{
    AccountInfo, CreatedKey, DynProvider, ImportedKeyInfo, KeyRecord, KeySettings, ProviderClient, Result,
    SecretValue,
};

/// Wraps a client; metrics carry the provider's name, the operation and a static outcome.
pub struct Instrumented {
    inner: DynProvider,
    provider: &'static str,
    metrics: Arc<Metrics>,
}

impl Instrumented {
    /// Wraps `inner`.
    pub fn wrap(inner: DynProvider, provider: &'static str, metrics: Arc<Metrics>) -> DynProvider {
        Arc::new(Self {
            inner,
            provider,
            metrics,
        })
    }

    async fn measure<T>(&self, operation: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let start = Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.reason(),
        };
        self.metrics.provider_call(
            ProviderLabels {
                provider: self.provider,
                operation,
                outcome,
            },
            start.elapsed().as_secs_f64(),
        );
        result
    }
}

#[async_trait::async_trait]
impl ProviderClient for Instrumented {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn verify(&self) -> Result<AccountInfo> {
        self.measure("verify", self.inner.verify()).await
    }

    async fn create_key(&self, settings: &KeySettings) -> Result<CreatedKey> {
        self.measure("create_key", self.inner.create_key(settings)).await
    }

    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        self.measure("get_key", self.inner.get_key(id)).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        self.measure("list_keys", self.inner.list_keys()).await
    }

    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord> {
        self.measure("update_key", self.inner.update_key(id, settings))
            .await
    }

    async fn delete_key(&self, id: &str) -> Result<()> {
        self.measure("delete_key", self.inner.delete_key(id)).await
    }

    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        self.measure("inspect_imported", self.inner.inspect_imported(value))
            .await
    }

    async fn find_imported(&self, value: &SecretValue, key_id: Option<&str>) -> Result<Option<KeyRecord>> {
        self.measure("find_imported", self.inner.find_imported(value, key_id))
            .await
    }

    async fn regenerate_key(&self, id: &str) -> Result<CreatedKey> {
        self.measure("regenerate_key", self.inner.regenerate_key(id))
            .await
    }

    async fn reveal_key(&self, id: &str) -> Result<Option<SecretValue>> {
        self.measure("reveal_key", self.inner.reveal_key(id)).await
    }

    fn expiry_in_place(&self) -> bool {
        self.inner.expiry_in_place()
    }
}
