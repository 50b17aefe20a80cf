//! Gathering what one ApiKey's sync decides from: its hub, its target Secret, the provider client,
//! and for an import the value to deliver and the provider's record of it.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use keysmith_api::{ApiKey, ApiKeyStatus, Enforcement, ModelHub, well_known::ISSUING_ANNOTATION};
use keysmith_core::SecretValue;
use keysmith_providers::tag;
use kube::{Api, ResourceExt};

use super::{
    Problem, SyncResult,
    act::{Run, ensure_ours},
    decide::{ImportView, Record},
};
use crate::{
    controller::{Context, Error, Result, get_cached},
    plan,
};

/// The target Secret as a reconcile knows it.
// One per reconcile, moved once: boxing the Secret would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Target {
    /// Read before the sync: the Secret, or none.
    Read(Option<Secret>),
    /// Not read: the ApiKey never had a key, so a Secret by its name would be someone else's and is
    /// almost never there. The create looks for one alongside the write of its marker, which it
    /// makes anyway, so a new key waits for one round trip fewer.
    Unread,
}

/// The target Secret. A cache that missed keysmith's own write would make a held key look lost and
/// have it replaced, so the watch cache is trusted only when it shows the version keysmith last wrote
/// (a later change by someone else brings its own reconcile); otherwise the read goes to etcd. An
/// ApiKey that never had a key, nor the marker of an attempt, has no Secret of keysmith's that a cache
/// could miss: its Secret is looked up later, with the marker's write (see [`Target::Unread`]).
pub async fn secret(key: &ApiKey, ctx: &Context) -> Result<Target> {
    if plan::first_key_pending(key) && !key.annotations().contains_key(ISSUING_ANNOTATION) {
        return Ok(Target::Unread);
    }
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let uid = key.uid().unwrap_or_default();
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    let name = plan::secret_name(key);
    if let Some(written) = ctx.secret_written(&uid) {
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
    ctx.saw_secret(
        &uid,
        secret
            .as_ref()
            .and_then(|s| s.metadata.resource_version.as_deref()),
    );
    Ok(Target::Read(secret))
}

/// Everything a sync starts from, ready to act through.
pub async fn gather<'a>(
    key: &'a ApiKey,
    ctx: &'a Arc<Context>,
    hub: &'a ModelHub,
    target: Target,
    status: &ApiKeyStatus,
    denied: bool,
) -> SyncResult<Run<'a>> {
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    status
        .check_times()
        .map_err(|(field, bad)| Problem::MalformedStatus { field, bad })?;
    let importing = key.spec.import.is_some();
    let (existing, unread) = match target {
        Target::Read(secret) => (secret, false),
        Target::Unread => (None, true),
    };
    let provider = ctx
        .providers
        .client(&ctx.client, hub, !importing)
        .await
        .map_err(|source| Problem::Hub {
            hub: hub.name_any(),
            source,
        })?;
    ensure_ours(existing.as_ref(), key)?;
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    let base_url = hub
        .spec
        .inference_endpoint
        .clone()
        .or_else(|| {
            ctx.providers
                .default_inference_endpoint(hub.spec.provider)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let gateway = super::gateway::observe(key, hub, ctx, &base_url, status).await?;
    let delivery = plan::Delivery {
        base_url: match &gateway {
            Some(g) if g.active => g.app_base_url.clone(),
            _ => base_url,
        },
        published: keysmith_limits::published_limits(key, hub),
    };
    let holding = |s: &Secret| {
        plan::secret_value(s, key).map(|value| (value, plan::secret_key_id(s).map(str::to_owned)))
    };
    let mut held = existing.as_ref().and_then(holding);
    if let Some(g) = &gateway {
        // Through the gateway the app's Secret holds the issued key, and the provider key is in the
        // route Secret; while delivery changes, the one whose fingerprint status recorded holds it.
        let routed = g.existing.as_ref().and_then(plan::gateway::route_value);
        let recorded = status.fingerprint.as_deref();
        let direct = held.filter(|(value, _)| Some(value.fingerprint().as_str()) == recorded);
        held = if g.active {
            routed.or(direct)
        } else {
            direct.or(routed)
        };
    }
    let moved_from = match (&existing, &status.secret_name) {
        // `spec.secret.name` changed: the key is in the Secret keysmith wrote before, and moves.
        (None, Some(before)) if !unread && *before != plan::secret_name(key) => secrets
            .get_opt(before)
            .await
            .map_err(Error::kube("get the Secret the key moves from"))?
            .filter(|old| plan::secret_owned_by(old, key)),
        _ => None,
    };
    if held.is_none() {
        held = moved_from.as_ref().and_then(holding);
    }
    let caps = match &gateway {
        Some(g) if g.active => plan::gateway::gateway_capabilities(provider.capabilities()),
        _ => provider.capabilities(),
    };
    let mut run = Run {
        ctx,
        key,
        hub,
        caps,
        provider,
        secrets,
        existing,
        unread,
        delivery,
        held,
        moved_from,
        record: Record::Unread,
        recovered: false,
        import: None,
        fresh_tag: tag::attempt_tag(
            &key.uid().ok_or(Error::MissingUid)?,
            &format!("{:08x}", rand::random::<u32>()),
        ),
        denied,
        gateway,
    };
    if importing {
        run.import = Some(import(&run, status).await?);
        if run
            .import
            .as_ref()
            .is_some_and(|(_, _, view)| view.record.is_none())
        {
            // keysmith holds no record of this key at the provider: it can only publish limits.
            run.caps.budget = Enforcement::Advisory;
            run.caps.rate_limits = Enforcement::Advisory;
            run.caps.model_limits = Enforcement::Advisory;
            run.caps.disable = Enforcement::Unsupported;
            run.caps.rename = Enforcement::Unsupported;
            run.caps.rotation = Enforcement::Unsupported;
            if run.gateway.as_ref().is_some_and(|g| g.active) {
                run.caps = plan::gateway::gateway_capabilities(run.caps.clone());
            }
        }
    }
    if let Some(data_key) = key
        .spec
        .secret
        .as_ref()
        .and_then(|s| s.keys.as_ref())
        .and_then(|k| k.limits.clone())
    {
        let limits = keysmith_limits::effective_limits(key, hub, &run.caps);
        run.delivery
            .published
            .insert(data_key, plan::limits_document(key, &limits));
    }
    Ok(run)
}

/// The value an import delivers, the value its Secret holds, and the provider's record of it.
async fn import(run: &Run<'_>, status: &ApiKeyStatus) -> SyncResult<(SecretValue, SecretValue, ImportView)> {
    let Some(import) = &run.key.spec.import else {
        return Err(Problem::Stuck);
    };
    let reference = &import.secret_ref;
    let missing = || Problem::ImportSecretMissing {
        name: reference.name.clone(),
        key: reference.key.clone(),
    };
    let source = run
        .secrets
        .get_opt(&reference.name)
        .await
        .map_err(Error::kube("get import Secret"))?;
    let bytes = source
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&reference.key))
        .ok_or_else(missing)?;
    let text = String::from_utf8(bytes.0).map_err(|_| missing())?;
    let source = SecretValue::new(text.trim());
    if source.expose().is_empty() {
        return Err(missing());
    }
    // After a regeneration the import Secret still holds the value it replaced; the Secret keysmith
    // wrote holds the live one. A new value in the import Secret (the user's) wins again.
    let replaced = status
        .rotation
        .as_ref()
        .and_then(|r| r.replaced_import_fingerprint.as_deref());
    let value = match &run.held {
        Some((held, _)) if replaced == Some(source.fingerprint().as_str()) => held.clone(),
        _ => source.clone(),
    };
    // A regeneration cut short left a value nobody holds: the key's record is found with the value
    // the import Secret holds, so it is regenerated again from there instead of a dead value being
    // validated.
    let record = run
        .provider
        .find_imported(&value, import.key_id.as_deref())
        .await?;
    Ok((
        value,
        source,
        ImportView {
            record,
            regenerated: false,
            validated: false,
        },
    ))
}
