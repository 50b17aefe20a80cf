//! A time in status that cannot be read is reported, not taken as absent: keysmith stops with
//! `MalformedStatus` naming the field, and carries on once the field is corrected.

use crate::support::operator::{Env, is_ready, key_ready};
use keysmith_api::{ApiKey, well_known::ROTATE_ANNOTATION};
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn an_unreadable_status_time_is_reported_by_field_until_it_is_corrected() {
    let env = Env::with_operator("badtime").await;
    env.apply_hub("or", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "or"}})).await;
    let ready = env.wait_key("k", "Ready", is_ready).await;
    let key_id = ready.status.as_ref().and_then(|s| s.key_id.clone());
    let api = env.ns.api::<ApiKey>();
    let by_hand = PatchParams::default();
    api.patch_status(
        "k",
        &by_hand,
        &Patch::Merge(json!({"status": {"expiresAt": "next tuesday"}})),
    )
    .await
    .unwrap();
    // Status is no input of a reconcile; a new value of the rotate annotation is.
    api.patch(
        "k",
        &by_hand,
        &Patch::Merge(json!({"metadata": {"annotations": {ROTATE_ANNOTATION: "r1"}}})),
    )
    .await
    .unwrap();
    let stopped = env
        .wait_key("k", "Ready=False MalformedStatus", |k| {
            key_ready(k).is_some_and(|(s, r)| s == "False" && r == "MalformedStatus")
        })
        .await;
    let message = stopped
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("status.expiresAt"), "{message}");
    assert!(message.contains("next tuesday"), "{message}");
    assert_eq!(
        stopped.status.as_ref().and_then(|s| s.key_id.clone()),
        key_id,
        "nothing was decided from the unreadable status"
    );

    api.patch_status(
        "k",
        &by_hand,
        &Patch::Merge(json!({"status": {"expiresAt": null}})),
    )
    .await
    .unwrap();
    let back = env.wait_key("k", "Ready again", is_ready).await;
    assert!(back.status.as_ref().and_then(|s| s.expires_at.as_ref()).is_none());
}
