//! Status types: what keysmith observed at the provider and how each limit is enforced.

use serde::{Deserialize, Serialize};

use super::{limits::BudgetReset, time::StatusTime};

// How a limit or action is carried out. A `//` comment, not a doc comment: a type's doc
// would replace the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Enforcement {
    /// The provider enforces it.
    Provider,
    /// keysmith enforces it by acting on usage (disabling or revoking the key).
    Operator,
    /// keysmith-gateway enforces it on every request (`delivery: Gateway`).
    Gateway,
    /// Published to clients only (in the Secret); nobody enforces it.
    Advisory,
    /// The provider cannot do it and keysmith cannot make up for it.
    Unsupported,
}

// Where an effective limit comes from. A `//` comment, not a doc comment: a type's doc
// would replace the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum LimitSource {
    /// The ApiKey's own spec.
    Spec,
    /// The hub's `spec.defaults`.
    HubDefault,
    /// The provider's documented entry-tier limit.
    ProviderDefault,
}

// What a limit counts: this key's traffic, or the whole provider account's (an entry-tier limit,
// shared by every key of the account). A `//` comment, not a doc comment: a type's doc would replace
// the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum LimitScope {
    /// This key's traffic.
    Key,
    /// The whole account's traffic, every key of it together.
    Account,
}

/// For each kind of limit and action: how this provider lets keysmith carry it out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Spending cap per key.
    pub budget: Enforcement,
    /// Requests per interval per key.
    pub rate_limits: Enforcement,
    /// Per-model limits per key.
    pub model_limits: Enforcement,
    /// Per-request token caps.
    pub request_limits: Enforcement,
    /// Key expiry.
    pub expiry: Enforcement,
    /// Disabling a key without deleting it.
    pub disable: Enforcement,
    /// Renaming a key in place.
    pub rename: Enforcement,
    /// Reading a key's usage.
    pub usage: Enforcement,
    /// Minting new keys.
    pub provisioning: Enforcement,
    /// Re-issuing a key.
    pub rotation: Enforcement,
}

/// Account figures reported by the provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// Credits bought, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits_usd: Option<f64>,
    /// Credits used, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_usd: Option<f64>,
    /// Credits left, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits_remaining_usd: Option<f64>,
}

/// Counts of provider keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCounts {
    /// Keys keysmith made that an ApiKey holds.
    pub managed: u32,
    /// Keys that carry keysmith's tag but that no ApiKey in this namespace holds.
    pub orphaned: u32,
    /// Provider keys of deleted ApiKeys that could not be revoked because the hub's credential was
    /// missing (its finalizer removed by hand). keysmith revokes them once the credential works
    /// again; the README says how to finish by hand otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unrevoked: u32,
    /// The provider's ids of those keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrevoked_ids: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Spend and traffic of one key, as the provider reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// All-time spend in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_usd: Option<f64>,
    /// Spend in the current UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_usd: Option<f64>,
    /// Spend in the current UTC week (Monday to Sunday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_usd: Option<f64>,
    /// Spend in the current UTC month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_usd: Option<f64>,
    /// Spend in the budget's current window (what the budget is compared with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_usd: Option<f64>,
    /// Budget left in the current window, in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<f64>,
    /// Requests in the current UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_today: Option<u64>,
    /// Tokens in the current UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_today: Option<u64>,
    /// Per-model figures, where the provider reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelUsage>,
    /// When the budget's current window resets (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_resets_at: Option<StatusTime>,
}

/// Usage of one model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    /// The model.
    pub model: String,
    /// Spend in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    /// Requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

/// Every limit in force for a key, with its origin and enforcement.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveLimits {
    /// Spending cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<EffectiveBudget>,
    /// Requests per interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<EffectiveRate>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<EffectiveValue>,
    /// Requests per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<EffectiveValue>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<EffectiveValue>,
    /// Tokens per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<EffectiveValue>,
    /// Per-model limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_limits: Vec<EffectiveModelLimit>,
    /// Maximum input tokens per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<EffectiveValue>,
    /// Maximum output tokens per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<EffectiveValue>,
    /// The provider's documented entry-tier limits, which hold the whole account (every key of it
    /// together) where neither the ApiKey nor its hub sets a limit, or that none is documented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_defaults: Option<String>,
}

