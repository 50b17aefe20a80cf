//! keysmith's finalizers: one way to add one, one way to remove one, for every kind that has one
//! (ApiKeys, hubs, credential Secrets).
//!
//! Both are JSON merge patches carrying the `resourceVersion` the decision was made from, so the API
//! server refuses them (409) if the object changed meanwhile: a finalizer someone else added in
//! between is never dropped, and a decision taken from a stale cache is retried from fresh state. A
//! merge patch rather than an apply: keysmith owns no other field of these objects' metadata that an
//! apply would track, and removing a list entry another manager also set is beyond apply.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::de::DeserializeOwned;

use super::{Error, Result};

/// Whether `obj` carries `finalizer`.
pub fn present<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.finalizers().iter().any(|f| f == finalizer)
}

/// Adds `finalizer`, together with `annotation` when given (an ApiKey's first create marker rides on
/// the same write: one request fewer per new key). Returns the version written.
pub async fn add<K>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
    annotation: Option<(&str, &str)>,
) -> Result<Option<String>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut finalizers = obj.finalizers().to_vec();
    if !present(obj, finalizer) {
        finalizers.push(finalizer.to_owned());
    }
    let mut body = serde_json::json!({
        "metadata": { "resourceVersion": obj.resource_version(), "finalizers": finalizers },
    });
    if let Some((name, value)) = annotation {
        body["metadata"]["annotations"] = serde_json::json!({ name: value });
    }
    patch(api, obj, &body, "add a finalizer").await
}

/// Removes `finalizer` once its work is done; every other finalizer stays.
pub async fn remove<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<Option<String>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let rest: Vec<&String> = obj.finalizers().iter().filter(|f| *f != finalizer).collect();
    let body = serde_json::json!({
        "metadata": { "resourceVersion": obj.resource_version(), "finalizers": rest },
    });
    patch(api, obj, &body, "remove a finalizer").await
}

async fn patch<K>(
    api: &Api<K>,
    obj: &K,
    body: &serde_json::Value,
    context: &'static str,
) -> Result<Option<String>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let written = api
        .patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(Error::kube(context))?;
    Ok(written.resource_version())
}
