//! Provider keys that deleted ApiKeys left live on their hub (its credential was missing then): the
//! hub revokes them once its credential works again, and reports them until then.

use std::sync::Arc;

use keysmith_api::{KeyCounts, ModelHub, reasons::Reason};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};
use serde_json::{Map, Value, json};
use tracing::warn;

use super::{Context, Error, Result};
use crate::plan::unrevoked::{Unrevoked, ids, recorded};

/// Revokes the keys recorded on `hub` if its credential is verified (`ready`); returns the records
/// still open and the annotations of those settled.
pub(super) async fn settle(hub: &ModelHub, ctx: &Arc<Context>, ready: bool) -> (Vec<Unrevoked>, Vec<String>) {
    let records = recorded(hub.annotations());
    if records.is_empty() || !ready {
        return (records, Vec::new());
    }
    let Ok(provider) = ctx.providers.client(&ctx.client, hub, true).await else {
        return (records, Vec::new());
    };
    let (mut open, mut done) = (Vec::new(), Vec::new());
    for record in records {
        let mut revoked = true;
        for id in &record.ids {
            match provider.delete_key(id).await {
                Ok(()) | Err(keysmith_providers::Error::NotFound { .. }) => {}
                Err(err) => {
                    warn!(error = %err, id = %id, "could not revoke a key a deleted ApiKey left");
                    revoked = false;
                }
            }
        }
        if revoked {
            let note = format!(
                "revoked provider key(s) {} left by deleted ApiKey {}",
                record.ids.join(", "),
                record.api_key
            );
            ctx.event(
                hub,
                EventType::Normal,
                Reason::KeyRevoked.as_str(),
                "Verify",
                note,
            )
            .await;
            done.push(record.annotation);
        } else {
            open.push(record);
        }
    }
    (open, done)
}

/// Puts the open records into the hub's key counts.
pub(super) fn report(keys: &mut Option<KeyCounts>, open: &[Unrevoked]) {
    let ids = ids(open);
    if ids.is_empty() && keys.is_none() {
        return;
    }
    let counts = keys.get_or_insert_with(KeyCounts::default);
    counts.unrevoked = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    counts.unrevoked_ids = ids;
}

/// Removes the settled records' annotations from the hub.
pub(super) async fn forget<K>(api: &Api<K>, name: &str, done: &[String]) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if done.is_empty() {
        return Ok(());
    }
    let annotations: Map<String, Value> = done.iter().map(|a| (a.clone(), Value::Null)).collect();
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
    )
    .await
    .map_err(Error::kube("remove settled unrevoked-key records"))?;
    Ok(())
}
