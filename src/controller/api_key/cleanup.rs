//! Deleting an ApiKey: its provider keys are revoked unless `deletionPolicy: Orphan`.

use std::sync::Arc;

use keysmith_api::{ApiKey, ClusterModelHub, DeletionPolicy, ModelHub, reasons::Reason};
use keysmith_providers::tag;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use serde_json::json;
use tracing::{info, warn};

use crate::{
    controller::{Context, Error, Result, hub_ref, providers::HubClientError},
    plan,
};

/// Revokes every provider key the ApiKey may hold: the current one, a previous one in its overlap,
/// and any an interrupted create left behind.
pub async fn cleanup(key: Arc<ApiKey>, ctx: &Arc<Context>) -> Result<Action> {
    ctx.metrics
        .forget_key(&key.namespace().unwrap_or_default(), &key.name_any());
    ctx.forget(&key.uid().unwrap_or_default());
    let policy = key.spec.deletion_policy.unwrap_or_default();
    // The route goes with the ApiKey unless the key is orphaned: then the app keeps reaching the
    // provider through the gateway with the key nobody manages any more, as it would with `Direct`.
    if policy != DeletionPolicy::Orphan {
        super::gateway::forget(ctx, &key).await?;
    }
    let status = key.status.clone().unwrap_or_default();
    let imported = key.spec.import.is_some();
    // An imported key is revoked only when keysmith knows its record at the provider (a `keyId`) and
    // manages the hub with a credential; otherwise it cannot tell which key to revoke.
    let anonymous_import = imported && status.key_id.is_none();
    if policy == DeletionPolicy::Orphan || anonymous_import {
        info!(?policy, imported, "leaving the provider key in place");
        return Ok(Action::await_change());
    }
    // Whether the hub still allows the namespace does not matter here: the key is revoked either way.
    let resolved = hub_ref::resolve(&key, ctx).await?.map(|r| r.hub);
    let provider = match &resolved {
        Some(hub) => match ctx.providers.client(&ctx.client, hub, true).await {
            Ok(client) => Some(client),
            // A passing API hiccup must not release the finalizer with the key still live: retry.
            Err(HubClientError::Kube(source)) => {
                return Err(Error::Kube {
                    context: "read the hub credentials",
                    source,
                });
            }
            Err(_) => None,
        },
        None => None,
    };
    let Some(provider) = provider else {
        if imported {
            info!("no usable management credential for an imported key: leaving the key in place");
            return Ok(Action::await_change());
        }
        // Without the hub or its credential nothing can be revoked; holding the finalizer would only
        // block the namespace. Say so loudly, and leave the ids on the hub, which revokes them once its
        // credential works again.
        let mut ids: Vec<String> = status.key_id.iter().cloned().collect();
        ids.extend(status.rotation.as_ref().and_then(|r| r.previous_key_id.clone()));
        let listed = if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        };
        let ns = key.namespace().unwrap_or_default();
        warn!(namespace = %ns, name = %key.name_any(), hub = %key.spec.hub_ref.name, ids = %listed,
            "hub or credentials missing: provider keys left unrevoked");
        ctx.metrics.unrevoked_keys(&ns, &key.spec.hub_ref.name, ids.len());
        let note = format!(
            "hub or credentials missing: provider key(s) {listed} could not be revoked; the hub revokes them once its credential works, or revoke them at the provider"
        );
        announce(ctx, &key, EventType::Warning, Reason::RevokeSkipped, note).await;
        if let Some(hub) = resolved {
            leave_on_hub(ctx, &key, &hub, &ids).await?;
        }
        return Ok(Action::await_change());
    };
    let uid = key.uid().unwrap_or_default();
    let mut ids: Vec<String> = status.key_id.iter().cloned().collect();
    ids.extend(status.rotation.as_ref().and_then(|r| r.previous_key_id.clone()));
    if plan::create_pending(&key, &status) {
        // An interrupted create may have left a key only its tag identifies.
        let listed = provider.list_keys().await.map_err(Error::Revoke)?;
        ids.extend(
            listed
                .into_iter()
                .filter(|k| tag::tagged_uid(&k.name) == Some(uid.as_str()))
                .map(|k| k.id),
        );
    }
    ids.sort();
    ids.dedup();
    for id in &ids {
        match provider.delete_key(id).await {
            Ok(()) => {}
            Err(keysmith_providers::Error::Unsupported(what)) if imported => {
                let note = format!(
                    "the provider does not allow {what}: imported key {id} stays; revoke it in the provider's console"
                );
                announce(ctx, &key, EventType::Normal, Reason::RevokeUnsupported, note).await;
                return Ok(Action::await_change());
            }
            Err(err) => return Err(Error::Revoke(err)),
        }
    }
    if !ids.is_empty() {
        let note = format!("provider key(s) revoked: {}", ids.join(", "));
        announce(ctx, &key, EventType::Normal, Reason::KeyRevoked, note).await;
    }
    Ok(Action::await_change())
}

/// Records `ids` on the hub (one annotation per ApiKey), with a Warning Event there: unlike the
/// ApiKey's own Event, it outlives the deletion.
async fn leave_on_hub(ctx: &Context, key: &ApiKey, hub: &ModelHub, ids: &[String]) -> Result<()> {
    let ns = key.namespace().unwrap_or_default();
    let Some((annotation, value)) =
        plan::unrevoked::record(&key.uid().unwrap_or_default(), &ns, &key.name_any(), ids)
    else {
        return Ok(());
    };
    let patch = Patch::Merge(json!({"metadata": {"annotations": {annotation: value}}}));
    let params = PatchParams::default();
    let name = hub.name_any();
    let result = if key.spec.hub_ref.is_cluster() {
        Api::<ClusterModelHub>::all(ctx.client.clone())
            .patch(&name, &params, &patch)
            .await
            .map(|_| ())
    } else {
        Api::<ModelHub>::namespaced(ctx.client.clone(), &ns)
            .patch(&name, &params, &patch)
            .await
            .map(|_| ())
    };
    match result {
        // Gone meanwhile (a namespace deletion): the log line, Event and metric are what remains.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map_err(Error::kube("record unrevoked keys on the hub")),
    }?;
    let note = format!(
        "ApiKey {ns}/{} was deleted while the credential was missing: provider key(s) {} stay live until revoked",
        key.name_any(),
        ids.join(", ")
    );
    if key.spec.hub_ref.is_cluster() {
        if let Some(cluster_hub) = ctx.cluster.hub(&name) {
            ctx.event(
                &*cluster_hub,
                EventType::Warning,
                Reason::KeysUnrevoked.as_str(),
                "Delete",
                note,
            )
            .await;
        }
    } else {
        ctx.event(
            hub,
            EventType::Warning,
            Reason::KeysUnrevoked.as_str(),
            "Delete",
            note,
        )
        .await;
    }
    Ok(())
}

/// An Event of the deletion.
async fn announce(ctx: &Context, key: &ApiKey, type_: EventType, reason: Reason, note: String) {
    ctx.event(key, type_, reason.as_str(), "Delete", note).await;
}
