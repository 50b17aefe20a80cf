//! ApiKey reconciler: finalizer → sync (see `sync.rs`) → conditions and status → requeue.
//! Cleanup revokes the provider key unless `deletionPolicy: Orphan`; the Secret goes with its owner
//! through garbage collection.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use tracing::{info, instrument, warn};

use super::{
    Context, Error, Result, get_cached,
    providers::HubClientError,
    requeue,
    sync::{self, Synced, Target},
};
use crate::metrics::KeyFigures;
use crate::plan;
use keysmith_api::{
    ApiKey, ApiKeyStatus, DeletionPolicy, Enforcement, FIELD_MANAGER, ModelHub, OnLimitExceeded, conditions,
};

/// Controller name in metrics.
const CONTROLLER: &str = "apikey";

/// How long a reconcile that met an out-of-date cache waits for the cache to catch up.
const CATCH_UP: Duration = Duration::from_secs(1);

/// Finalizer guarding the provider-side key.
pub const FINALIZER: &str = "apikeys.keysmith.dev/cleanup";

/// Entry point for the controller runtime.
#[instrument(skip(key, ctx), fields(namespace = key.namespace().unwrap_or_default(), name = %key.name_any()))]
pub async fn reconcile(key: Arc<ApiKey>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<ApiKey> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = key.uid().unwrap_or_default();
    if ctx.is_superseded(&uid, key.resource_version().as_deref()) {
        // The cache has not caught up with the last reconcile's final write; its event starts no
        // reconcile of its own (see `triggers`), so look again once it has arrived.
        return Ok(requeue(CATCH_UP));
    }
    let guarded = key.finalizers().iter().any(|f| f == FINALIZER);
    if key.metadata.deletion_timestamp.is_some() {
        if guarded {
            cleanup(key.clone(), &ctx).await?;
            release(&api, &key).await?;
        }
        return Ok(Action::await_change());
    }
    if !guarded && !plan::first_key_pending(&key) {
        guard(&api, &key).await?;
        return Ok(Action::await_change());
    }
    let version = key.resource_version();
    let action = apply(key, &ctx, &api).await;
    ctx.settle_writes(&uid, version.as_deref());
    action
}

/// Adds the finalizer before keysmith touches anything at the provider. A first key gets it together
/// with its create marker instead, one write fewer (see `sync::issue`).
async fn guard(api: &Api<ApiKey>, key: &ApiKey) -> Result<()> {
    let body = serde_json::json!({
        "apiVersion": <ApiKey as kube::Resource>::api_version(&()),
        "kind": <ApiKey as kube::Resource>::kind(&()),
        "metadata": { "name": key.name_any(), "finalizers": [FINALIZER] },
    });
    api.patch(
        &key.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube("add the finalizer"))?;
    Ok(())
}