/// The budget in force.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveBudget {
    /// Cap in USD.
    pub limit_usd: f64,
    /// Reset window.
    pub reset: BudgetReset,
    /// Whether BYOK spend counts.
    pub include_byok: bool,
    /// `false` while the provider does not attribute spend to this key (e.g. it shares an Anthropic
    /// workspace with other keys or the Console): the budget cannot be checked until it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_known: Option<bool>,
    /// Where it comes from.
    pub source: LimitSource,
    /// Who enforces it.
    pub enforcement: Enforcement,
}

/// The request rate in force.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveRate {
    /// Requests per interval.
    pub requests: u64,
    /// Interval in seconds.
    pub interval_seconds: u64,
    /// Where it comes from.
    pub source: LimitSource,
    /// Who enforces it.
    pub enforcement: Enforcement,
    /// `Account` for the provider's entry-tier limit (`source: ProviderDefault`): it counts every key
    /// of the account together, not this key alone. Absent: the limit is this key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<LimitScope>,
}

/// One numeric limit in force.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveValue {
    /// The limit.
    pub value: u64,
    /// Where it comes from.
    pub source: LimitSource,
    /// Who enforces it.
    pub enforcement: Enforcement,
    /// `Account` for the provider's entry-tier limit (`source: ProviderDefault`): it counts every key
    /// of the account together, not this key alone. Absent: the limit is this key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<LimitScope>,
}

/// One model's limits in force.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveModelLimit {
    /// The model.
    pub model: String,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Requests per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u64>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Tokens per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Where it comes from.
    pub source: LimitSource,
    /// Who enforces it.
    pub enforcement: Enforcement,
}

/// A provider create that keysmith started but has not yet recorded as done. Written before the
/// provider is called, so a crash in between can be recognised and repaired on restart.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCreate {
    /// The tag carried in the provider-side key name of this attempt.
    pub tag: String,
    /// Why the key is being created.
    pub reason: CreateKind,
}

/// Why a create is under way; recovery after a crash finishes it accordingly (a rotation keeps the
/// previous key for its overlap, a replacement revokes it at once).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum CreateKind {
    /// The ApiKey's first key.
    Create,
    /// The key vanished at the provider or its Secret lost the value: a new key replaces it.
    Replace,
    /// A field the provider cannot change in place (expiry) changed: a new key replaces it, and the
    /// previous key stays valid for the rotation overlap, as in a rotation.
    Reissue,
    /// A scheduled or requested rotation: the previous key stays valid for the overlap.
    Rotate,
    /// An imported key's value is regenerated in place at the provider.
    Regenerate,
}

impl CreateKind {
    /// The wire string, as written into `status.pendingCreate.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Replace => "Replace",
            Self::Reissue => "Reissue",
            Self::Rotate => "Rotate",
            Self::Regenerate => "Regenerate",
        }
    }

    /// Whether the key this create replaces stays valid for the rotation overlap: workloads that read
    /// the key once (an environment variable) keep working until they pick up the new one. A key that
    /// vanished or whose value was lost has nothing to keep.
    pub fn keeps_previous(self) -> bool {
        matches!(self, Self::Rotate | Self::Reissue)
    }
}

/// Rotation bookkeeping.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// When the key was last re-issued (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_at: Option<StatusTime>,
    /// When the next scheduled rotation is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<StatusTime>,
    /// Provider identifier of the previous key, still valid during the overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_id: Option<String>,
    /// When the previous key will be revoked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_revoke_at: Option<StatusTime>,
    /// The last value of the `keysmith.dev/rotate` annotation that was honoured (one rotation per value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_requested_token: Option<String>,
    /// For an imported key regenerated in place: fingerprint of the value the import Secret still holds
    /// and that no longer works. While it stays there, the Secret keysmith wrote is the key's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_import_fingerprint: Option<String>,
    /// Fingerprint of the key that `spec.rotation.restartTargets` were last restarted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_for: Option<String>,
}
