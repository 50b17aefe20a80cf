//! An ApiKey's `spec.hubRef` resolved: a ModelHub of its namespace, or a ClusterModelHub seen as the
//! ModelHub it stands for (its credential Secret in the operator's namespace), with whether the hub
//! lets this ApiKey in.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use keysmith_api::{AllowedNamespaces, ApiKey, ClusterModelHub, ModelHub, ModelHubStatus, NamespaceQuota};
use kube::{
    Api, ResourceExt,
    core::{ObjectMeta, Selector, SelectorExt},
};

use super::{Context, Error, Result, get_cached};
use crate::plan::quota::{self, Claim};

/// Whether the hub lets an ApiKey in.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// A ModelHub of its own namespace, or a ClusterModelHub that allows the namespace and has room.
    Allowed,
    /// The ClusterModelHub does not allow the namespace.
    NotAllowed,
    /// Admitting the key would break the namespace's quota (the words name the quota field).
    OverQuota(String),
}

/// A hub an ApiKey can work with.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The hub; for a ClusterModelHub, the ModelHub it stands for.
    pub hub: ModelHub,
    /// Whether the key may use it.
    pub access: Access,
}

/// The hub `key` refers to, and whether it lets the key in; `None` when it does not exist. A key that
/// holds no key yet is checked against the quota; one that does is never refused by it.
pub async fn resolve(key: &ApiKey, ctx: &Context) -> Result<Option<Resolved>> {
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let name = &key.spec.hub_ref.name;
    if !key.spec.hub_ref.is_cluster() {
        let hub = match ctx.hubs.get(&ns, name) {
            Some(hub) => Some(ModelHub::clone(&hub)),
            None => get_cached(&Api::<ModelHub>::namespaced(ctx.client.clone(), &ns), name)
                .await
                .map_err(Error::kube("get ModelHub"))?,
        };
        return Ok(hub.map(|hub| Resolved {
            hub,
            access: Access::Allowed,
        }));
    }
    let Some(cluster_hub) = cluster_hub(ctx, name).await? else {
        return Ok(None);
    };
    let hub = as_model_hub(&cluster_hub, &ctx.settings.cluster_resource_namespace);
    let labels = namespace_labels(ctx, &ns).await?;
    if !allows(&cluster_hub.spec.allowed_namespaces, &ns, &labels) {
        return Ok(Some(Resolved {
            hub,
            access: Access::NotAllowed,
        }));
    }
    let access = match &cluster_hub.spec.quota {
        Some(q) if !Claim::of(key, &hub).holds_key => admission(q, &hub, key, ctx, &ns),
        _ => Access::Allowed,
    };
    Ok(Some(Resolved { hub, access }))
}

/// The ClusterModelHub `name`, from the watch, else the API server (while the watch lists).
pub async fn cluster_hub(ctx: &Context, name: &str) -> Result<Option<ClusterModelHub>> {
    if let Some(hub) = ctx.cluster.hub(name) {
        return Ok(Some(ClusterModelHub::clone(&hub)));
    }
    get_cached(&Api::<ClusterModelHub>::all(ctx.client.clone()), name)
        .await
        .map_err(Error::kube("get ClusterModelHub"))
}

/// The labels of namespace `ns`, from the watch, else the API server.
pub async fn namespace_labels(ctx: &Context, ns: &str) -> Result<BTreeMap<String, String>> {
    if let Some(labels) = ctx.cluster.namespace_labels(ns) {
        return Ok(labels);
    }
    let api = Api::<Namespace>::all(ctx.client.clone());
    let found = api
        .get_metadata_opt(ns)
        .await
        .map_err(Error::kube("get Namespace"))?;
    Ok(found.map(|n| n.labels().clone()).unwrap_or_default())
}

/// The quota's answer for `key`, judged over every ApiKey of its namespace on the same hub.
fn admission(quota: &NamespaceQuota, hub: &ModelHub, key: &ApiKey, ctx: &Context, ns: &str) -> Access {
    let mut claims: Vec<Claim> = ctx
        .cluster
        .keys_on(ns, &key.spec.hub_ref.name)
        .iter()
        .filter(|k| k.uid() != key.uid() && k.metadata.deletion_timestamp.is_none())
        .map(|k| Claim::of(k, hub))
        .collect();
    // The key as this reconcile has it, which may be newer than the store's copy.
    claims.push(Claim::of(key, hub));
    match quota::judge(Some(quota), claims).refused.remove(&key.name_any()) {
        Some(why) => Access::OverQuota(why),
        None => Access::Allowed,
    }
}