/// Removes the finalizer once cleanup is done. A merge patch conditional on the version cleanup
/// worked from, so that a finalizer another party added meanwhile is kept (and any manager's copy of
/// ours is removed, which a server-side apply would not do).
async fn release(api: &Api<ApiKey>, key: &ApiKey) -> Result<()> {
    let rest: Vec<&String> = key.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    let body = serde_json::json!({
        "metadata": { "resourceVersion": key.resource_version(), "finalizers": rest },
    });
    api.patch(&key.name_any(), &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(Error::kube("remove the finalizer"))?;
    Ok(())
}

/// Requeue after an error that escaped `apply` (Kubernetes API failures).
pub fn error_policy(key: Arc<ApiKey>, err: &Error, ctx: Arc<Context>) -> Action {
    warn!(error = %err, reason = err.reason(), name = %key.name_any(), "ApiKey reconcile failed");
    ctx.metrics.reconcile_error(CONTROLLER, err.reason());
    let uid = key.uid().unwrap_or_default();
    requeue(ctx.backoff(&uid, ctx.settings.default_usage_interval))
}

async fn apply(key: Arc<ApiKey>, ctx: &Arc<Context>, api: &Api<ApiKey>) -> Result<Action> {
    // Events that change none of the inputs (above all, keysmith's own status writes) must not poll the
    // provider again before the object is due: otherwise a key whose spend moves would loop.
    let (hub, secret) = read_inputs(&key, ctx).await?;
    let spec_and_hub = inputs_fingerprint(&key, hub.as_ref());
    let inputs = format!("{spec_and_hub}|{:?}", secret_version(&secret));
    let uid = key.uid().unwrap_or_default();
    if let Some(wait) = ctx.not_due(&uid, &inputs) {
        return Ok(requeue(wait));
    }
    let before = key.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let secret_before = ctx.secret_written(&uid);
    let outcome = sync::sync(&key, ctx, &mut status, hub, secret).await;
    if let Err(problem) = &outcome
        && problem.is_stale()
    {
        // Decided from an out-of-date copy: a status worked out from it could wipe out what a newer
        // reconcile recorded (the key id above all). Look again once the cache has caught up.
        info!(
            reason = problem.reason(),
            "the ApiKey changed meanwhile; retrying from the newer version"
        );
        return Ok(requeue(CATCH_UP));
    }
    let now = ctx.now();
    let generation = key.metadata.generation;
    status.observed_generation = generation;

    let delay = match &outcome {
        Ok(synced) => {
            ctx.succeeded(&uid);
            report_synced(&key, synced, &mut status, &now);
            let ns = key.namespace().ok_or(Error::MissingNamespace)?;
            super::restart::restart_targets(&key, ctx, &ns, &mut status).await?;
            next_wake(usage_interval(ctx, Some(&synced.hub)), &status, ctx.clock.now())
        }
        Err(problem) => {
            ctx.metrics.reconcile_error(CONTROLLER, problem.reason());
            let transient = problem.is_transient();
            conditions::set(
                &mut status.conditions,
                conditions::READY,
                false,
                problem.reason(),
                problem.to_string(),
                generation,
                &now,
            );
            if transient {
                conditions::set(
                    &mut status.conditions,
                    conditions::RECONCILING,
                    true,
                    problem.reason(),
                    "retrying",
                    generation,
                    &now,
                );
                conditions::remove(&mut status.conditions, conditions::STALLED);
            } else {
                conditions::set(
                    &mut status.conditions,
                    conditions::STALLED,
                    true,
                    problem.reason(),
                    problem.to_string(),
                    generation,
                    &now,
                );
                conditions::remove(&mut status.conditions, conditions::RECONCILING);
            }
            ctx.backoff(&uid, ctx.settings.default_usage_interval)
        }
    };

    publish_gauges(&key, ctx, &status);
    announce_transitions(&key, ctx, &before, &status).await;
    // Status is written only when something changed, so a quiet key costs no writes.
    if status != before {
        ctx.write_key_status(api, &key, None, &status).await?;
    }
    // keysmith's own Secret write is no new input: the reconcile its event brings can rest.
    let written = ctx.secret_written(&uid);
    let inputs = match written {
        Some(version) if written != secret_before => {
            format!("{spec_and_hub}|{:?}", Some(version.as_str()))
        }
        _ => inputs,
    };
    ctx.remember(&uid, inputs, delay);
    Ok(requeue(delay))
}

/// The version of the Secret a reconcile read, one of its inputs; none when it read none.
fn secret_version(target: &Target) -> Option<&str> {
    match target {
        Target::Read(secret) => secret
            .as_ref()
            .and_then(|s| s.metadata.resource_version.as_deref()),
        Target::Unread => None,
    }
}

/// What a reconcile depends on besides time and the Secret: the spec (generation), the rotate
/// request and the hub's spec and readiness. Status and usage are outputs, so they are left out.
fn inputs_fingerprint(key: &ApiKey, hub: Option<&ModelHub>) -> String {
    let hub_state = hub.map(hub_inputs);
    format!(
        "{:?}|{:?}|{:?}",
        key.metadata.generation,
        key.annotations().get(keysmith_api::well_known::ROTATE_ANNOTATION),
        hub_state,
    )
}

/// What an ApiKey's reconcile depends on in its hub: the spec (generation), and whether and why the
/// hub is Ready.
pub(super) fn hub_inputs(hub: &ModelHub) -> String {
    let ready = hub
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, conditions::READY));
    format!(
        "{:?}/{:?}",
        hub.metadata.generation,
        ready.map(|c| (&c.status, &c.reason))
    )
}

