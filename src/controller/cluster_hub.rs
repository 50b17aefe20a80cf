//! ClusterModelHub reconciler: the same verification as a ModelHub's (through the ModelHub it stands
//! for), then each namespace's use of it: keys, allocated budget, spend, refusals and quota overruns.

use std::{collections::BTreeMap, sync::Arc};

use keysmith_api::{
    ApiKey, ClusterModelHub, ClusterModelHubStatus, HubTotals, ModelHubStatus, NamespaceFigures, conditions,
    reasons::Reason, well_known::HUB_FINALIZER,
};
use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, events::EventType},
};
use tracing::instrument;

use super::{
    Context, Error, Result, credential, finalizer,
    hub_ref::{allows, as_model_hub, namespace_labels},
    model_hub::{announce_ready, announce_unrevoked, release, verify},
    patch_status, requeue, unrevoked,
};
use crate::plan::quota::{self, Claim};

/// Controller name in metrics.
const CONTROLLER: &str = "clustermodelhub";

/// Entry point for the controller runtime.
#[instrument(skip(hub, ctx), fields(name = %hub.name_any()))]
pub async fn reconcile(hub: Arc<ClusterModelHub>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let api: Api<ClusterModelHub> = Api::all(ctx.client.clone());
    let name = hub.name_any();
    let operator_ns = ctx.settings.cluster_resource_namespace.clone();
    let keys = ctx
        .cluster
        .keys(|k| k.spec.hub_ref.is_cluster() && k.spec.hub_ref.name == name);
    if hub.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget_hub(&name);
        return release(&*hub, &api, &ctx, &operator_ns, keys.len()).await;
    }
    if !finalizer::present(&*hub, HUB_FINALIZER) {
        finalizer::add(&api, &*hub, HUB_FINALIZER, None).await?;
        return Ok(Action::await_change());
    }
    let standing = as_model_hub(&hub, &operator_ns);
    if let Some(credentials) = &hub.spec.hub.credentials_ref {
        credential::protect(&ctx, &operator_ns, &credentials.name).await?;
    }
    credential::release_unused(&ctx, &operator_ns, None).await?;

    let before = hub.status.clone().unwrap_or_default();
    let mut verified = ModelHubStatus {
        conditions: before.conditions.clone(),
        ..ModelHubStatus::default()
    };
    let uid = hub.uid().unwrap_or_default();
    let interval = standing
        .spec
        .usage_refresh_interval
        .as_deref()
        .and_then(keysmith_core::duration::parse)
        .unwrap_or(ctx.settings.default_usage_interval);
    // Woken for its figures (an ApiKey changed), the hub asks the provider nothing unless it is due.
    let wait = if ctx.cluster.verify_due(&uid, hub.metadata.generation, interval) {
        let wait = verify(&standing, &ctx, None, &mut verified).await;
        if conditions::is_true(&verified.conditions, conditions::READY) {
            ctx.cluster.verified(&uid, hub.metadata.generation);
        } else {
            ctx.cluster.forget_verified(&uid);
        }
        wait
    } else {
        interval
    };
    let ready = conditions::is_true(&verified.conditions, conditions::READY);
    let (open, done) = unrevoked::settle(&standing, &ctx, ready).await;
    let mut status = ClusterModelHubStatus {
        conditions: verified.conditions,
        observed_generation: hub.metadata.generation,
        capabilities: verified.capabilities.or(before.capabilities.clone()),
        account: verified.account.or(before.account.clone()),
        keys: verified.keys.or(before.keys.clone()),
        ..ClusterModelHubStatus::default()
    };
    unrevoked::report(&mut status.keys, &open);
    unrevoked::forget(&api, &name, &done).await?;
    let figures = figures(&hub, &ctx, &keys).await?;
    status.totals = Some(totals(&figures));
    status.namespaces = figures;
    ctx.metrics.set_hub_namespaces(&name, &status.namespaces);

    announce_ready(&ctx, &*hub, &before.conditions, &status.conditions).await;
    announce_overruns(&ctx, &hub, &before, &status).await;
    announce_unrevoked(&ctx, &*hub, before.keys.as_ref(), status.keys.as_ref()).await;
    if status != before {
        patch_status(&api, &name, &status).await?;
    }
    wake_admitted(&ctx, &hub, &keys);
    Ok(requeue(wait))
}

/// Requeue after an error that escaped `reconcile`.
pub fn error_policy(hub: Arc<ClusterModelHub>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::log_failure("ClusterModelHub", &hub.name_any(), err);
    if err.is_routine() {
        return requeue(crate::controller::ROUTINE_RETRY);
    }
    ctx.metrics.reconcile_error(CONTROLLER, err.reason());
    requeue(ctx.backoff(
        &hub.uid().unwrap_or_default(),
        ctx.settings.default_usage_interval,
    ))
}

