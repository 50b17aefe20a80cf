//! ModelHub reconciler: credentials → verify at the provider → capabilities, account figures and key
//! counts → status. A hub creates nothing at the provider, but its ApiKeys' keys are revoked through
//! it: its finalizer keeps it (and its credential Secret, see [`credential`]) while any ApiKey refers
//! to it, whatever order things are deleted in.

use std::{collections::HashSet, sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    api::ListParams,
    runtime::{controller::Action, events::EventType},
};
use tracing::instrument;

use super::{
    Context, Error, Result, credential, finalizer, patch_status, providers::HubClientError, requeue,
    unrevoked,
};
use crate::plan;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use keysmith_api::{
    AccountStatus, ApiKey, KeyCounts, ModelHub, ModelHubStatus, conditions, reasons::Reason,
    well_known::HUB_FINALIZER,
};

/// Controller name in metrics.
const CONTROLLER: &str = "modelhub";

/// How soon a hub waiting for its credentials Secret looks again: only Secrets keysmith protects are
/// watched (caching every Secret would cost too much), so this is how a new credential is noticed.
const CREDENTIALS_POLL: Duration = Duration::from_secs(15);

/// How often a hub being deleted looks whether its ApiKeys are gone.
pub(super) const IN_USE_POLL: Duration = Duration::from_secs(5);

/// Entry point for the controller runtime.
#[instrument(skip(hub, ctx), fields(namespace = hub.namespace().unwrap_or_default(), name = %hub.name_any()))]
pub async fn reconcile(hub: Arc<ModelHub>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = hub.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<ModelHub> = Api::namespaced(ctx.client.clone(), &ns);
    let name = hub.name_any();
    let users = || {
        ctx.cluster.keys(|k| {
            k.namespace().as_deref() == Some(ns.as_str())
                && !k.spec.hub_ref.is_cluster()
                && k.spec.hub_ref.name == name
        })
    };
    if hub.metadata.deletion_timestamp.is_some() {
        return release(&*hub, &api, &ctx, &ns, users().len()).await;
    }
    if !finalizer::present(&*hub, HUB_FINALIZER) {
        finalizer::add(&api, &*hub, HUB_FINALIZER, None).await?;
        return Ok(Action::await_change());
    }
    if let Some(credentials) = &hub.spec.credentials_ref {
        credential::protect(&ctx, &ns, &credentials.name).await?;
    }
    // A credentialsRef that moved leaves the old Secret protected until this sweep.
    credential::release_unused(&ctx, &ns, None).await?;

    let before = hub.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let wait = verify(&hub, &ctx, Some(&ns), &mut status).await;
    let ready = conditions::is_true(&status.conditions, conditions::READY);
    let (open, done) = unrevoked::settle(&hub, &ctx, ready).await;
    unrevoked::report(&mut status.keys, &open);
    unrevoked::forget(&api, &name, &done).await?;
    status.observed_generation = hub.metadata.generation;
    announce_ready(&ctx, &*hub, &before.conditions, &status.conditions).await;
    announce_unrevoked(&ctx, &*hub, before.keys.as_ref(), status.keys.as_ref()).await;
    if status != before {
        patch_status(&api, &hub.name_any(), &status).await?;
    }
    Ok(requeue(wait))
}

/// A hub being deleted: it waits while `users` ApiKeys still refer to it (their keys are revoked
/// through it), then releases its credential Secret and lets go.
pub(super) async fn release<K>(
    hub: &K,
    api: &Api<K>,
    ctx: &Context,
    credential_ns: &str,
    users: usize,
) -> Result<Action>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !finalizer::present(hub, HUB_FINALIZER) {
        return Ok(Action::await_change());
    }
    if users > 0 {
        let note = format!(
            "waiting for {users} ApiKey(s) that use this hub to be deleted: their provider keys are revoked through it"
        );
        ctx.event(hub, EventType::Normal, Reason::InUse.as_str(), "Delete", note)
            .await;
        return Ok(requeue(IN_USE_POLL));
    }
    credential::release_unused(ctx, credential_ns, hub.meta().uid.as_deref()).await?;
    finalizer::remove(api, hub, HUB_FINALIZER).await?;
    Ok(Action::await_change())
}

/// Verifies the hub's credential with the provider and records capabilities, account figures, key
/// counts and the Ready condition in `status`. Returns when to look again. `own_namespace`: where the
/// hub's own ApiKeys live (a ModelHub's namespace; none for a ClusterModelHub).
pub(super) async fn verify(
    hub: &ModelHub,
    ctx: &Arc<Context>,
    own_namespace: Option<&str>,
    status: &mut ModelHubStatus,
) -> Duration {
    let generation = hub.metadata.generation;
    let now = ctx.now();
    let uid = hub.uid().unwrap_or_default();
    let interval = hub
        .spec
        .usage_refresh_interval
        .as_deref()
        .and_then(keysmith_core::duration::parse)
        .unwrap_or(ctx.settings.default_usage_interval);
    match check(hub, ctx, own_namespace, status).await {
        Ok(()) => {
            ctx.succeeded(&uid);
            conditions::set(
                &mut status.conditions,
                conditions::READY,
                true,
                Reason::CredentialsVerified.as_str(),
                "the provider accepted the management credential",
                generation,
                &now,
            );
            plan::jittered(interval.as_secs().max(1), rand::random::<f64>())
        }
        Err(problem) => {
            let (reason, message, wait) = match &problem {
                HubProblem::Client(
                    e @ (HubClientError::NoCredentialsRef | HubClientError::CredentialsMissing { .. }),
                ) => (
                    Reason::CredentialsMissing.as_str(),
                    e.to_string(),
                    CREDENTIALS_POLL,
                ),
                HubProblem::Client(e) => (e.reason(), e.to_string(), ctx.backoff(&uid, interval)),
                HubProblem::Provider(e) => {
                    let reason = match e {
                        keysmith_providers::Error::Unauthorized { .. } => Reason::Unauthorized.as_str(),
                        keysmith_providers::Error::Forbidden { .. } => Reason::NotAuthorized.as_str(),
                        e if e.is_transient() => Reason::ProviderUnreachable.as_str(),
                        e => e.reason(),
                    };
                    (reason, e.to_string(), ctx.backoff(&uid, interval))
                }
            };
            conditions::set(
                &mut status.conditions,
                conditions::READY,
                false,
                reason,
                message,
                generation,
                &now,
            );
            wait
        }
    }
}

