//! `ApiKey`: one key in a ModelHub's account, with its limits, delivered as a Secret.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    common::{DNS_SUBDOMAIN_RULE, SecretKeyRef, SecretSpec},
    limits::{Budget, Limits, ModelLimit, RateLimit, RequestLimits},
    status::{EffectiveLimits, PendingCreate, RotationStatus, Usage},
    time::{BadTime, StatusTime},
};

/// One API key at a provider, with its limits. keysmith creates (or imports) the key, keeps the
/// provider in line with this spec, writes the key into a Secret and reports usage here.
// The printcolumn(...) entries repeat `type_ = ...`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "keysmith.dev",
    version = "v1alpha1",
    kind = "ApiKey",
    namespaced,
    status = "ApiKeyStatus",
    shortname = "ak",
    category = "keysmith",
    doc = "An API key at an AI model provider, with its budget and limits, delivered as a Secret.",
    printcolumn(name = "HUB", type_ = "string", json_path = ".spec.hubRef.name"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "SPEND", type_ = "number", json_path = ".status.usage.currentUsd"),
    printcolumn(
        name = "LIMIT",
        type_ = "number",
        json_path = ".status.effectiveLimits.budget.limitUsd"
    ),
    printcolumn(name = "RESETS", type_ = "string", json_path = ".status.usage.windowResetsAt"),
    printcolumn(name = "EXPIRES", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "ENFORCED",
        type_ = "string",
        priority = 1,
        description = "Whether every limit set is enforced (False: some are only advisory)",
        json_path = ".status.conditions[?(@.type==\"LimitsEnforced\")].status"
    ),
    printcolumn(
        name = "UNENFORCED",
        type_ = "string",
        priority = 1,
        description = "The limits nobody enforces",
        json_path = ".status.conditions[?(@.type==\"LimitsEnforced\")].message"
    ),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.hubRef) && self.hubRef == oldSelf.hubRef").message("spec.hubRef is immutable; create a new ApiKey to use another hub"))]
#[x_kube(validation = Rule::new("has(self.import) == has(oldSelf.import)").message("spec.import cannot be added or removed after creation; create a new ApiKey instead"))]
pub struct ApiKeySpec {
    /// The hub whose account holds the key: a ModelHub of this namespace, or a ClusterModelHub
    /// (`kind: ClusterModelHub`) that allows this namespace. Cannot be changed.
    pub hub_ref: HubRef,
    /// The key's name at the provider. Defaults to `<namespace>/<name>`. Changing it renames the key in
    /// place where the provider allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub display_name: Option<String>,
    /// Bring an existing key instead of minting one (the only mode for providers that cannot mint keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportSpec>,
    /// Disable the key at the provider without deleting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Time after which the key stops working, RFC 3339 in UTC (e.g. `2027-01-31T00:00:00Z`). Where the
    /// provider cannot change expiry in place, a change re-issues the key; the previous key stays valid for
    /// `rotation.overlap`, as in a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]+)?Z$') && timestamp(self) > timestamp('2000-01-01T00:00:00Z')").message("must be an RFC 3339 time in UTC ending in Z, e.g. 2027-01-31T00:00:00Z"))]
    #[schemars(length(max = 40))]
    pub expires_at: Option<String>,
    /// Spending cap in USD, with its reset window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Requests allowed per interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Request and token limits per minute and per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Request and token limits for single models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["model"]), length(max = 100))]
    pub model_limits: Vec<ModelLimit>,
    /// Caps on single requests (0 = unlimited), published in the Secret for clients and gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_limits: Option<RequestLimits>,
    /// What happens when usage reaches an enforced limit: `Reject` (default: the key stops working until
    /// the window resets) or `UseAnyway` (it keeps working and the overrun is reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_limit_exceeded: Option<OnLimitExceeded>,
    /// How the app reaches the provider: `Direct` (default: the Secret holds the provider key) or
    /// `Gateway` (the provider key stays with keysmith-gateway in its namespace; the Secret holds a key
    /// keysmith issues for the gateway and the gateway's URL, and the gateway enforces every limit on
    /// each request). Left out: the hub's `spec.defaults.delivery`, else `Direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Re-issue the key on a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// The Secret that receives the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretSpec>,
    /// What happens at the provider when this ApiKey is deleted: `Delete` (default: revoke the key) or
    /// `Orphan` (leave it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// Reference to the hub: a ModelHub in the same namespace, or a ClusterModelHub that allows this namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubRef {
    /// `ModelHub` (in the same namespace; what an absent kind means) or `ClusterModelHub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<HubKind>,
    /// Name of the hub.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("must be a Kubernetes object name: lower-case letters, digits, '-' and '.'"))]
    pub name: String,
}

impl HubRef {
    /// Whether it names a ClusterModelHub.
    pub fn is_cluster(&self) -> bool {
        self.kind == Some(HubKind::ClusterModelHub)
    }
}

// The kind of hub an ApiKey refers to. A `//` comment, not a doc comment: a type's doc would replace
// the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum HubKind {
    /// A ModelHub in the ApiKey's namespace.
    ModelHub,
    /// A cluster-scoped ClusterModelHub.
    ClusterModelHub,
}