/// Whether `allowed` lets namespace `ns` (with `labels`) in. A selector that cannot be read allows
/// nothing; the hub's condition says why.
pub fn allows(allowed: &AllowedNamespaces, ns: &str, labels: &BTreeMap<String, String>) -> bool {
    if allowed.names.iter().any(|n| n == ns) {
        return true;
    }
    allowed
        .selector
        .clone()
        .and_then(|s| Selector::try_from(s).ok())
        .is_some_and(|s| s.matches(labels))
}

/// The ModelHub a ClusterModelHub stands for: its spec, its identity (so it gets one client and one
/// rate limiter, whichever namespace asks), its readiness, and the operator's namespace, where its
/// credential Secret is read.
pub fn as_model_hub(hub: &ClusterModelHub, operator_namespace: &str) -> ModelHub {
    ModelHub {
        metadata: ObjectMeta {
            name: hub.metadata.name.clone(),
            namespace: Some(operator_namespace.to_owned()),
            uid: hub.metadata.uid.clone(),
            generation: hub.metadata.generation,
            resource_version: hub.metadata.resource_version.clone(),
            finalizers: hub.metadata.finalizers.clone(),
            deletion_timestamp: hub.metadata.deletion_timestamp.clone(),
            annotations: hub.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: hub.spec.hub.clone(),
        status: hub.status.as_ref().map(|s| ModelHubStatus {
            conditions: s.conditions.clone(),
            observed_generation: s.observed_generation,
            ..ModelHubStatus::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_namespace_is_allowed_by_name_or_by_labels() {
        let allowed = AllowedNamespaces {
            selector: Some(LabelSelector {
                match_labels: Some(labels(&[("keysmith.dev/ai", "true")])),
                ..LabelSelector::default()
            }),
            names: vec!["team-a".into()],
        };
        assert!(allows(&allowed, "team-a", &labels(&[])));
        assert!(allows(
            &allowed,
            "team-b",
            &labels(&[("keysmith.dev/ai", "true")])
        ));
        assert!(!allows(
            &allowed,
            "team-c",
            &labels(&[("keysmith.dev/ai", "false")])
        ));
    }

    #[test]
    fn an_empty_selector_allows_every_namespace_and_no_selector_none() {
        let every = AllowedNamespaces {
            selector: Some(LabelSelector::default()),
            names: vec![],
        };
        assert!(allows(&every, "anything", &labels(&[])));
        let listed = AllowedNamespaces {
            selector: None,
            names: vec!["team-a".into()],
        };
        assert!(!allows(&listed, "team-b", &labels(&[])));
    }

    #[test]
    fn match_expressions_are_honoured_and_a_bad_one_allows_nothing() {
        let expr = |operator: &str, values: Option<Vec<String>>| AllowedNamespaces {
            selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: operator.into(),
                    values,
                }]),
                ..LabelSelector::default()
            }),
            names: vec![],
        };
        let gold = labels(&[("tier", "gold")]);
        assert!(allows(&expr("In", Some(vec!["gold".into()])), "x", &gold));
        assert!(!allows(&expr("NotIn", Some(vec!["gold".into()])), "x", &gold));
        assert!(allows(&expr("Exists", None), "x", &gold));
        assert!(!allows(&expr("Sometimes", None), "x", &gold));
    }

    #[test]
    fn a_cluster_hub_stands_for_a_model_hub_in_the_operator_namespace() {
        let cluster: ClusterModelHub = serde_json::from_value(serde_json::json!({
            "apiVersion": "keysmith.dev/v1alpha1", "kind": "ClusterModelHub",
            "metadata": {"name": "org", "uid": "u-1", "generation": 3},
            "spec": {
                "provider": "openrouter",
                "credentialsRef": {"name": "mgmt", "key": "apiKey"},
                "allowedNamespaces": {"names": ["team-a"]},
            },
        }))
        .unwrap();
        let hub = as_model_hub(&cluster, "keysmith-system");
        assert_eq!(hub.namespace().as_deref(), Some("keysmith-system"));
        assert_eq!(hub.uid().as_deref(), Some("u-1"));
        assert_eq!(hub.metadata.generation, Some(3));
        assert_eq!(hub.spec.credentials_ref.unwrap().name, "mgmt");
    }
}
