//! The route Secret the operator writes for keysmith-gateway: one per ApiKey delivered through the
//! gateway, in the gateway's namespace, labelled [`ROUTE_LABEL`]`: "true"`. Its data holds
//! [`ROUTE_DATA_KEY`] (a JSON [`GatewayRoute`]) and [`UPSTREAM_KEY_DATA_KEY`] (the provider key).
//!
//! The same module holds the usage report the gateway serves at `GET /usage` ([`UsageReport`]), so
//! that the operator reads exactly what the gateway writes.
//!
//! The document carries a `version` so that a gateway older than the operator can tell a route it
//! does not understand from a broken one, keep serving the route it had, and say so.

use serde::{Deserialize, Serialize};

use crate::{Budget, Limits, ModelLimit, OnLimitExceeded, RateLimit, RequestLimits};

/// Label (value `"true"`) on every route Secret; the gateway watches Secrets with it.
pub const ROUTE_LABEL: &str = "keysmith.dev/gateway-route";
/// Data key of the route document (JSON).
pub const ROUTE_DATA_KEY: &str = "route.json";
/// Data key of the provider key the gateway sends upstream.
pub const UPSTREAM_KEY_DATA_KEY: &str = "upstreamKey";
/// The route document version this release writes and reads.
pub const CURRENT_VERSION: u32 = 1;

/// One ApiKey's route through the gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRoute {
    /// Document version; see [`CURRENT_VERSION`].
    pub version: u32,
    /// The ApiKey this route serves; usage is reported under it.
    pub api_key: ApiKeyRef,
    /// The wire protocol clients speak and the upstream answers.
    pub api: GatewayApi,
    /// Base URL of the provider's inference API, e.g. `https://api.openai.com/v1`.
    pub upstream: String,
    /// Lower-case hex SHA-256 of the key keysmith issued to the app. The value itself never leaves the
    /// app's Secret.
    pub issued_key_sha256: String,
    /// SHA-256 of the app key issued before a rotation, still accepted until the rotation's overlap
    /// ends (the previous provider key is revoked). Absent outside an overlap; a gateway that does not
    /// know the field simply accepts the current key alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_issued_key_sha256: Option<String>,
    /// Whether the key may be used now.
    pub state: RouteState,
    /// The limits in force (already resolved from spec and hub defaults).
    #[serde(default)]
    pub limits: RouteLimits,
    /// What happens when a limit is reached.
    #[serde(default)]
    pub on_limit_exceeded: OnLimitExceeded,
    /// Prices the gateway charges against the budget when the upstream reports no cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricing: Vec<ModelPrice>,
}

/// Namespace and name of an ApiKey.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyRef {
    /// Namespace of the ApiKey.
    pub namespace: String,
    /// Name of the ApiKey.
    pub name: String,
}

/// The wire protocol of a route.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GatewayApi {
    /// OpenAI's API and everything compatible with it (OpenRouter, Together, DigitalOcean, ...).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

/// Whether a key may be used.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteState {
    /// Requests are served.
    Active,
    /// `spec.disabled` is set.
    Disabled,
    /// `spec.expiresAt` has passed.
    Expired,
    /// The operator stopped the key (for example a limit it enforces from the provider's usage).
    Suspended,
}

/// The effective limits of a key, as the operator resolved them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteLimits {
    /// USD budget per calendar window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Requests per interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Key-wide requests and tokens per minute and per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Limits for single models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_limits: Vec<ModelLimit>,
    /// Per-request input and output caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_limits: Option<RequestLimits>,
}

/// What one model costs, in USD per million tokens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    /// The model as clients name it in requests.
    #[schemars(length(min = 1, max = 256))]
    pub model: String,
    /// USD per million input (prompt) tokens.
    #[schemars(range(min = 0.0))]
    pub input_usd_per_million: f64,
    /// USD per million output (completion) tokens.
    #[schemars(range(min = 0.0))]
    pub output_usd_per_million: f64,
}

// The usage report the gateway serves at `GET /usage` (JSON), read by the operator into
// `status.usage`. The figures are one replica's.

/// Figures of one ApiKey.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    /// Namespace of the ApiKey.
    pub namespace: String,
    /// Name of the ApiKey.
    pub name: String,
    /// The UTC day the figures are for (`YYYY-MM-DD`).
    pub day: String,
    /// Requests forwarded today.
    pub requests_today: u64,
    /// Tokens metered today.
    pub tokens_today: TokenFigures,
    /// Today's figures per model.
    pub models: Vec<ModelReport>,
    /// Spend in the current budget window (the month, week or day the budget resets on; all time
    /// for a budget that never resets or no budget), when every metered request's cost was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<f64>,
    /// When that window ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_resets_at: Option<String>,
}

/// Input and output tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFigures {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
}

