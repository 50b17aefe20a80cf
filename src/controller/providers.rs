//! Provider clients built from a hub and its credential, one per hub, so that every ApiKey of a hub
//! shares that hub's rate limiter.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use keysmith_api::{ModelHub, Provider, reasons::Reason};
use keysmith_core::{Clock, SecretValue};
use keysmith_providers::{
    DynProvider,
    registry::{self, Registry},
};

use super::instrumented::Instrumented;
use crate::metrics::Metrics;

/// Builds a provider client for a hub. Tests substitute their own factory.
pub trait ProviderFactory: Send + Sync {
    /// A client for `hub`, authenticated with `credential` (absent for import-only use).
    fn build(
        &self,
        hub: &ModelHub,
        credential: Option<SecretValue>,
    ) -> keysmith_providers::Result<DynProvider>;
    /// The base URL clients call, when the hub does not set `spec.inferenceEndpoint`.
    fn default_inference_endpoint(&self, provider: Provider) -> Option<&'static str>;
}

/// The real clients, from the providers' registry.
#[derive(Debug, Default)]
pub struct DefaultProviderFactory {
    registry: Registry,
}

impl DefaultProviderFactory {
    /// A factory whose clients take "now" from `clock`; share it with the controller's [`Context`]
    /// (and any simulator) so that all of them agree on the time.
    ///
    /// [`Context`]: super::Context
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            registry: Registry::with_clock(clock),
        }
    }
}

impl ProviderFactory for DefaultProviderFactory {
    fn build(
        &self,
        hub: &ModelHub,
        credential: Option<SecretValue>,
    ) -> keysmith_providers::Result<DynProvider> {
        self.registry.build(&hub.spec, credential)
    }

    fn default_inference_endpoint(&self, provider: Provider) -> Option<&'static str> {
        registry::default_inference_endpoint(provider)
    }
}

/// Why a hub's client could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HubClientError {
    /// `spec.credentialsRef` is not set.
    #[error("spec.credentialsRef is not set")]
    NoCredentialsRef,
    /// The credentials Secret or its key is missing.
    #[error("Secret {name:?} has no data key {key:?} (or does not exist)")]
    CredentialsMissing { name: String, key: String },
    /// Reading the Secret failed.
    #[error("cannot read the credentials Secret")]
    Kube(#[source] kube::Error),
    /// The client could not be built.
    #[error(transparent)]
    Provider(keysmith_providers::Error),
}

impl HubClientError {
    /// Condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoCredentialsRef | Self::CredentialsMissing { .. } => Reason::CredentialsMissing.as_str(),
            Self::Kube(_) => Reason::KubernetesApiError.as_str(),
            Self::Provider(e) => e.reason(),
        }
    }

    /// Whether a retry may help without a change.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Kube(_))
    }
}

/// What a cached client was built from: the hub's generation and the credential's fingerprint.
type ClientInputs = (Option<i64>, Option<String>);

/// Cache of clients per hub, keyed by the hub's uid and rebuilt when the hub's spec or credential
/// changes.
pub struct ProviderCache {
    factory: Arc<dyn ProviderFactory>,
    metrics: Arc<Metrics>,
    clients: Mutex<HashMap<String, (ClientInputs, DynProvider)>>,
    /// Per hub uid: the credential last read.
    credentials: Mutex<HashMap<String, CachedCredential>>,
    /// Counts [`Self::forget_credential`] calls: a read that began before one may have seen the Secret
    /// as it was before the change, so it is used but not kept.
    forgotten: std::sync::atomic::AtomicU64,
}

/// A credential as read: for which hub generation, when, and its value.
type CachedCredential = (Option<i64>, std::time::Instant, SecretValue);

/// How long a credential read stays good. Every reconcile of every key of a hub needs it; a changed
/// credential is picked up this much later at most.
const CREDENTIAL_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl ProviderCache {
    pub(crate) fn new(factory: Arc<dyn ProviderFactory>, metrics: Arc<Metrics>) -> Self {
        Self {
            factory,
            metrics,
            clients: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            forgotten: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The factory's default inference URL for a provider.
    pub fn default_inference_endpoint(&self, provider: Provider) -> Option<&'static str> {
        self.factory.default_inference_endpoint(provider)
    }

    /// The credential of `hub`: read again once it is [`CREDENTIAL_TTL`] old or the hub changed.
    /// Only a credential that was found is kept, so fixing a missing one takes effect at once.
    async fn credential(&self, kube: &Client, hub: &ModelHub) -> Result<SecretValue, HubClientError> {
        let uid = hub.uid().unwrap_or_else(|| hub.name_any());
        let generation = hub.metadata.generation;
        {
            let cached = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((seen, at, value)) = cached.get(&uid)
                && *seen == generation
                && at.elapsed() < CREDENTIAL_TTL
            {
                return Ok(value.clone());
            }
        }
        let epoch = self.forgotten.load(std::sync::atomic::Ordering::Acquire);
        let value = read_credential(kube, hub).await?;
        let mut cached = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        if self.forgotten.load(std::sync::atomic::Ordering::Acquire) == epoch {
            cached.insert(uid, (generation, std::time::Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// Forgets the credential read for the hub `uid`: its Secret changed, so the next use reads it again.
    pub fn forget_credential(&self, uid: &str) {
        let mut cached = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        self.forgotten.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        cached.remove(uid);
    }

    /// The client of `hub`. With `require_credential` false a missing credential is tolerated (imports
    /// only need the key itself).
    pub async fn client(
        &self,
        kube: &Client,
        hub: &ModelHub,
        require_credential: bool,
    ) -> Result<DynProvider, HubClientError> {
        let credential = match self.credential(kube, hub).await {
            Ok(c) => Some(c),
            Err(HubClientError::NoCredentialsRef | HubClientError::CredentialsMissing { .. })
                if !require_credential =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        // The generation and the credential decide the client; status writes (which change the
        // resourceVersion) must not throw away the hub's rate limiter.
        let inputs = (
            hub.metadata.generation,
            credential.as_ref().map(SecretValue::fingerprint),
        );
        let uid = hub.uid().unwrap_or_else(|| hub.name_any());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((have, client)) = clients.get(&uid)
            && *have == inputs
        {
            return Ok(client.clone());
        }
        let client = self
            .factory
            .build(hub, credential)
            .map_err(HubClientError::Provider)?;
        let client = Instrumented::wrap(client, hub.spec.provider.as_str(), self.metrics.clone());
        clients.insert(uid, (inputs, client.clone()));
        Ok(client)
    }
}

async fn read_credential(kube: &Client, hub: &ModelHub) -> Result<SecretValue, HubClientError> {
    let reference = hub
        .spec
        .credentials_ref
        .as_ref()
        .ok_or(HubClientError::NoCredentialsRef)?;
    let ns = hub.namespace().unwrap_or_default();
    // Read on every reconcile of every key of the hub, so from the API server's watch cache
    // (`resourceVersion=0`) rather than etcd: a credential a moment old is still the right one.
    let secret = super::get_cached(&Api::<Secret>::namespaced(kube.clone(), &ns), &reference.name)
        .await
        .map_err(HubClientError::Kube)?;
    let missing = || HubClientError::CredentialsMissing {
        name: reference.name.clone(),
        key: reference.key.clone(),
    };
    let bytes = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&reference.key))
        .ok_or_else(missing)?;
    let text = String::from_utf8(bytes.0).map_err(|_| missing())?;
    let text = text.trim();
    if text.is_empty() {
        return Err(missing());
    }
    Ok(SecretValue::new(text))
}
