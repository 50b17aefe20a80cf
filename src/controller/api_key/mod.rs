//! The ApiKey controller, one pipeline per reconcile:
//!
//! 1. **observe** ([`observe`]): the hub, the target Secret, the provider client and, for an import,
//!    the value to deliver;
//! 2. **decide** ([`decide`]): pure, the next [`Step`](decide::Step) from what was observed;
//! 3. **act** ([`act`]): carries the step out, the crash-safe create protocol included, and asks
//!    `decide` again until a final step is done;
//! 4. **report** ([`report`]): pure, the conditions, usage and limits the outcome puts in status.
//!
//! Status is written once at the end, and only when it changed. Deletion revokes the provider key
//! unless `deletionPolicy: Orphan` ([`cleanup`]); the Secret goes with its owner through garbage
//! collection.

mod act;
mod cleanup;
mod create;
mod decide;
mod gateway;
mod observe;
mod problem;
mod report;

use std::{sync::Arc, time::Duration};

use keysmith_api::{
    ApiKey, ApiKeyStatus, ClusterModelHub, ModelHub, conditions,
    well_known::{APIKEY_FINALIZER, HUB_FINALIZER, ROTATE_ANNOTATION},
};
use kube::{Api, ResourceExt, runtime::controller::Action};
use tracing::{info, instrument};

pub use gateway::UsageCache;
pub use problem::Problem;

use self::observe::Target;
use super::{
    Context, Error, Result, finalizer,
    hub_ref::{self, Access, Resolved},
    requeue,
};
use crate::{
    metrics::KeyFigures,
    plan::{self, quota::Claim},
};

/// Result of a sync.
type SyncResult<T> = std::result::Result<T, Problem>;

/// Controller name in metrics.
const CONTROLLER: &str = "apikey";

/// How long a reconcile that met an out-of-date cache waits for the cache to catch up.
const CATCH_UP: Duration = Duration::from_secs(1);

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
    let guarded = finalizer::present(&*key, APIKEY_FINALIZER);
    if key.metadata.deletion_timestamp.is_some() {
        if guarded {
            cleanup::cleanup(key.clone(), &ctx).await?;
            finalizer::remove(&api, &*key, APIKEY_FINALIZER).await?;
            if key.spec.hub_ref.is_cluster() {
                // A slot of the namespace's quota is free: the hub admits whoever waits for it.
                ctx.cluster.wake_hub(&key.spec.hub_ref.name);
            }
        }
        return Ok(Action::await_change());
    }
    if !guarded && !plan::first_key_pending(&key) {
        // Before keysmith touches anything at the provider. A first key gets the finalizer together
        // with its create marker instead, one write fewer (see `act`).
        return match finalizer::add(&api, &*key, APIKEY_FINALIZER, None).await {
            Ok(_) => Ok(Action::await_change()),
            Err(e) if e.is_conflict() => Ok(requeue(CATCH_UP)),
            Err(e) => Err(e),
        };
    }
    if ctx
        .cluster
        .namespace_terminating(&key.namespace().unwrap_or_default())
    {
        // Everything here is about to be deleted, its Secrets first perhaps: a Secret gone now means
        // no lost key to replace. The ApiKey's own deletion (above) revokes its keys.
        return Ok(Action::await_change());
    }
    let version = key.resource_version();
    let action = apply(key, &ctx, &api).await;
    ctx.settle_writes(&uid, version.as_deref());
    action
}

/// Requeue after an error that escaped `apply` (Kubernetes API failures).
pub fn error_policy(key: Arc<ApiKey>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::log_failure("ApiKey", &key.name_any(), err);
    if err.is_routine() {
        return requeue(crate::controller::ROUTINE_RETRY);
    }
    ctx.metrics.reconcile_error(CONTROLLER, err.reason());
    let uid = key.uid().unwrap_or_default();
    requeue(ctx.backoff(&uid, ctx.settings.default_usage_interval))
}

async fn apply(key: Arc<ApiKey>, ctx: &Arc<Context>, api: &Api<ApiKey>) -> Result<Action> {
    // Events that change none of the inputs (above all, keysmith's own status writes) must not poll the
    // provider again before the object is due: otherwise a key whose spend moves would loop. The
    // Secret's version is known from keysmith's own writes and the Secret watch, so a reconcile with
    // nothing to do asks the API server for nothing.
    let hub = hub_ref::resolve(&key, ctx).await?;
    if let Some(resolved) = &hub {
        match protect_hub(&key, ctx, &resolved.hub).await {
            // A conflict: the hub changed meanwhile, most likely another key's reconcile (or the hub's
            // own) adding the same finalizer. Waiting for it would hold up every key of a new hub.
            Err(e) if !e.is_conflict() => return Err(e),
            _ => {}
        }
    }
    let spec_and_hub = inputs_fingerprint(&key, hub.as_ref());
    let uid = key.uid().unwrap_or_default();
    let inputs = || format!("{spec_and_hub}|{:?}", ctx.secret_seen(&uid));
    if let Some(wait) = ctx.not_due(&uid, &inputs()) {
        return Ok(requeue(wait));
    }
    let target = observe::secret(&key, ctx).await?;
    let before = key.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let outcome = sync(&key, ctx, &mut status, hub.as_ref(), target).await;
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
    status.observed_generation = key.metadata.generation;
    let delay = match (&outcome, &hub) {
        (Ok(()), Some(Resolved { hub, .. })) => {
            ctx.succeeded(&uid);
            let ns = key.namespace().ok_or(Error::MissingNamespace)?;
            super::restart::restart_targets(&key, ctx, &ns, &mut status).await?;
            report::next_wake(usage_interval(ctx, hub), &status, ctx.clock.now())
        }
        (Err(problem), _) => {
            ctx.metrics.reconcile_error(CONTROLLER, problem.reason());
            report::failed(&key, problem, &mut status, &now);
            if matches!(problem, Problem::QuotaExceeded(_)) {
                // Nothing changes at the provider while a key waits for room; a freed slot wakes it.
                ctx.settings.default_usage_interval
            } else {
                ctx.backoff(&uid, ctx.settings.default_usage_interval)
            }
        }
        (Ok(()), None) => ctx.settings.default_usage_interval,
    };

    publish_gauges(&key, ctx, &status);
    for (kind, reason, message) in report::transitions(&before, &status) {
        ctx.event(&*key, kind, &reason, "Reconcile", message).await;
    }
    // Status is written only when something changed, so a quiet key costs no writes.
    if status != before {
        ctx.write_key_status(api, &key, None, &status).await?;
        if key.spec.hub_ref.is_cluster() {
            // Its figures (keys, allocation, spend) are the cluster hub's status.
            ctx.cluster.wake_hub(&key.spec.hub_ref.name);
        }
    }
    // Taken after the sync: keysmith's own Secret write is no new input.
    ctx.remember(&uid, inputs(), delay);
    Ok(requeue(delay))
}

