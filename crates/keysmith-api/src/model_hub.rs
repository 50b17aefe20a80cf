//! `ModelHub`: an account at a model provider and the admin credential that manages it.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    common::SecretKeyRef,
    limits::{Budget, Limits, ModelLimit, RateLimit, RequestLimits},
    status::{AccountStatus, Capabilities, KeyCounts},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// An account at an AI model provider. ApiKeys in the same namespace refer to it by name.
// The printcolumn(...) entries repeat `type_ = ...`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "keysmith.dev",
    version = "v1alpha1",
    kind = "ModelHub",
    namespaced,
    status = "ModelHubStatus",
    shortname = "mh",
    category = "keysmith",
    doc = "An account at an AI model provider, with the admin credential keysmith uses to manage its keys.",
    printcolumn(name = "PROVIDER", type_ = "string", json_path = ".spec.provider"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "KEYS", type_ = "integer", json_path = ".status.keys.managed"),
    printcolumn(
        name = "CREDITS",
        type_ = "number",
        json_path = ".status.account.creditsRemainingUsd"
    ),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.openrouter) || self.provider == 'openrouter'").message("spec.openrouter applies to provider openrouter only; remove it or fix spec.provider").field_path(".openrouter"))]
#[x_kube(validation = Rule::new("!has(self.openai) || self.provider == 'openai'").message("spec.openai applies to provider openai only; remove it or fix spec.provider").field_path(".openai"))]
#[x_kube(validation = Rule::new("!has(self.anthropic) || self.provider == 'anthropic'").message("spec.anthropic applies to provider anthropic only; remove it or fix spec.provider").field_path(".anthropic"))]
#[x_kube(validation = Rule::new("!has(self.google) || self.provider == 'google'").message("spec.google applies to provider google only; remove it or fix spec.provider").field_path(".google"))]
pub struct ModelHubSpec {
    /// The provider: `openrouter`, `openai`, `aixplain`, `anthropic`, `digitalocean`, `together`, `google` or
    /// `openaiCompatible`. Cannot be changed once set.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.provider is immutable; create a new ModelHub for another provider"))]
    pub provider: Provider,
    /// Base URL of the provider's management API. Defaults to the provider's public URL; tests and
    /// air-gapped installations point it elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(URL_RULE).message("must be an http:// or https:// URL"))]
    #[x_kube(validation = Rule::new(NO_USERINFO_RULE).message(NO_USERINFO_MESSAGE))]
    #[schemars(length(max = 2048))]
    pub endpoint: Option<String>,
    /// Base URL that clients call with the key. Written into each ApiKey's Secret (data key `baseUrl`) and
    /// used to validate imported keys. Defaults to the provider's public inference URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(URL_RULE).message("must be an http:// or https:// URL"))]
    #[x_kube(validation = Rule::new(NO_USERINFO_RULE).message(NO_USERINFO_MESSAGE))]
    #[schemars(length(max = 2048))]
    pub inference_endpoint: Option<String>,
    /// The Secret and key holding the provider's management, admin or provisioning credential: in the
    /// hub's namespace, or for a ClusterModelHub in the operator's namespace. keysmith keeps it (a
    /// finalizer) while the hub uses it. Optional for hubs whose ApiKeys are all imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<SecretKeyRef>,
    /// OpenRouter account settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openrouter: Option<OpenRouterHub>,
    /// OpenAI account settings and the project-wide limits OpenAI enforces itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<OpenAiHub>,
    /// Anthropic organisation settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic: Option<AnthropicHub>,
    /// Google Cloud project settings (API keys for Vertex AI and Gemini).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleHub>,
    /// Limits applied to ApiKeys that leave them out. Without defaults, the provider's entry-tier limits
    /// are reported as the effective ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<HubDefaults>,
    /// Prices keysmith-gateway charges against budgets for models whose responses report no cost
    /// (every provider but OpenRouter), in USD per million tokens. A model not listed is not charged by
    /// the gateway; its budget stays with the provider's own usage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["model"]))]
    pub pricing: Vec<crate::gateway_route::ModelPrice>,
    /// Pace of calls to the provider's management API, shared by every ApiKey of this hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_rate_limit: Option<ApiRateLimit>,
    /// How often each key's usage is read from the provider, as a duration such as `5m` or `1h30m`
    /// (default `5m`, with jitter). At least `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('30s')").message("must be a duration of at least 30s, e.g. 5m"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub usage_refresh_interval: Option<String>,
}

