//! When a key rotates, how long its predecessor lives on, and when restart targets roll.

use jiff::Timestamp;
use keysmith_api::{
    ApiKey,
    well_known::{DEFAULT_ROTATION_OVERLAP, ROTATE_ANNOTATION},
};
use kube::ResourceExt;

/// Why a rotation is due now, if it is: a new `keysmith.dev/rotate` value, or the schedule.
pub fn rotation_due(
    key: &ApiKey,
    status: &keysmith_api::ApiKeyStatus,
    now: Timestamp,
) -> Option<&'static str> {
    let rotation = status.rotation.clone().unwrap_or_default();
    if rotation.previous_key_id.is_some() {
        // One rotation at a time: the next waits until the previous key's overlap has ended.
        return None;
    }
    if let Some(token) = key.annotations().get(ROTATE_ANNOTATION)
        && rotation.last_requested_token.as_ref() != Some(token)
    {
        return Some("requested");
    }
    let every = key
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.every.as_deref())
        .and_then(keysmith_core::duration::parse)?;
    let since = rotation
        .last_rotated_at
        .as_ref()
        .and_then(|t| t.get().ok())
        .or_else(|| key.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let due = since
        .checked_add(jiff::SignedDuration::try_from(every).ok()?)
        .ok()?;
    (now >= due).then_some("scheduled")
}

/// How long the previous key stays valid after a rotation.
pub fn rotation_overlap(key: &ApiKey) -> std::time::Duration {
    key.spec
        .rotation
        .as_ref()
        .and_then(|r| r.overlap.as_deref())
        .and_then(keysmith_core::duration::parse)
        .unwrap_or(DEFAULT_ROTATION_OVERLAP)
}

/// When the next scheduled rotation falls, counted from `rotated_at`.
pub fn next_rotation(key: &ApiKey, rotated_at: Timestamp) -> Option<Timestamp> {
    let every = key
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.every.as_deref())
        .and_then(keysmith_core::duration::parse)?;
    rotated_at
        .checked_add(jiff::SignedDuration::try_from(every).ok()?)
        .ok()
}

/// What to do with `spec.rotation.restartTargets` after a sync.
#[derive(Debug, PartialEq, Eq)]
pub enum RestartPlan {
    /// Nothing: no targets, no key yet, or the targets already run the current key.
    Nothing,
    /// The first key seen with targets configured: remember it without restarting anyone (workloads
    /// started after the Secret existed already read it).
    Remember(String),
    /// The key changed since the targets were last rolled: restart each once, then remember it.
    Restart(String),
}

/// Decides whether the restart targets must roll, from the key fingerprint in status.
pub fn restart_plan(key: &ApiKey, status: &keysmith_api::ApiKeyStatus) -> RestartPlan {
    let targets = key
        .spec
        .rotation
        .as_ref()
        .map(|r| r.restart_targets.len())
        .unwrap_or(0);
    let (Some(current), true) = (status.fingerprint.clone(), targets > 0) else {
        return RestartPlan::Nothing;
    };
    match status.rotation.as_ref().and_then(|r| r.restarted_for.as_deref()) {
        Some(done) if done == current => RestartPlan::Nothing,
        Some(_) => RestartPlan::Restart(current),
        None => RestartPlan::Remember(current),
    }
}
