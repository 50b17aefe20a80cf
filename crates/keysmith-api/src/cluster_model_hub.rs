//! `ClusterModelHub`: one provider account shared by many namespaces, its admin credential kept in the
//! operator's own namespace, with a quota per namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    limits::{BudgetReset, Limits},
    model_hub::ModelHubSpec,
    status::{AccountStatus, Capabilities, KeyCounts},
};

/// An account at an AI model provider that ApiKeys of the allowed namespaces may use, without a copy of
/// its admin credential in any of them.
// The printcolumn(...) entries repeat `type_ = ...`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "keysmith.dev",
    version = "v1alpha1",
    kind = "ClusterModelHub",
    status = "ClusterModelHubStatus",
    shortname = "cmh",
    category = "keysmith",
    doc = "An account at an AI model provider shared by the namespaces it allows, each under a quota. Its credential Secret lives in the operator's namespace.",
    printcolumn(name = "PROVIDER", type_ = "string", json_path = ".spec.provider"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "NAMESPACES",
        type_ = "integer",
        json_path = ".status.totals.namespaces"
    ),
    printcolumn(name = "KEYS", type_ = "integer", json_path = ".status.totals.keys"),
    printcolumn(
        name = "ALLOCATED",
        type_ = "number",
        json_path = ".status.totals.allocatedBudgetUsd"
    ),
    printcolumn(name = "SPENT", type_ = "number", json_path = ".status.totals.spendUsd"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterModelHubSpec {
    /// Every field of a ModelHub's spec, with the same meaning. `credentialsRef` names a Secret in the
    /// operator's own namespace (`keysmith run --cluster-resource-namespace`).
    #[serde(flatten)]
    pub hub: ModelHubSpec,
    /// Which namespaces may use this hub: those matching `selector` and those listed in `names`.
    pub allowed_namespaces: AllowedNamespaces,
    /// Limits on what each allowed namespace may take from this hub. No quota: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<NamespaceQuota>,
}

/// The namespaces whose ApiKeys may use a ClusterModelHub. A namespace matching either part is allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.selector) || (has(self.names) && size(self.names) > 0)").message("set allowedNamespaces.selector (use {} for every namespace) or allowedNamespaces.names"))]
pub struct AllowedNamespaces {
    /// Namespaces whose labels match. An empty selector (`{}`) matches every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 1000),
        inner(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub names: Vec<String>,
}

/// What each allowed namespace may take from a ClusterModelHub. Checked before any provider call, oldest
/// ApiKey first; a quota lowered below what is in use refuses new keys and suspends none.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceQuota {
    /// Most ApiKeys a namespace may hold on this hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_keys: Option<u32>,
    /// The sum of the budgets (`limitUsd`) of a namespace's ApiKeys on this hub may not exceed `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<QuotaBudget>,
    /// Refuse ApiKeys without a budget (their own or the hub's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_budget: Option<bool>,
    /// The highest request and token limits an ApiKey may have. An ApiKey that leaves a limit out (and
    /// gets none from the hub's defaults) is refused when the quota caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_limits: Option<Limits>,
}

/// A namespace's budget allowance on a ClusterModelHub.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaBudget {
    /// USD a namespace's ApiKey budgets may add up to.
    #[schemars(range(min = 0))]
    pub limit: f64,
    /// The window the allowance is meant for: `Daily`, `Weekly`, `Monthly` or `Never`; shown with the
    /// namespace's spend. Defaults to `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<BudgetReset>,
}

/// Observed state of a ClusterModelHub.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterModelHubStatus {
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
    /// Per namespace with ApiKeys on this hub: keys, allocated budget, spend, and any quota overrun.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub namespaces: Vec<NamespaceFigures>,
    /// The per-namespace figures added up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<HubTotals>,
}

/// One namespace's use of a ClusterModelHub.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceFigures {
    /// The namespace.
    pub name: String,
    /// Whether the hub allows this namespace now.
    pub allowed: bool,
    /// ApiKeys admitted (holding or being given a key).
    pub keys: u32,
    /// ApiKeys refused: namespace not allowed, or over quota.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: u32,
    /// Sum of the admitted ApiKeys' budgets in USD.
    pub allocated_budget_usd: f64,
    /// Spend of the admitted ApiKeys in their current budget windows, in USD, where the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<f64>,
    /// What the namespace holds beyond its quota (after the quota was lowered); nothing is suspended for
    /// it, new keys are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrun: Option<String>,
}

/// A ClusterModelHub's figures over every namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubTotals {
    /// Namespaces with ApiKeys on this hub.
    pub namespaces: u32,
    /// Admitted ApiKeys.
    pub keys: u32,
    /// Sum of the admitted ApiKeys' budgets in USD.
    pub allocated_budget_usd: f64,
    /// Spend of the admitted ApiKeys in USD, where reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<f64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
