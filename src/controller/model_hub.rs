//! ModelHub reconciler: credentials → verify at the provider → capabilities, account figures and key
//! counts → status. Hubs create nothing at the provider, so they need no finalizer.

use std::{collections::HashSet, sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    api::ListParams,
    runtime::{controller::Action, events::EventType},
};
use tracing::{instrument, warn};

use super::{Context, Error, Result, patch_status, providers::HubClientError, requeue};
use crate::plan;
use keysmith_api::{AccountStatus, ApiKey, KeyCounts, ModelHub, ModelHubStatus, conditions, reasons::Reason};

/// Controller name in metrics.
const CONTROLLER: &str = "modelhub";

/// How soon a hub waiting for its credentials Secret looks again: Secrets are not watched (that would
/// mean caching every Secret), so this is how a newly created credential is noticed.
const CREDENTIALS_POLL: Duration = Duration::from_secs(15);

/// Entry point for the controller runtime.
#[instrument(skip(hub, ctx), fields(namespace = hub.namespace().unwrap_or_default(), name = %hub.name_any()))]
pub async fn reconcile(hub: Arc<ModelHub>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = hub.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<ModelHub> = Api::namespaced(ctx.client.clone(), &ns);
    let before = hub.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let generation = hub.metadata.generation;
    let now = ctx.now();
    let uid = hub.uid().unwrap_or_default();
    let interval = hub
        .spec
        .usage_refresh_interval
        .as_deref()
        .and_then(keysmith_core::duration::parse)
        .unwrap_or(ctx.settings.default_usage_interval);

    let action = match check(&hub, &ctx, &ns, &mut status).await {
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
            requeue(plan::jittered(interval.as_secs().max(1), rand::random::<f64>()))
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
            requeue(wait)
        }
    };
    status.observed_generation = generation;

    let old = conditions::get(&before.conditions, conditions::READY);
    if let Some(new) = conditions::get(&status.conditions, conditions::READY)
        && old.is_none_or(|o| o.status != new.status || o.reason != new.reason)
    {
        ctx.event(
            &*hub,
            if new.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            &new.reason,
            "Verify",
            new.message.clone(),
        )
        .await;
    }
    if status != before {
        patch_status(&api, &hub.name_any(), &status).await?;
    }
    Ok(action)
}

/// Requeue after an error that escaped `reconcile`.
pub fn error_policy(hub: Arc<ModelHub>, err: &Error, ctx: Arc<Context>) -> Action {
    warn!(error = %err, reason = err.reason(), name = %hub.name_any(), "ModelHub reconcile failed");
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
    ns: &str,
    status: &mut ModelHubStatus,
) -> Result<(), HubProblem> {
    let client = ctx
        .providers
        .client(&ctx.client, hub, true)
        .await
        .map_err(HubProblem::Client)?;
    status.capabilities = Some(client.capabilities());
    let account = client.verify().await.map_err(HubProblem::Provider)?;
    // Rounded to a tenth of a cent: float noise must not cause a status write on every poll.
    let money = keysmith_limits::money;
    status.account = Some(AccountStatus {
        credits_usd: money(account.credits_usd),
        usage_usd: money(account.usage_usd),
        credits_remaining_usd: money(account.credits_usd.zip(account.usage_usd).map(|(c, u)| c - u)),
    });
    // Count keys carrying keysmith's tag: held by an ApiKey of this namespace, or orphaned.
    let keys = client.list_keys().await.map_err(HubProblem::Provider)?;
    let uids = api_key_uids(&Api::<ApiKey>::namespaced(ctx.client.clone(), ns))
        .await
        .map_err(|e| HubProblem::Client(HubClientError::Kube(e)))?;
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
