//! A hub's credential Secret stays while a hub uses it, the way Kubernetes keeps a PersistentVolumeClaim
//! a Pod uses: keysmith's finalizer is on it, with a label that lets keysmith find (and watch) the
//! Secrets it protects. Without it, deleting a namespace (or one file holding the Secret, the hub and
//! its ApiKeys) could remove the credential before the ApiKeys' keys were revoked with it.

use k8s_openapi::api::core::v1::Secret;
use keysmith_api::{
    ModelHub,
    well_known::{CREDENTIAL_FINALIZER, CREDENTIAL_LABEL},
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};

use super::{Context, Error, Result, finalizer};

/// Puts keysmith's finalizer and label on the credential Secret `name` in `ns`, if it exists and lacks
/// them. A Secret that does not exist yet is protected once the hub finds it.
pub async fn protect(ctx: &Context, ns: &str, name: &str) -> Result<()> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let Some(secret) = api
        .get_metadata_opt(name)
        .await
        .map_err(Error::kube("get credential Secret"))?
    else {
        return Ok(());
    };
    let labelled = secret.labels().get(CREDENTIAL_LABEL).map(String::as_str) == Some("true");
    if labelled && finalizer::present(&secret, CREDENTIAL_FINALIZER) {
        return Ok(());
    }
    if secret.metadata.deletion_timestamp.is_some() {
        // Too late to add a finalizer (the API server refuses new ones on an object being deleted).
        return Ok(());
    }
    let mut finalizers = secret.finalizers().to_vec();
    if !finalizers.iter().any(|f| f == CREDENTIAL_FINALIZER) {
        finalizers.push(CREDENTIAL_FINALIZER.to_owned());
    }
    let body = serde_json::json!({
        "metadata": {
            "resourceVersion": secret.resource_version(),
            "labels": { CREDENTIAL_LABEL: "true" },
            "finalizers": finalizers,
        },
    });
    Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .patch_metadata(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(Error::kube("protect credential Secret"))?;
    Ok(())
}

/// Releases the credential Secrets of `ns` that no hub uses any more. `leaving` is the uid of a hub
/// being deleted whose use no longer counts.
pub async fn release_unused(ctx: &Context, ns: &str, leaving: Option<&str>) -> Result<()> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let protected = api
        .list_metadata(&ListParams::default().labels(&format!("{CREDENTIAL_LABEL}=true")))
        .await
        .map_err(Error::kube("list credential Secrets"))?;
    let in_use = users(ctx, ns, leaving).await?;
    for secret in protected.items {
        if in_use.contains(&secret.name_any()) || !finalizer::present(&secret, CREDENTIAL_FINALIZER) {
            continue;
        }
        let rest: Vec<&String> = secret
            .finalizers()
            .iter()
            .filter(|f| *f != CREDENTIAL_FINALIZER)
            .collect();
        let body = serde_json::json!({
            "metadata": {
                "resourceVersion": secret.resource_version(),
                "labels": { CREDENTIAL_LABEL: null },
                "finalizers": rest,
            },
        });
        match Api::<Secret>::namespaced(ctx.client.clone(), ns)
            .patch_metadata(&secret.name_any(), &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {}
            // Gone, or changed meanwhile: the next hub reconcile looks again.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(Error::kube("release credential Secret")(e)),
        }
    }
    Ok(())
}

/// The names of the Secrets in `ns` that hubs other than `leaving` refer to: the namespace's ModelHubs
/// (listed from the API server: a hub created a moment ago must not lose its credential), and in the
/// operator's namespace the ClusterModelHubs (from the watch; a new one protects its Secret itself).
async fn users(ctx: &Context, ns: &str, leaving: Option<&str>) -> Result<Vec<String>> {
    let others = |uid: Option<String>| uid.as_deref() != leaving;
    let hubs = match Api::<ModelHub>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        // The operator's own namespace when only other namespaces are watched: no ModelHub of its
        // namespace can be keysmith's there.
        Err(kube::Error::Api(s)) if s.code == 403 => Vec::new(),
        Err(e) => return Err(Error::kube("list ModelHubs")(e)),
    };
    let mut names: Vec<String> = hubs
        .into_iter()
        .filter(|h| others(h.uid()))
        .filter_map(|h| h.spec.credentials_ref.map(|r| r.name))
        .collect();
    if ns == ctx.settings.cluster_resource_namespace {
        // This operator's ClusterModelHubs (its selector's): another installation's read their
        // credentials in a namespace of their own.
        names.extend(
            ctx.cluster
                .hubs()
                .iter()
                .filter(|h| others(h.uid()))
                .filter_map(|h| h.spec.hub.credentials_ref.as_ref().map(|r| r.name.clone())),
        );
    }
    Ok(names)
}
