//! Limits an ApiKey (or a hub's defaults) can ask for.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Spending cap in US dollars.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Maximum spend in USD per reset window. 0 means the key may spend nothing.
    #[schemars(range(min = 0))]
    pub limit_usd: f64,
    /// When the spend counter starts again: `Daily` (UTC midnight), `Weekly` (Monday, UTC), `Monthly` (the
    /// 1st, UTC) or `Never`. Defaults to `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<BudgetReset>,
    /// Count spend made with the account's own provider keys (BYOK) against the budget too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_byok: Option<bool>,
}

// Budget reset window. A `//` comment, not a doc comment: a type's doc
// would replace the description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum BudgetReset {
    /// Resets at 00:00 UTC every day.
    Daily,
    /// Resets at 00:00 UTC every Monday.
    Weekly,
    /// Resets at 00:00 UTC on the 1st of every month.
    Monthly,
    /// Never resets: a lifetime budget.
    Never,
}

/// A number of requests per interval.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Requests allowed per interval.
    #[schemars(range(min = 0))]
    pub requests: u64,
    /// Length of the interval in seconds, greater than 0; 60 when left out.
    // The 60 is applied when reading, not by a schema default, so that a GitOps diff of an applied
    // object never shows a field its manifest does not have.
    #[serde(default = "default_interval_seconds")]
    #[schemars(schema_with = "interval_seconds_schema", transform = no_default)]
    pub interval_seconds: u64,
}

/// `rateLimit.intervalSeconds` when left out: a minute.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;

fn default_interval_seconds() -> u64 {
    DEFAULT_INTERVAL_SECONDS
}

fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

fn interval_seconds_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "integer",
        "format": "uint64",
        "minimum": 1,
        "description": "Length of the interval in seconds, greater than 0; 60 when left out."
    })
}

/// Request and token limits for the key as a whole.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests_per_minute: Option<u64>,
    /// Requests per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests_per_day: Option<u64>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tokens_per_minute: Option<u64>,
    /// Tokens per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tokens_per_day: Option<u64>,
}

/// Request and token limits for one model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelLimit {
    /// The provider's model identifier, e.g. `openai/gpt-4o-mini`.
    #[schemars(length(min = 1, max = 256))]
    pub model: String,
    /// Requests per minute for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests_per_minute: Option<u64>,
    /// Requests per UTC day for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests_per_day: Option<u64>,
    /// Tokens per minute for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tokens_per_minute: Option<u64>,
    /// Tokens per UTC day for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tokens_per_day: Option<u64>,
}

/// Caps on a single request. 0 means unlimited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestLimits {
    /// Maximum input (prompt) tokens per request; 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_input_tokens: Option<u64>,
    /// Maximum output (completion) tokens per request; 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_output_tokens: Option<u64>,
}