/// The target Secret. A cache that missed keysmith's own write would make a held key look lost and
/// have it replaced, so the watch cache is trusted only when it shows the version keysmith last
/// wrote (a later change by someone else brings its own reconcile), or when keysmith never wrote
/// one; otherwise the read goes to etcd. An ApiKey that never had a key, nor the marker of an
/// attempt, has no Secret of keysmith's that a cache could miss: its Secret is looked up later, with
/// the marker's write (see [`Target::Unread`]).
async fn read_secret(key: &ApiKey, ctx: &Context, ns: &str) -> Result<Target> {
    if plan::first_key_pending(key)
        && !key
            .annotations()
            .contains_key(keysmith_api::well_known::ISSUING_ANNOTATION)
    {
        return Ok(Target::Unread);
    }
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    let name = plan::secret_name(key);
    if let Some(written) = ctx.secret_written(&key.uid().unwrap_or_default()) {
        let cached = get_cached(&secrets, &name)
            .await
            .map_err(Error::kube("get Secret"))?;
        if let Some(secret) = cached
            && secret.metadata.resource_version.as_deref() == Some(written.as_str())
        {
            return Ok(Target::Read(Some(secret)));
        }
    }
    let secret = secrets.get_opt(&name).await.map_err(Error::kube("get Secret"))?;
    Ok(Target::Read(secret))
}

/// The hub and the Secret, read once per reconcile: for the fingerprint, and then for the sync.
async fn read_inputs(key: &ApiKey, ctx: &Context) -> Result<(Option<ModelHub>, Target)> {
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let (hub, secret) = futures::try_join!(
        async {
            // From memory, or else the watch cache: never older than the watch event that brought
            // this reconcile. A hub a moment stale is harmless; its next change triggers another
            // reconcile.
            if let Some(hub) = ctx.hubs.get(&ns, &key.spec.hub_ref.name) {
                return Ok(Some(ModelHub::clone(&hub)));
            }
            let hubs = Api::<ModelHub>::namespaced(ctx.client.clone(), &ns);
            get_cached(&hubs, &key.spec.hub_ref.name)
                .await
                .map_err(Error::kube("get ModelHub"))
        },
        read_secret(key, ctx, &ns),
    )?;
    Ok((hub, secret))
}

