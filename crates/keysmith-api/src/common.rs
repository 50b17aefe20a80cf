//! Small types shared by both resources.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A key inside a Secret in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret. It must be in the same namespace: keysmith never reads across namespaces.
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("must be a valid Secret name (lowercase DNS subdomain)"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[x_kube(validation = Rule::new(DATA_KEY_RULE).message("must be a valid Secret data key (letters, digits, '-', '_', '.')"))]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Where and how the key is delivered to workloads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSpec {
    /// Name of the Secret keysmith writes. Defaults to the ApiKey's name. keysmith refuses to overwrite a
    /// Secret it does not own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("must be a valid Secret name (lowercase DNS subdomain)"))]
    #[schemars(length(max = 253))]
    pub name: Option<String>,
    /// Names of the data keys in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<SecretDataKeys>,
    /// Extra labels on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Data key names inside the target Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.apiKey) || !has(self.baseUrl) || self.apiKey != self.baseUrl").message("apiKey and baseUrl must be different data keys"))]
#[x_kube(validation = Rule::new("!has(self.limits) || (self.limits != (has(self.apiKey) ? self.apiKey : 'apiKey') && self.limits != (has(self.baseUrl) ? self.baseUrl : 'baseUrl'))").message("limits must be a data key of its own, not the key's or the base URL's"))]
pub struct SecretDataKeys {
    /// Data key holding the key value (default `apiKey`), e.g. `OPENAI_API_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DATA_KEY_RULE).message("must be a valid Secret data key (letters, digits, '-', '_', '.')"))]
    #[schemars(length(min = 1, max = 253))]
    pub api_key: Option<String>,
    /// Data key holding the hub's inference base URL (default `baseUrl`), e.g. `OPENAI_BASE_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DATA_KEY_RULE).message("must be a valid Secret data key (letters, digits, '-', '_', '.')"))]
    #[schemars(length(min = 1, max = 253))]
    pub base_url: Option<String>,
    /// Opt-in: a data key (e.g. `KEYSMITH_LIMITS`) that carries the effective limits (value, source and
    /// who enforces each) and `onLimitExceeded` as JSON, so that a client or gateway can pace itself by
    /// the limits that are only advisory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DATA_KEY_RULE).message("must be a valid Secret data key (letters, digits, '-', '_', '.')"))]
    #[schemars(length(min = 1, max = 253))]
    pub limits: Option<String>,
}

/// CEL: a lowercase RFC 1123 DNS subdomain, the rule for Secret names.
pub(crate) const DNS_SUBDOMAIN_RULE: &str =
    "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
/// CEL: the characters the API server accepts in Secret data keys.
pub(crate) const DATA_KEY_RULE: &str = "self.matches('^[-._a-zA-Z0-9]+$')";