/// An Event when a hub's Ready condition changes status or reason.
pub(super) async fn announce_ready<K: kube::Resource<DynamicType = ()>>(
    ctx: &Context,
    hub: &K,
    before: &[Condition],
    after: &[Condition],
) {
    let old = conditions::get(before, conditions::READY);
    if let Some(new) = conditions::get(after, conditions::READY)
        && old.is_none_or(|o| o.status != new.status || o.reason != new.reason)
    {
        let kind = if new.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(hub, kind, &new.reason, "Verify", new.message.clone())
            .await;
    }
}

/// A Warning Event when more keys are left unrevoked than before.
pub(super) async fn announce_unrevoked<K: kube::Resource<DynamicType = ()>>(
    ctx: &Context,
    hub: &K,
    before: Option<&KeyCounts>,
    after: Option<&KeyCounts>,
) {
    let count = |k: Option<&KeyCounts>| k.map_or(0, |k| k.unrevoked);
    if count(after) > count(before) {
        let ids = after.map(|k| k.unrevoked_ids.join(", ")).unwrap_or_default();
        let note = format!(
            "{} provider key(s) of deleted ApiKeys are live and unrevoked ({ids}): restore the credential and keysmith revokes them, or revoke them at the provider and remove the hub's unrevoked.keysmith.dev/ annotations",
            count(after)
        );
        ctx.event(
            hub,
            EventType::Warning,
            Reason::KeysUnrevoked.as_str(),
            "Verify",
            note,
        )
        .await;
    }
}

/// Requeue after an error that escaped `reconcile`.
pub fn error_policy(hub: Arc<ModelHub>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::log_failure("ModelHub", &hub.name_any(), err);
    if err.is_routine() {
        return requeue(crate::controller::ROUTINE_RETRY);
    }
    ctx.metrics.reconcile_error(CONTROLLER, err.reason());
    requeue(ctx.backoff(
        &hub.uid().unwrap_or_default(),
        ctx.settings.default_usage_interval,
    ))
}

#[derive(Debug)]
enum HubProblem {
    Client(HubClientError),
    Provider(keysmith_providers::Error),
}

async fn check(
    hub: &ModelHub,
    ctx: &Arc<Context>,
    own_namespace: Option<&str>,
    status: &mut ModelHubStatus,
) -> Result<(), HubProblem> {
    let client = ctx
        .providers
        .client(&ctx.client, hub, true)
        .await
        .map_err(HubProblem::Client)?;
    let gateway_default = ctx.settings.gateway.is_some()
        && hub.spec.defaults.as_ref().and_then(|d| d.delivery) == Some(keysmith_api::Delivery::Gateway);
    status.capabilities = Some(if gateway_default {
        // Its keys go through keysmith-gateway unless they say otherwise.
        crate::plan::gateway::gateway_capabilities(client.capabilities())
    } else {
        client.capabilities()
    });
    let account = client.verify().await.map_err(HubProblem::Provider)?;
    // Rounded to a tenth of a cent: float noise must not cause a status write on every poll.
    let money = keysmith_limits::money;
    status.account = Some(AccountStatus {
        credits_usd: money(account.credits_usd),
        usage_usd: money(account.usage_usd),
        credits_remaining_usd: money(account.credits_usd.zip(account.usage_usd).map(|(c, u)| c - u)),
    });
    // Count keys carrying keysmith's tag: held by an ApiKey keysmith watches, or orphaned. Every hub on
    // the same account (namespaced or cluster) sees the others' keys; none is an orphan while its
    // ApiKey exists. The hub's own namespace is listed too, as its ApiKeys may be newer than the cache.
    let keys = client.list_keys().await.map_err(HubProblem::Provider)?;
    let mut uids: HashSet<String> = ctx
        .cluster
        .keys(|_| true)
        .iter()
        .filter_map(|k| k.uid())
        .collect();
    if let Some(ns) = own_namespace {
        uids.extend(
            api_key_uids(&Api::<ApiKey>::namespaced(ctx.client.clone(), ns))
                .await
                .map_err(|e| HubProblem::Client(HubClientError::Kube(e)))?,
        );
    }
    let mut counts = KeyCounts::default();
    for key in &keys {
        match keysmith_providers::tag::tagged_uid(&key.name) {
            Some(uid) if uids.contains(uid) => counts.managed += 1,
            Some(_) => counts.orphaned += 1,
            None => {}
        }
    }
    status.keys = Some(counts);
    Ok(())
}

/// ApiKeys listed per page of this many: at ten thousand keys one unpaged list would hold every key's
/// metadata, managed fields included, at once (it was the operator's largest allocation on a restart).
const PAGE: u32 = 500;

/// The uids of the ApiKeys `api` lists.
async fn api_key_uids(api: &Api<ApiKey>) -> kube::Result<HashSet<String>> {
    let mut uids = HashSet::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&params).await?;
        uids.extend(page.items.into_iter().filter_map(|k| k.metadata.uid));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(uids),
        }
    }
}