/// An existing key to bring under management.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportSpec {
    /// The Secret (same namespace) and key holding the existing key's value.
    pub secret_ref: SecretKeyRef,
    /// The provider's identifier of this key, where the provider can manage it (Anthropic `apikey_...`,
    /// DigitalOcean uuid). Without it keysmith may find the record by its masked hint when unambiguous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub key_id: Option<String>,
}

// How an app reaches the provider. A `//` comment, not a doc comment: a type's doc would replace the
// description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum Delivery {
    /// The Secret holds the provider key; the app calls the provider.
    #[default]
    Direct,
    /// The Secret holds a key for keysmith-gateway, which holds the provider key and enforces limits.
    Gateway,
}

// Behaviour when usage reaches an enforced limit. A `//` comment, not a doc comment: a type's doc
// would replace the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum OnLimitExceeded {
    /// The key stops working until the window resets.
    #[default]
    Reject,
    /// The key keeps working; the overrun is reported.
    UseAnyway,
}

/// Scheduled re-issue of the key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.overlap) || !has(self.every) || duration(self.overlap) < duration(self.every)").message("spec.rotation.overlap must be shorter than spec.rotation.every"))]
pub struct Rotation {
    /// Time between rotations, as a duration such as `720h`. At least `1h`. Left out, the key rotates
    /// only when asked (annotation `keysmith.dev/rotate`).
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h')").message("must be a duration of at least 1h, e.g. 720h"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// How long the previous key stays valid after a rotation (default `1h`), shorter than `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub overlap: Option<String>,
    /// Workloads in this namespace whose pods must pick up the new key: each gets one pod-template
    /// annotation change per rotation (a rolling restart), never more. The operator needs `patch` on
    /// them (Helm value `restartTargets.enabled`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub restart_targets: Vec<RestartTarget>,
}

/// A workload restarted after each rotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartTarget {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: WorkloadKind,
    /// Name of the workload (same namespace as the ApiKey).
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("must be a Kubernetes object name: lower-case letters, digits, '-' and '.'"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Kinds of workload that can be restarted after a rotation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

// What to do at the provider when the ApiKey is deleted. A `//` comment, not a doc comment: a type's doc
// would replace the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum DeletionPolicy {
    /// Revoke the key at the provider.
    #[default]
    Delete,
    /// Leave the key at the provider.
    Orphan,
}

/// Observed state of an ApiKey. Never holds the key's value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyStatus {
    /// `Ready`, `LimitExceeded`, `Expired`, `Reconciling` and `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::schema")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The provider's identifier of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The provider's masked form of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
    /// First 16 hex characters of the SHA-256 of the key value, to tell keys apart without revealing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The Secret keysmith wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// `Gateway` while the provider key is held by keysmith-gateway (its route Secret) rather than
    /// the app's Secret; absent for `Direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Spend and traffic, as the provider reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Each limit in force, where it comes from and how it is enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_limits: Option<EffectiveLimits>,
    /// Expiry in force (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<StatusTime>,
    /// Rotation bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
    /// A provider create in flight; see the crash-safety notes in the README.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<PendingCreate>,
    /// Set while keysmith keeps the key revoked because the provider cannot disable keys (`disable:
    /// Operator` in `status.capabilities`) and the key must not work. A new key, with a new value, is
    /// issued once that no longer holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
}

impl ApiKeyStatus {
    /// Checks every instant recorded in status; the first that cannot be read, with its field.
    pub fn check_times(&self) -> Result<(), (&'static str, BadTime)> {
        let rotation = self.rotation.as_ref();
        let fields = [
            ("status.expiresAt", self.expires_at.as_ref()),
            (
                "status.suspended.since",
                self.suspended.as_ref().map(|s| &s.since),
            ),
            (
                "status.usage.windowResetsAt",
                self.usage.as_ref().and_then(|u| u.window_resets_at.as_ref()),
            ),
            (
                "status.rotation.lastRotatedAt",
                rotation.and_then(|r| r.last_rotated_at.as_ref()),
            ),
            (
                "status.rotation.nextRotationAt",
                rotation.and_then(|r| r.next_rotation_at.as_ref()),
            ),
            (
                "status.rotation.previousKeyRevokeAt",
                rotation.and_then(|r| r.previous_key_revoke_at.as_ref()),
            ),
        ];
        for (field, time) in fields {
            if let Some(Err(bad)) = time.map(StatusTime::get) {
                return Err((field, bad));
            }
        }
        Ok(())
    }
}

/// Why keysmith revoked a key the provider cannot disable.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SuspensionReason {
    /// `spec.disabled` is true.
    Disabled,
    /// `spec.expiresAt` has passed.
    Expired,
    /// A limit only keysmith enforces was reached under `onLimitExceeded: Reject`.
    LimitExceeded,
    /// The ClusterModelHub no longer allows the ApiKey's namespace.
    HubNotAllowed,
}

impl SuspensionReason {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "Disabled",
            Self::Expired => "Expired",
            Self::LimitExceeded => "LimitExceeded",
            Self::HubNotAllowed => "HubNotAllowed",
        }
    }
}

/// Why and since when an ApiKey has no working key on purpose.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// Why the key must not work.
    pub reason: SuspensionReason,
    /// When keysmith decided to revoke the key (RFC 3339).
    pub since: StatusTime,
    /// The provider key that was revoked; unset until the provider confirmed the revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_key_id: Option<String>,
}