fn report_synced(
    key: &ApiKey,
    synced: &Synced,
    status: &mut ApiKeyStatus,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    let generation = key.metadata.generation;
    let caps = &synced.caps;
    status.effective_limits = Some(keysmith_limits::effective_limits(key, &synced.hub, caps));
    let breaches = keysmith_limits::breaches(key, &synced.hub, &synced.usage, caps);
    status.usage = Some(synced.usage.clone());
    let resets = synced
        .usage
        .window_resets_at
        .as_deref()
        .map(|t| format!("; the window resets at {t}"))
        .unwrap_or_default();
    let summary = breaches
        .iter()
        .map(|b| format!("{}: {} ({:?})", b.limit, b.message, b.enforcement))
        .collect::<Vec<_>>()
        .join("; ");
    if breaches.is_empty() {
        conditions::set(
            &mut status.conditions,
            conditions::LIMIT_EXCEEDED,
            false,
            "WithinLimits",
            "usage is within every enforced limit",
            generation,
            now,
        );
    } else {
        let reason = if breaches.iter().any(|b| b.limit == "budget") {
            "BudgetExceeded"
        } else {
            "RateLimitExceeded"
        };
        conditions::set(
            &mut status.conditions,
            conditions::LIMIT_EXCEEDED,
            true,
            reason,
            format!("{summary}{resets}"),
            generation,
            now,
        );
    }
    // Rejected at the limit by whoever enforces it: the key does not work until the window resets.
    let rejected = key.spec.on_limit_exceeded.unwrap_or_default() == OnLimitExceeded::Reject
        && breaches
            .iter()
            .any(|b| matches!(b.enforcement, Enforcement::Provider | Enforcement::Operator));
    let expired_at = status
        .expires_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .filter(|t| *t <= now.0);
    match (&status.expires_at, expired_at) {
        (_, Some(at)) => conditions::set(
            &mut status.conditions,
            conditions::EXPIRED,
            true,
            "KeyExpired",
            format!("the key expired at {at}; set a later spec.expiresAt to issue a new one"),
            generation,
            now,
        ),
        (Some(at), None) => conditions::set(
            &mut status.conditions,
            conditions::EXPIRED,
            false,
            "NotExpired",
            format!("the key expires at {at}"),
            generation,
            now,
        ),
        (None, None) => conditions::remove(&mut status.conditions, conditions::EXPIRED),
    }
    let disabled = key.spec.disabled.unwrap_or(false);
    let revoked = status.suspended.is_some();
    // A disabled or expired key does not work, so it is not Ready.
    let (ready, reason, message) = if expired_at.is_some() {
        (false, "Expired", "the key has expired; its Secret is kept")
    } else if disabled && caps.disable == Enforcement::Unsupported {
        // Not Ready either: the spec asks for something that is not so, and saying Ready would hide it.
        (
            false,
            "DisableUnsupported",
            "spec.disabled is true, but keysmith cannot disable or revoke this key at the provider: THE KEY STILL WORKS; delete the ApiKey or revoke the key at the provider",
        )
    } else if disabled && revoked {
        (
            false,
            "KeyDisabled",
            "the provider cannot disable keys, so keysmith revoked the key; enabling it again issues a new key; its Secret is kept",
        )
    } else if disabled {
        (
            false,
            "KeyDisabled",
            "the key is disabled at the provider as the spec asks; its Secret is kept",
        )
    } else if rejected && revoked {
        (
            false,
            "LimitExceeded",
            "the provider cannot disable keys, so keysmith revoked the key until its limit's window resets, then issues a new one (onLimitExceeded: Reject); see the LimitExceeded condition",
        )
    } else if rejected {
        (
            false,
            "LimitExceeded",
            "the key is refused until its limit's window resets (onLimitExceeded: Reject); see the LimitExceeded condition",
        )
    } else {
        (true, "KeyReady", "the Secret holds a key the provider accepts")
    };
    conditions::set(
        &mut status.conditions,
        conditions::READY,
        ready,
        reason,
        message,
        generation,
        now,
    );
    conditions::remove(&mut status.conditions, conditions::RECONCILING);
    conditions::remove(&mut status.conditions, conditions::STALLED);
}

fn publish_gauges(key: &ApiKey, ctx: &Context, status: &ApiKeyStatus) {
    let figures = KeyFigures {
        spend_usd: status.usage.as_ref().and_then(|u| u.current_usd),
        budget_usd: status
            .effective_limits
            .as_ref()
            .and_then(|l| l.budget.as_ref())
            .map(|b| b.limit_usd),
        limit_exceeded: conditions::is_true(&status.conditions, conditions::LIMIT_EXCEEDED),
        ready: conditions::is_true(&status.conditions, conditions::READY),
        expires_at: status
            .expires_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second()),
    };
    ctx.metrics
        .set_key(&key.namespace().unwrap_or_default(), &key.name_any(), &figures);
}

/// Publishes one Event per condition transition (not per reconcile).
async fn announce_transitions(key: &ApiKey, ctx: &Context, before: &ApiKeyStatus, after: &ApiKeyStatus) {
    for type_ in [conditions::READY, conditions::LIMIT_EXCEEDED] {
        let old = conditions::get(&before.conditions, type_);
        let Some(new) = conditions::get(&after.conditions, type_) else {
            continue;
        };
        let changed = old.is_none_or(|o| o.status != new.status || o.reason != new.reason);
        // A key that starts out Ready, or within its limits, is the expected outcome of creating it:
        // the conditions say so without an Event per ApiKey.
        let expected_start = if type_ == conditions::READY {
            "True"
        } else {
            "False"
        };
        if !changed || (old.is_none() && new.status == expected_start) {
            continue;
        }
        let warning = (type_ == conditions::READY && new.status == "False" && new.reason != "KeyDisabled")
            || (type_ == conditions::LIMIT_EXCEEDED && new.status == "True");
        ctx.event(key, warning, &new.reason, "Reconcile", new.message.clone())
            .await;
    }
}

