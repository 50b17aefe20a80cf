//! keysmith's finalizer on ApiKeys: one way to add it, one way to remove it.
//!
//! Both are JSON merge patches carrying the `resourceVersion` the decision was made from, so the API
//! server refuses them (409) if the object changed meanwhile: a finalizer someone else added in
//! between is never dropped, and a decision taken from a stale cache is retried from fresh state. A
//! merge patch rather than an apply: keysmith owns no other field of the ApiKey's metadata that an
//! apply would track, and removing a list entry another manager also set is beyond apply.

use keysmith_api::{ApiKey, well_known::APIKEY_FINALIZER};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};

use super::{Error, Result};

/// Whether `key` carries keysmith's finalizer.
pub fn present(key: &ApiKey) -> bool {
    key.finalizers().iter().any(|f| f == APIKEY_FINALIZER)
}

/// Adds the finalizer, together with `annotation` when given (the first key's create marker rides
/// on the same write: one request fewer per new key). Returns the version written.
pub async fn add(
    api: &Api<ApiKey>,
    key: &ApiKey,
    annotation: Option<(&str, &str)>,
) -> Result<Option<String>> {
    let mut finalizers = key.finalizers().to_vec();
    if !present(key) {
        finalizers.push(APIKEY_FINALIZER.to_owned());
    }
    let mut body = serde_json::json!({
        "metadata": { "resourceVersion": key.resource_version(), "finalizers": finalizers },
    });
    if let Some((name, value)) = annotation {
        body["metadata"]["annotations"] = serde_json::json!({ name: value });
    }
    patch(api, key, &body, "add the finalizer").await
}

/// Removes the finalizer once cleanup is done; every other finalizer stays.
pub async fn remove(api: &Api<ApiKey>, key: &ApiKey) -> Result<Option<String>> {
    let rest: Vec<&String> = key
        .finalizers()
        .iter()
        .filter(|f| *f != APIKEY_FINALIZER)
        .collect();
    let body = serde_json::json!({
        "metadata": { "resourceVersion": key.resource_version(), "finalizers": rest },
    });
    patch(api, key, &body, "remove the finalizer").await
}

async fn patch(
    api: &Api<ApiKey>,
    key: &ApiKey,
    body: &serde_json::Value,
    context: &'static str,
) -> Result<Option<String>> {
    let written = api
        .patch(&key.name_any(), &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(Error::kube(context))?;
    Ok(written.resource_version())
}