// The provider behind a hub. A `//` comment, not a doc comment: a type's doc would replace the
// description of every field that uses it in the CRD.
#[allow(missing_docs)]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Provider {
    /// OpenRouter: keys minted with a management key.
    Openrouter,
    /// OpenAI: keys minted as project service-account keys with an admin key.
    Openai,
    /// aiXplain: keys minted with a team API key.
    Aixplain,
    /// Anthropic: keys made in the Console and imported; managed with an admin key.
    Anthropic,
    /// DigitalOcean Gradient AI: model keys imported, renamed, regenerated and deleted.
    Digitalocean,
    /// Together AI: keys imported and validated.
    Together,
    /// Google API Keys for Vertex AI and Gemini.
    Google,
    /// Any server that speaks the OpenAI API: keys imported and validated.
    OpenaiCompatible,
}

impl Provider {
    /// The name used in the API, in metrics and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openrouter => "openrouter",
            Self::Openai => "openai",
            Self::Aixplain => "aixplain",
            Self::Anthropic => "anthropic",
            Self::Digitalocean => "digitalocean",
            Self::Together => "together",
            Self::Google => "google",
            Self::OpenaiCompatible => "openaiCompatible",
        }
    }
}

/// OpenRouter account settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenRouterHub {
    /// Workspace (UUID) that keys are created in; the account's default workspace when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub workspace_id: Option<String>,
}

/// OpenAI organisation and project settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenAiHub {
    /// The project (`proj_...`) whose service accounts hold the minted keys.
    #[schemars(length(min = 1, max = 128))]
    pub project_id: String,
    /// Per-model rate limits of the project, enforced by OpenAI for every key in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["model"]))]
    pub rate_limits: Vec<OpenAiModelRateLimit>,
    /// Monthly hard spend limit of the project in USD, enforced by OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("must be greater than 0"))]
    pub spend_limit_usd: Option<f64>,
}

/// One model's rate limits in an OpenAI project.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenAiModelRateLimit {
    /// Model name, e.g. `gpt-4o-mini`.
    #[schemars(length(min = 1, max = 256))]
    pub model: String,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub tokens_per_minute: Option<u64>,
    /// Requests per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub requests_per_day: Option<u64>,
}

/// Anthropic organisation settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnthropicHub {
    /// Workspace (`wrkspc_...`) the imported keys belong to; any workspace when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub workspace_id: Option<String>,
}

/// Google Cloud settings for API keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GoogleHub {
    /// Project ID or number that owns the keys.
    #[schemars(length(min = 1, max = 128))]
    pub project: String,
    /// OAuth2 token endpoint for the service-account credential (default Google's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(URL_RULE).message("must be an http:// or https:// URL"))]
    #[x_kube(validation = Rule::new(NO_USERINFO_RULE).message(NO_USERINFO_MESSAGE))]
    #[schemars(length(max = 2048))]
    pub token_endpoint: Option<String>,
}

/// Limits applied to ApiKeys of this hub that do not set their own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubDefaults {
    /// Default spending cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Default requests per interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Default request and token limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Default per-model limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["model"]))]
    pub model_limits: Vec<ModelLimit>,
    /// Default per-request caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_limits: Option<RequestLimits>,
    /// Default delivery (`Direct` or `Gateway`) of the ApiKeys that leave `spec.delivery` out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<crate::Delivery>,
}

/// Client-side pacing of management API calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiRateLimit {
    /// Sustained requests per second toward the management API.
    // CEL, not `minimum`: the apiserver checks an integer value against a truncated minimum, so
    // `minimum: 0.01` would let `0` through.
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1000.0").message("must be greater than 0 and at most 1000"))]
    pub requests_per_second: f64,
    /// Requests allowed at once after a quiet period (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub burst: Option<u32>,
}

/// Observed state of a ModelHub.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelHubStatus {
    /// `Ready` says whether the credentials were verified against the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::schema")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How each kind of limit and action is enforced with this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Account figures the provider reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountStatus>,
    /// Counts of keys keysmith manages in this account, and of keys it made that no ApiKey claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyCounts>,
}

/// CEL: an http or https URL.
const URL_RULE: &str = "self.matches('^https?://[^\\\\s]+$') && isURL(self)";
/// CEL: no `user:password@` before the host. Endpoints are logged and shown in status; a credential
/// belongs in the Secret named by `credentialsRef`.
const NO_USERINFO_RULE: &str = "!self.matches('^[a-zA-Z][-+.a-zA-Z0-9]*://[^/?#]*@')";
const NO_USERINFO_MESSAGE: &str = "must not carry a user or password (user:password@host); put credentials in the Secret named by credentialsRef";
