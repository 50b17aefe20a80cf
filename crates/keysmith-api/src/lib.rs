//! The keysmith API, group `keysmith.dev`, version `v1alpha1`: `ModelHub` (an account at a provider),
//! `ClusterModelHub` (one shared by many namespaces) and `ApiKey` (one key in that account). Doc
//! comments on every field become the descriptions that `kubectl explain` shows, so they are written
//! for users.

#![deny(missing_docs)]

mod api_key;
mod cluster_model_hub;
mod common;
pub mod conditions;
pub mod gateway_route;
mod limits;
mod model_hub;
pub mod reasons;
mod status;
pub mod time;
pub mod well_known;

pub use api_key::{
    ApiKey, ApiKeySpec, ApiKeyStatus, DeletionPolicy, Delivery, HubKind, HubRef, ImportSpec, OnLimitExceeded,
    RestartTarget, Rotation, Suspension, SuspensionReason, WorkloadKind,
};
pub use cluster_model_hub::{
    AllowedNamespaces, ClusterModelHub, ClusterModelHubSpec, ClusterModelHubStatus, HubTotals,
    NamespaceFigures, NamespaceQuota, QuotaBudget,
};
pub use common::{SecretDataKeys, SecretKeyRef, SecretSpec};
pub use limits::{Budget, BudgetReset, Limits, ModelLimit, RateLimit, RequestLimits};
pub use model_hub::{
    AnthropicHub, ApiRateLimit, GoogleHub, HubDefaults, ModelHub, ModelHubSpec, ModelHubStatus, OpenAiHub,
    OpenAiModelRateLimit, OpenRouterHub, Provider,
};
pub use status::{
    AccountStatus, Capabilities, CreateKind, EffectiveBudget, EffectiveLimits, EffectiveModelLimit,
    EffectiveRate, EffectiveValue, Enforcement, KeyCounts, LimitScope, LimitSource, ModelUsage,
    PendingCreate, RotationStatus, Usage,
};
pub use time::{BadTime, StatusTime};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every keysmith resource.
pub const API_GROUP: &str = "keysmith.dev";
/// The one field manager keysmith writes with (server-side apply), for objects and their status.
pub const FIELD_MANAGER: &str = "keysmith.dev/controller";

/// Every CRD keysmith serves, in install order.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![ModelHub::crd(), ClusterModelHub::crd(), ApiKey::crd()]
}

/// Renders the CRDs as one multi-document YAML stream (what `keysmith crds` prints and `crds/` holds).
pub fn crds_yaml() -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&crd)?);
    }
    Ok(out)
}