/// Today's figures for one model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelReport {
    /// The model as requested.
    pub model: String,
    /// Requests.
    pub requests: u64,
    /// Tokens.
    pub tokens: TokenFigures,
    /// Spend where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<f64>,
}

/// The JSON served at `/usage`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// One entry per ApiKey that has a route.
    pub keys: Vec<KeyReport>,
}

/// Why a route document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RouteParseError {
    /// The document is not JSON, or not a route of a version this release knows.
    #[error("route.json is malformed: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The document was written for a newer (or retired) version of the format.
    #[error("route.json has version {found}; this gateway reads version {CURRENT_VERSION}")]
    UnknownVersion {
        /// The version the document states.
        found: u64,
    },
}

impl GatewayRoute {
    /// Reads a route document. The version is checked before the rest, so that a newer document with
    /// fields this release does not know is reported as such rather than as malformed.
    pub fn parse(json: &[u8]) -> Result<Self, RouteParseError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u64,
        }
        let probe: Versioned = serde_json::from_slice(json).map_err(RouteParseError::Malformed)?;
        if probe.version != u64::from(CURRENT_VERSION) {
            return Err(RouteParseError::UnknownVersion { found: probe.version });
        }
        serde_json::from_slice(json).map_err(RouteParseError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "version": 1,
        "apiKey": {"namespace": "team-a", "name": "chat"},
        "api": "openai",
        "upstream": "https://openrouter.ai/api/v1",
        "issuedKeySha256": "00ff",
        "state": "Active",
        "limits": {
            "budget": {"limitUsd": 5.0, "reset": "Monthly"},
            "rateLimit": {"requests": 10, "intervalSeconds": 10},
            "limits": {"requestsPerMinute": 60, "tokensPerDay": 100000},
            "modelLimits": [{"model": "openai/gpt-4o", "tokensPerMinute": 1000}],
            "requestLimits": {"maxInputTokens": 2000, "maxOutputTokens": 500}
        },
        "onLimitExceeded": "UseAnyway",
        "pricing": [{"model": "openai/gpt-4o", "inputUsdPerMillion": 2.5, "outputUsdPerMillion": 10}]
    }"#;

    #[test]
    fn a_full_route_reads_and_round_trips() {
        let route = GatewayRoute::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(route.api, GatewayApi::Openai);
        assert_eq!(route.on_limit_exceeded, OnLimitExceeded::UseAnyway);
        assert_eq!(route.limits.model_limits[0].tokens_per_minute, Some(1000));
        assert_eq!(route.pricing[0].output_usd_per_million, 10.0);
        let again = GatewayRoute::parse(&serde_json::to_vec(&route).unwrap()).unwrap();
        assert_eq!(again, route);
    }

    #[test]
    fn a_minimal_route_defaults_to_no_limits_and_reject() {
        let route = GatewayRoute::parse(
            br#"{"version":1,"apiKey":{"namespace":"a","name":"b"},"api":"anthropic",
                "upstream":"https://api.anthropic.com","issuedKeySha256":"ab","state":"Disabled"}"#,
        )
        .unwrap();
        assert_eq!(route.limits, RouteLimits::default());
        assert_eq!(route.on_limit_exceeded, OnLimitExceeded::Reject);
        assert_eq!(route.state, RouteState::Disabled);
    }

    #[test]
    fn a_newer_version_is_reported_as_unknown_not_malformed() {
        let err = GatewayRoute::parse(br#"{"version":2,"somethingNew":{"x":1}}"#).unwrap_err();
        assert!(
            matches!(err, RouteParseError::UnknownVersion { found: 2 }),
            "{err}"
        );
    }

    #[test]
    fn the_usage_report_reads_as_the_gateway_writes_it() {
        let json = r#"{"keys":[{"namespace":"a","name":"b","day":"2026-12-07","requestsToday":3,
            "tokensToday":{"input":30,"output":60},"models":[{"model":"m","requests":3,
            "tokens":{"input":30,"output":60},"spendUsd":0.5}],"spendUsd":0.5,
            "windowResetsAt":"2027-01-01T00:00:00Z"}]}"#;
        let report: UsageReport = serde_json::from_str(json).unwrap();
        assert_eq!(report.keys[0].tokens_today.output, 60);
        assert_eq!(report.keys[0].models[0].spend_usd, Some(0.5));
        let again: UsageReport = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(again, report);
    }

    #[test]
    fn garbage_is_malformed() {
        let err = GatewayRoute::parse(b"{not json").unwrap_err();
        assert!(matches!(err, RouteParseError::Malformed(_)));
        let err = GatewayRoute::parse(br#"{"version":1}"#).unwrap_err();
        assert!(matches!(err, RouteParseError::Malformed(_)));
    }
}