/// The usage interval, or sooner when the previous key's overlap ends or a rotation falls due.
fn next_wake(usage: Duration, status: &ApiKeyStatus, now: jiff::Timestamp) -> Duration {
    let rotation = status.rotation.clone().unwrap_or_default();
    [
        rotation.previous_key_revoke_at,
        rotation.next_rotation_at,
        status.expires_at.clone(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
    // Past deadlines were handled by this reconcile; only future ones bring the next one forward.
    .filter(|t| *t > now)
    .map(|t| t.duration_since(now).unsigned_abs() + Duration::from_millis(200))
    .fold(usage, Duration::min)
}

fn usage_interval(ctx: &Context, hub: Option<&ModelHub>) -> Duration {
    let base = hub
        .and_then(|h| h.spec.usage_refresh_interval.as_deref())
        .and_then(keysmith_core::duration::parse)
        .unwrap_or(ctx.settings.default_usage_interval);
    plan::jittered(base.as_secs().max(1), rand::random::<f64>())
}

async fn cleanup(key: Arc<ApiKey>, ctx: &Arc<Context>) -> Result<Action> {
    ctx.metrics
        .forget_key(&key.namespace().unwrap_or_default(), &key.name_any());
    ctx.forget(&key.uid().unwrap_or_default());
    let policy = key.spec.deletion_policy.unwrap_or_default();
    let status = key.status.clone().unwrap_or_default();
    let imported = key.spec.import.is_some();
    // An imported key is revoked only when keysmith knows its record at the provider (a `keyId`) and
    // manages the hub with a credential; otherwise it cannot tell which key to revoke.
    let anonymous_import = imported && status.key_id.is_none();
    if policy == DeletionPolicy::Orphan || anonymous_import {
        info!(?policy, imported, "leaving the provider key in place");
        return Ok(Action::await_change());
    }
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let hub = Api::<ModelHub>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&key.spec.hub_ref.name)
        .await
        .map_err(Error::kube("get ModelHub"))?;
    let provider = match hub {
        Some(hub) => match ctx.providers.client(&ctx.client, &hub, true).await {
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
        // block the namespace. Say so loudly instead.
        let ids = status.key_id.clone().unwrap_or_else(|| "none".into());
        ctx.event(
            &*key,
            true,
            "RevokeSkipped",
            "Delete",
            format!("hub or credentials missing: provider key {ids} could not be revoked; revoke it at the provider"),
        )
        .await;
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
                .filter(|k| keysmith_providers::tag::tagged_uid(&k.name) == Some(uid.as_str()))
                .map(|k| k.id),
        );
    }
    ids.sort();
    ids.dedup();
    for id in &ids {
        match provider.delete_key(id).await {
            Ok(()) => {}
            Err(keysmith_providers::Error::Unsupported(what)) if imported => {
                ctx.event(
                    &*key,
                    false,
                    "RevokeUnsupported",
                    "Delete",
                    format!("the provider does not allow {what}: imported key {id} stays; revoke it in the provider's console"),
                )
                .await;
                return Ok(Action::await_change());
            }
            Err(err) => return Err(Error::Revoke(err)),
        }
    }
    if !ids.is_empty() {
        ctx.event(
            &*key,
            false,
            "KeyRevoked",
            "Delete",
            format!("provider key(s) revoked: {}", ids.join(", ")),
        )
        .await;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keysmith_api::RotationStatus;

    #[test]
    fn the_next_wake_is_the_nearest_future_deadline_capped_by_the_usage_interval() {
        let in_10s = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(10)).to_string();
        let ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(2)).to_string();
        let status = ApiKeyStatus {
            expires_at: Some(ago),
            rotation: Some(RotationStatus {
                previous_key_revoke_at: Some(in_10s),
                ..Default::default()
            }),
            ..Default::default()
        };
        let wake = next_wake(Duration::from_secs(300), &status, jiff::Timestamp::now());
        assert!(
            wake > Duration::from_secs(9) && wake <= Duration::from_secs(11),
            "{wake:?}"
        );
        assert_eq!(
            next_wake(Duration::from_secs(5), &status, jiff::Timestamp::now()),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_wake(
                Duration::from_secs(300),
                &ApiKeyStatus::default(),
                jiff::Timestamp::now()
            ),
            Duration::from_secs(300)
        );
    }
}
