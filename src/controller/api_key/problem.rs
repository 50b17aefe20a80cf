//! Why a key is not in the state its spec asks for, in terms the user can act on.

use keysmith_api::reasons::Reason;

use crate::controller::{Error, providers::HubClientError};

/// A sync's failure; it becomes the Ready condition's reason and message.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The hub does not exist.
    #[error("ModelHub {0:?} not found in this namespace")]
    HubNotFound(String),
    /// The hub is being deleted: no new key is issued through it.
    #[error("{0} is being deleted; no new key is issued through it")]
    HubDeleting(String),
    /// The cluster hub does not exist.
    #[error("ClusterModelHub {0:?} not found")]
    ClusterHubNotFound(String),
    /// The cluster hub does not allow the namespace; nothing was minted.
    #[error(
        "ClusterModelHub {0:?} does not allow this namespace (spec.allowedNamespaces); no key was issued"
    )]
    HubNotAllowed(String),
    /// Admitting the key would break the namespace's quota; nothing was minted.
    #[error("ClusterModelHub quota: {0}; no key was issued")]
    QuotaExceeded(String),
    /// The hub's client could not be built.
    #[error("ModelHub {hub:?} cannot be used: {source}")]
    Hub {
        hub: String,
        #[source]
        source: HubClientError,
    },
    /// The target Secret exists and belongs to someone else.
    #[error("Secret {0:?} exists and is not owned by this ApiKey; keysmith will not overwrite it")]
    SecretConflict(String),
    /// The Secret named in `spec.import.secretRef` (or its key) is missing.
    #[error("import Secret {name:?} has no data key {key:?} (or does not exist)")]
    ImportSecretMissing { name: String, key: String },
    /// A time recorded in status cannot be read: keysmith does not guess when a key expires or when
    /// a previous key is due for revocation.
    #[error(
        "{field} holds {bad}; correct or remove it (kubectl edit apikey NAME --subresource=status) and keysmith carries on"
    )]
    MalformedStatus {
        field: &'static str,
        bad: keysmith_api::BadTime,
    },
    /// `delivery: Gateway` on an operator started without `--gateway-url`.
    #[error(
        "spec.delivery is Gateway (or the hub's defaults make it so), but this keysmith runs without a gateway (--gateway-url, or the chart's gateway.enabled); no key was issued"
    )]
    GatewayNotConfigured,
    /// The decision found no final step: a bug, reported instead of looping.
    #[error("keysmith could not decide how to bring this key in line with its spec; please report it")]
    Stuck,
    /// The provider refused or failed a call.
    #[error("{0}")]
    Provider(#[from] keysmith_providers::Error),
    /// A Kubernetes call failed.
    #[error("{0}")]
    Kube(#[from] Error),
}

impl Problem {
    /// Condition and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HubNotFound(_) | Self::ClusterHubNotFound(_) | Self::HubDeleting(_) => {
                Reason::HubNotFound.as_str()
            }
            Self::HubNotAllowed(_) => Reason::HubNotAllowed.as_str(),
            Self::QuotaExceeded(_) => Reason::QuotaExceeded.as_str(),
            Self::Hub { source, .. } => match source {
                HubClientError::NoCredentialsRef | HubClientError::CredentialsMissing { .. } => {
                    Reason::HubCredentialsMissing.as_str()
                }
                other => other.reason(),
            },
            Self::SecretConflict(_) => Reason::SecretConflict.as_str(),
            Self::ImportSecretMissing { .. } => Reason::ImportSecretMissing.as_str(),
            Self::MalformedStatus { .. } => Reason::MalformedStatus.as_str(),
            Self::Stuck => Reason::Unsupported.as_str(),
            Self::GatewayNotConfigured => Reason::GatewayNotConfigured.as_str(),
            Self::Provider(e) => e.reason(),
            Self::Kube(e) => e.reason(),
        }
    }

    /// Whether a write conditional on the version this reconcile started from was refused because
    /// the object had moved on.
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Kube(e) if e.is_conflict())
    }

    /// Whether waiting may fix it without a change from the user.
    /// A passing failure of the provider's API (unreachable, rate limited, a server error). It says
    /// nothing about whether the key keysmith already delivered works.
    pub fn is_provider_blip(&self) -> bool {
        matches!(self, Self::Provider(e) if e.is_transient())
    }

    pub fn is_transient(&self) -> bool {
        match self {
            Self::Provider(e) => e.is_transient(),
            Self::Kube(_) => true,
            Self::Hub { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}