/// Observes, decides and acts until the key matches its spec (or cannot), then reports into
/// `status`. Writes status itself only where the create protocol requires it.
async fn sync(
    key: &ApiKey,
    ctx: &Arc<Context>,
    status: &mut ApiKeyStatus,
    hub: Option<&Resolved>,
    target: Target,
) -> SyncResult<()> {
    let name = || key.spec.hub_ref.name.clone();
    let Some(Resolved { hub, access }) = hub else {
        return Err(if key.spec.hub_ref.is_cluster() {
            Problem::ClusterHubNotFound(name())
        } else {
            Problem::HubNotFound(name())
        });
    };
    // Refusals come before any provider call: nothing is minted for a key that may not have one.
    if hub.metadata.deletion_timestamp.is_some() && !Claim::of(key, hub).holds_key {
        let kind = if key.spec.hub_ref.is_cluster() {
            "ClusterModelHub"
        } else {
            "ModelHub"
        };
        return Err(Problem::HubDeleting(format!("{kind} {:?}", name())));
    }
    let denied = match access {
        Access::Allowed => false,
        Access::OverQuota(why) => return Err(Problem::QuotaExceeded(why.clone())),
        Access::NotAllowed if !Claim::of(key, hub).holds_key => return Err(Problem::HubNotAllowed(name())),
        Access::NotAllowed => true,
    };
    let run = observe::gather(key, ctx, hub, target, status, denied).await?;
    status.secret_name = Some(plan::secret_name(key));
    let caps = run.caps.clone();
    let delivered = run.sync(status).await?;
    if let Some(held) = delivered.through_gateway {
        status.delivery = held.then_some(keysmith_api::Delivery::Gateway);
    }
    let now = ctx.clock.now();
    let mut usage = match delivered.usage {
        Some(usage) => {
            keysmith_limits::usage_status(&usage, keysmith_limits::budget_reset_in_force(key, hub), now)
        }
        // No live key on purpose (a suspension): nothing new to report.
        None => keysmith_limits::usage_while_suspended(status, now),
    };
    if status.delivery == Some(keysmith_api::Delivery::Gateway)
        && let Some(settings) = &ctx.settings.gateway
        && let Some(metered) = ctx.gateway_usage.figures(settings, key).await
    {
        usage = gateway::merge_usage(usage, &metered);
    }
    report::synced(key, hub, &caps, usage, status, denied, &ctx.now());
    Ok(())
}

/// Puts keysmith's finalizer on the hub before anything is minted through it, so that the hub outlives
/// every key it holds (the hub's own reconcile adds it too, but may come later than a key created
/// with it). A hub being deleted cannot take a finalizer any more; keys then get none through it.
async fn protect_hub(key: &ApiKey, ctx: &Context, hub: &ModelHub) -> Result<()> {
    if hub.metadata.deletion_timestamp.is_some() || finalizer::present(hub, HUB_FINALIZER) {
        return Ok(());
    }
    if key.spec.hub_ref.is_cluster() {
        if let Some(cluster_hub) = ctx.cluster.hub(&key.spec.hub_ref.name) {
            let api = Api::<ClusterModelHub>::all(ctx.client.clone());
            finalizer::add(&api, &*cluster_hub, HUB_FINALIZER, None).await?;
        }
        return Ok(());
    }
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let api = Api::<ModelHub>::namespaced(ctx.client.clone(), &ns);
    finalizer::add(&api, hub, HUB_FINALIZER, None).await?;
    Ok(())
}

/// What a reconcile depends on besides time and the Secret: the spec (generation), the rotate
/// request and the hub's spec and readiness. Status and usage are outputs, so they are left out.
fn inputs_fingerprint(key: &ApiKey, hub: Option<&Resolved>) -> String {
    format!(
        "{:?}|{:?}|{:?}",
        key.metadata.generation,
        key.annotations().get(ROTATE_ANNOTATION),
        hub.map(|r| (hub_inputs(&r.hub), &r.access)),
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
            .as_ref()
            .and_then(|t| t.get().ok())
            .map(|t| t.as_second()),
    };
    ctx.metrics
        .set_key(&key.namespace().unwrap_or_default(), &key.name_any(), &figures);
}

fn usage_interval(ctx: &Context, hub: &ModelHub) -> Duration {
    let base = hub
        .spec
        .usage_refresh_interval
        .as_deref()
        .and_then(keysmith_core::duration::parse)
        .unwrap_or(ctx.settings.default_usage_interval);
    plan::jittered(base.as_secs().max(1), rand::random::<f64>())
}