/// Each namespace's use of the hub, judged as the ApiKey reconciles judge it.
async fn figures(
    hub: &ClusterModelHub,
    ctx: &Context,
    keys: &[Arc<ApiKey>],
) -> Result<Vec<NamespaceFigures>> {
    let standing = as_model_hub(hub, &ctx.settings.cluster_resource_namespace);
    let mut by_ns: BTreeMap<String, Vec<&ApiKey>> = BTreeMap::new();
    for key in keys.iter().filter(|k| k.metadata.deletion_timestamp.is_none()) {
        by_ns
            .entry(key.namespace().unwrap_or_default())
            .or_default()
            .push(key);
    }
    let mut out = Vec::new();
    for (ns, keys) in by_ns {
        let labels = namespace_labels(ctx, &ns).await?;
        let allowed = allows(&hub.spec.allowed_namespaces, &ns, &labels);
        let claims: Vec<Claim> = keys.iter().map(|k| Claim::of(k, &standing)).collect();
        let total = claims.len() as u32;
        let verdict = if allowed {
            quota::judge(hub.spec.quota.as_ref(), claims)
        } else {
            // Nothing is admitted; keys that hold one are switched off until the namespace is allowed.
            let mut v = quota::judge(None, claims.into_iter().filter(|c| c.holds_key).collect());
            v.admitted = 0;
            v
        };
        out.push(NamespaceFigures {
            name: ns,
            allowed,
            keys: verdict.admitted,
            refused: total - verdict.admitted,
            allocated_budget_usd: verdict.allocated_usd,
            spend_usd: verdict.spend_usd,
            overrun: verdict.overrun,
        });
    }
    Ok(out)
}

fn totals(figures: &[NamespaceFigures]) -> HubTotals {
    let spend: Vec<f64> = figures.iter().filter_map(|f| f.spend_usd).collect();
    HubTotals {
        namespaces: figures.len() as u32,
        keys: figures.iter().map(|f| f.keys).sum(),
        allocated_budget_usd: keysmith_limits::money(Some(
            figures.iter().map(|f| f.allocated_budget_usd).sum(),
        ))
        .unwrap_or(0.0),
        spend_usd: keysmith_limits::money((!spend.is_empty()).then(|| spend.iter().sum())),
    }
}

/// A Warning Event for each namespace whose overrun appeared or changed.
async fn announce_overruns(
    ctx: &Context,
    hub: &ClusterModelHub,
    before: &ClusterModelHubStatus,
    after: &ClusterModelHubStatus,
) {
    for ns in &after.namespaces {
        let Some(overrun) = &ns.overrun else { continue };
        let old = before
            .namespaces
            .iter()
            .find(|o| o.name == ns.name)
            .and_then(|o| o.overrun.as_ref());
        if old != Some(overrun) {
            let note = format!(
                "namespace {} holds more than its quota allows ({overrun}); nothing is suspended, new keys are refused",
                ns.name
            );
            ctx.event(
                hub,
                EventType::Warning,
                Reason::QuotaOverrun.as_str(),
                "Quota",
                note,
            )
            .await;
        }
    }
}

/// Wakes the keys refused for quota that the quota would admit now (a key was deleted, the quota was
/// raised, a budget lowered): they need not wait out their retry.
fn wake_admitted(ctx: &Context, hub: &ClusterModelHub, keys: &[Arc<ApiKey>]) {
    let Some(quota) = &hub.spec.quota else { return };
    let standing = as_model_hub(hub, &ctx.settings.cluster_resource_namespace);
    let waiting = |k: &ApiKey| {
        k.status.as_ref().is_some_and(|s| {
            conditions::get(&s.conditions, conditions::READY)
                .is_some_and(|c| c.reason == Reason::QuotaExceeded.as_str())
        })
    };
    let mut by_ns: BTreeMap<String, Vec<&Arc<ApiKey>>> = BTreeMap::new();
    for key in keys.iter().filter(|k| k.metadata.deletion_timestamp.is_none()) {
        by_ns
            .entry(key.namespace().unwrap_or_default())
            .or_default()
            .push(key);
    }
    let mut wake = Vec::new();
    for keys in by_ns.values() {
        let verdict = quota::judge(
            Some(quota),
            keys.iter().map(|k| Claim::of(k, &standing)).collect(),
        );
        wake.extend(
            keys.iter()
                .filter(|k| waiting(k) && !verdict.refused.contains_key(&k.name_any()))
                .map(|k| Arc::clone(k)),
        );
    }
    ctx.cluster.wake(&wake);
}
