//! Bringing one ApiKey's provider key and Secret in line with its spec.
//!
//! Pipeline: hub → provider client → Secret ownership check → (import | recover → mint or update) →
//! Secret → usage. Each provider call is safe to repeat. The create protocol keeps DESIGN §2.2:
//! 1. record the attempt *before* calling the provider: `status.pendingCreate` (with the attempt's tag),
//!    or, for an ApiKey's first key, the `keysmith.dev/issuing` annotation written with the finalizer;
//! 2. create the key, whose provider-side name carries the tag;
//! 3. write the Secret (value plus the key id in an annotation) *before* recording success;
//! 4. record the key id in status and clear the marker.
//!
//! A crash between 1 and 4 leaves the marker. The next reconcile lists the provider's keys, adopts the
//! one the Secret holds (crash between 3 and 4) and revokes every other key carrying this ApiKey's uid
//! (crash between 2 and 3: nobody holds its value), then mints afresh if needed.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use tracing::{info, warn};

use super::{Context, Error, api_key::FINALIZER, failpoint, get_cached, providers::HubClientError};
use crate::plan::{self, KeyChange};
use keysmith_api::{
    ApiKey, ApiKeyStatus, Capabilities, CreateKind, Enforcement, FIELD_MANAGER, ModelHub, PendingCreate,
    Suspension, Usage,
};
use keysmith_providers::{self, DynProvider, KeyRecord, KeySettings, SecretValue};

/// Why a key is not in the state its spec asks for, in terms the user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The hub does not exist.
    #[error("ModelHub {0:?} not found in this namespace")]
    HubNotFound(String),
    /// The hub's client could not be built.
    #[error("ModelHub {hub:?} cannot be used: {source}")]
    Hub {
        hub: String,
        #[source]
        source: HubClientError,
    },
    /// The target Secret exists and belongs to someone else.
    #[error("Secret {0:?} exists and is not owned by this ApiKey; keysmith will not overwrite it")]
    SecretConflict(String),
    /// The Secret named in `spec.import.secretRef` (or its key) is missing.
    #[error("import Secret {name:?} has no data key {key:?} (or does not exist)")]
    ImportSecretMissing { name: String, key: String },
    /// The spec asks for something keysmith cannot do for this key.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The provider refused or failed a call.
    #[error("{0}")]
    Provider(#[from] keysmith_providers::Error),
    /// A Kubernetes call failed.
    #[error("{0}")]
    Kube(#[from] Error),
}

impl Problem {
    /// Condition and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HubNotFound(_) => "HubNotFound",
            Self::Hub { source, .. } => match source.reason() {
                "CredentialsMissing" => "HubCredentialsMissing",
                other => other,
            },
            Self::SecretConflict(_) => "SecretConflict",
            Self::ImportSecretMissing { .. } => "ImportSecretMissing",
            Self::Unsupported(_) => "Unsupported",
            Self::Provider(e) => e.reason(),
            Self::Kube(e) => e.reason(),
        }
    }

    /// Whether a write conditional on the version this reconcile started from was refused because
    /// the object had moved on.
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            Self::Kube(Error::Kube { source: kube::Error::Api(status), .. }) if status.code == 409
        )
    }

    /// Whether waiting may fix it without a change from the user.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Provider(e) => e.is_transient(),
            Self::Kube(_) => true,
            Self::Hub { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

/// What a successful sync observed.
pub struct Synced {
    /// The hub, for effective limits.
    pub hub: ModelHub,
    /// How each limit and action is carried out for this key (an import the provider cannot manage
    /// has its limits only published).
    pub caps: Capabilities,
    /// Usage to report.
    pub usage: Usage,
}

type SyncResult<T> = std::result::Result<T, Problem>;

/// The target Secret as a reconcile knows it.
// One per reconcile, moved once: boxing the Secret would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Target {
    /// Read before the sync: the Secret, or none.
    Read(Option<Secret>),
    /// Not read: the ApiKey never had a key, so a Secret by its name would be someone else's and
    /// is almost never there. [`issue`] looks for one alongside the write of the create marker,
    /// which it makes anyway, so a new key waits for one round trip fewer.
    Unread,
}

/// Syncs `key`, updating `status` in place. Writes status itself only where the crash-safety protocol
/// requires it; the caller writes the final status.
/// `hub` and `target` (the Secret) are as the caller read them for this reconcile.
pub async fn sync(
    key: &ApiKey,
    ctx: &Arc<Context>,
    status: &mut ApiKeyStatus,
    hub: Option<ModelHub>,
    target: Target,
) -> SyncResult<Synced> {
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let hub = hub.ok_or_else(|| Problem::HubNotFound(key.spec.hub_ref.name.clone()))?;
    let importing = key.spec.import.is_some();
    let (existing, unread) = match target {
        Target::Read(secret) => (secret, false),
        Target::Unread => (None, true),
    };
    let provider = ctx
        .providers
        .client(&ctx.client, &hub, !importing)
        .await
        .map_err(|source| Problem::Hub {
            hub: hub.name_any(),
            source,
        })?;

    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    ensure_ours(existing.as_ref(), key)?;
    status.secret_name = Some(plan::secret_name(key));
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
    let delivery = plan::Delivery {
        base_url,
        published: keysmith_limits::published_limits(key, &hub),
    };

    let mut caps = provider.capabilities();
    let usage = if importing {
        let (usage, linked) = import(
            key,
            ctx,
            &hub,
            &secrets,
            existing.as_ref(),
            &provider,
            &delivery,
            status,
        )
        .await?;
        if !linked {
            // keysmith holds no record of this key at the provider: it can only publish limits.
            caps.budget = Enforcement::Advisory;
            caps.rate_limits = Enforcement::Advisory;
            caps.model_limits = Enforcement::Advisory;
            caps.disable = Enforcement::Unsupported;
            caps.rename = Enforcement::Unsupported;
            caps.rotation = Enforcement::Unsupported;
        }
        Some(usage)
    } else {
        mint(
            key,
            ctx,
            &hub,
            &secrets,
            existing.as_ref(),
            unread,
            &provider,
            &delivery,
            status,
        )
        .await?
    };
    let reset = keysmith_limits::budget_reset_in_force(key, &hub);
    let now = ctx.clock.now();
    let usage = match usage {
        Some(usage) => keysmith_limits::usage_status(&usage, reset, now),
        // No live key on purpose (see `suspend`): nothing new to report.
        None => keysmith_limits::usage_while_suspended(status, now),
    };
    Ok(Synced { usage, hub, caps })
}

/// Refuses a target Secret that exists and is not this ApiKey's: keysmith never overwrites it.
fn ensure_ours(secret: Option<&Secret>, key: &ApiKey) -> SyncResult<()> {
    match secret {
        Some(secret) if !plan::secret_owned_by(secret, key) => {
            Err(Problem::SecretConflict(plan::secret_name(key)))
        }
        _ => Ok(()),
    }
}

/// Forces `desired.disabled` on while keysmith itself must stop the key (a limit only it enforces,
/// or an expiry the provider does not hold). Returns whether it does.
fn enforce(
    key: &ApiKey,
    hub: &ModelHub,
    caps: &Capabilities,
    usage: &keysmith_providers::KeyUsage,
    now: jiff::Timestamp,
    desired: &mut KeySettings,
) -> bool {
    let usage = keysmith_limits::usage_status(usage, keysmith_limits::budget_reset_in_force(key, hub), now);
    let breaches = keysmith_limits::breaches(key, hub, &usage, caps);
    let blocked = keysmith_limits::operator_blocks(key, &breaches, caps, now);
    desired.disabled |= blocked;
    blocked
}

/// The Event for an in-place update, naming why the key is switched off or on when keysmith does it.
fn update_note(record: &KeyRecord, desired: &KeySettings, blocked: bool) -> (&'static str, String) {
    match (record.settings.disabled, desired.disabled, blocked) {
        (false, true, true) => (
            "KeyBlocked",
            "a limit only keysmith enforces was reached (or the key expired): key disabled at the provider"
                .into(),
        ),
        (true, false, _) => ("KeyRestored", "key enabled again at the provider".into()),
        _ => ("KeyUpdated", "provider key updated to match the spec".into()),
    }
}

/// The expiry to report: the provider's own, or the spec's where only keysmith enforces it.
fn reported_expiry(key: &ApiKey, caps: &Capabilities, record: &KeyRecord) -> Option<String> {
    match caps.expiry {
        Enforcement::Operator => key
            .spec
            .expires_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.to_string()),
        _ => record.settings.expires_at.map(|t| t.to_string()),
    }
}

/// Brings an existing key under management. Where the provider keeps a record of it (`find_imported`),
/// keysmith also renames, disables, re-enables and regenerates it; otherwise it only validates the key
/// and publishes its limits.
#[allow(clippy::too_many_arguments)]
async fn import(
    key: &ApiKey,
    ctx: &Arc<Context>,
    hub: &ModelHub,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    provider: &DynProvider,
    delivery: &plan::Delivery,
    status: &mut ApiKeyStatus,
) -> SyncResult<(keysmith_providers::KeyUsage, bool)> {
    let Some(import) = &key.spec.import else {
        return Ok(Default::default());
    };
    let reference = &import.secret_ref;
    let missing = || Problem::ImportSecretMissing {
        name: reference.name.clone(),
        key: reference.key.clone(),
    };
    let source = secrets
        .get_opt(&reference.name)
        .await
        .map_err(Error::kube("get import Secret"))?;
    let bytes = source
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&reference.key))
        .ok_or_else(missing)?;
    let value = String::from_utf8(bytes.0).map_err(|_| missing())?;
    let source_value = SecretValue::new(value.trim());
    if source_value.expose().is_empty() {
        return Err(missing());
    }
    // After a regeneration the import Secret still holds the value it replaced; the Secret keysmith
    // wrote holds the live one. A new value in the import Secret (the user's) wins again.
    let replaced = status
        .rotation
        .as_ref()
        .and_then(|r| r.replaced_import_fingerprint.clone());
    let held = existing.and_then(|s| plan::secret_value(s, key));
    let interrupted = status.pending_create.is_some();
    let value = match held {
        Some(held) if replaced.as_deref() == Some(source_value.fingerprint().as_str()) => held,
        _ => source_value.clone(),
    };
    let caps = provider.capabilities();
    let now = ctx.clock.now();
    // A regeneration cut short left a value nobody holds: the key's record is found with the value
    // the import Secret holds, so regenerate again from there instead of validating a dead value.
    let found = provider.find_imported(&value, import.key_id.as_deref()).await?;
    let Some(mut record) = found else {
        let info = provider.inspect_imported(&value).await?;
        apply_secret(
            ctx,
            key,
            secrets,
            existing,
            &value,
            import.key_id.as_deref(),
            delivery,
        )
        .await?;
        status.key_id = import.key_id.clone();
        status.key_label = info.label;
        status.fingerprint = Some(value.fingerprint());
        return Ok((info.usage, false));
    };

    let mut value = value;
    let rotation = plan::rotation_due(key, status, now).or(interrupted.then_some("interrupted"));
    if let (Some(why), Enforcement::Provider) = (rotation, caps.rotation) {
        ctx.event(
            key,
            false,
            "KeyRotating",
            "Rotate",
            format!("rotation {why}: regenerating the key's value in place"),
        )
        .await;
        // Recorded before the call: should the new value be lost to a crash, the next reconcile
        // regenerates again rather than trusting a value the provider no longer accepts.
        status.pending_create = Some(PendingCreate {
            tag: record.id.clone(),
            reason: CreateKind::Regenerate,
        });
        let rotation = status.rotation.get_or_insert_with(Default::default);
        if rotation.replaced_import_fingerprint.is_none() {
            rotation.replaced_import_fingerprint = Some(source_value.fingerprint());
        }
        let api = Api::<ApiKey>::namespaced(
            ctx.client.clone(),
            &key.namespace().ok_or(Error::MissingNamespace)?,
        );
        ctx.write_key_status(&api, key, key.resource_version(), status)
            .await?;
        failpoint("before-provider-create");
        let created = provider.regenerate_key(&record.id).await?;
        failpoint("after-provider-create");
        apply_secret(
            ctx,
            key,
            secrets,
            existing,
            &created.value,
            Some(&created.record.id),
            delivery,
        )
        .await?;
        failpoint("after-secret-write");
        status.pending_create = None;
        let rotation = status.rotation.get_or_insert_with(Default::default);
        rotation.last_rotated_at = Some(now.to_string());
        rotation.next_rotation_at = plan::next_rotation(key, now).map(|t| t.to_string());
        rotation.last_requested_token = key
            .annotations()
            .get(keysmith_api::well_known::ROTATE_ANNOTATION)
            .cloned();
        status.fingerprint = Some(created.value.fingerprint());
        ctx.write_key_status(&api, key, None, status).await?;
        ctx.event(
            key,
            false,
            "KeyRotated",
            "Rotate",
            format!(
                "key {} regenerated: the Secret holds the new value; the old value no longer works",
                created.record.id
            ),
        )
        .await;
        value = created.value;
        record = created.record;
    } else if !record.settings.disabled {
        // Validated with the key itself too: a record alone does not prove the value works. A key
        // the provider holds switched off is refused by its own API whatever its value, so it is
        // validated once it is switched on again.
        provider.inspect_imported(&value).await?;
    }

    let mut desired = record.settings.clone();
    if let Some(name) = &key.spec.display_name {
        desired.name = name.clone();
    }
    desired.disabled = key.spec.disabled.unwrap_or(false);
    let blocked = enforce(key, hub, &caps, &record.usage, now, &mut desired);
    if plan::key_change(&record, &desired, &caps, true) == KeyChange::Update {
        let (reason, note) = update_note(&record, &desired, blocked);
        info!(key_id = %record.id, reason, "updating imported key in place");
        ctx.event(key, false, reason, "Update", note).await;
        let usage = record.usage.clone();
        record = provider.update_key(&record.id, &desired).await?;
        if record.usage == keysmith_providers::KeyUsage::default() {
            record.usage = usage;
        }
    }
    apply_secret(ctx, key, secrets, existing, &value, Some(&record.id), delivery).await?;
    status.key_id = Some(record.id.clone());
    status.key_label = record.label.clone();
    status.fingerprint = Some(value.fingerprint());
    status.expires_at = reported_expiry(key, &caps, &record);
    Ok((record.usage, true))
}

#[allow(clippy::too_many_arguments)]
async fn mint(
    key: &ApiKey,
    ctx: &Arc<Context>,
    hub: &ModelHub,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    unread: bool,
    provider: &DynProvider,
    delivery: &plan::Delivery,
    status: &mut ApiKeyStatus,
) -> SyncResult<Option<keysmith_providers::KeyUsage>> {
    let uid = key.uid().ok_or(Error::MissingUid)?;
    let mut held_value = existing.and_then(|s| plan::secret_value(s, key));
    let mut held_id = existing.and_then(plan::secret_key_id).map(str::to_owned);

    if plan::create_pending(key, status) {
        let secret_key_id = held_value.is_some().then_some(held_id.as_deref()).flatten();
        if let Some((id, value)) = recover(key, ctx, provider, &uid, secret_key_id, status).await? {
            // Read back from the provider: written to the Secret below, like any held key.
            held_id = Some(id);
            held_value = Some(value);
        }
    }
    revoke_previous(key, ctx, provider, status, Revoke::IfDue).await?;

    let caps = provider.capabilities();
    let now = ctx.clock.now();
    if status.suspended.is_some() {
        finish_revoke(key, ctx, provider, status).await?;
        let usage = keysmith_limits::usage_while_suspended(status, now);
        let breaches = keysmith_limits::breaches(key, hub, &usage, &caps);
        if plan::suspension_reason(key, &breaches, &caps, now).is_some() {
            return Ok(None);
        }
        status.suspended = None;
        ctx.event(
            key,
            false,
            "KeyRestored",
            "Create",
            "the key may work again and the provider cannot re-enable a revoked key: issuing a new one"
                .into(),
        )
        .await;
    }

    let record = match &status.key_id {
        Some(id) => provider.get_key(id).await?,
        None => None,
    };
    let value_matches = held_value.is_some() && held_id.is_some() && held_id == status.key_id;

    // `fresh`: a key was just issued and its Secret written, so the Secret needs no second look.
    let (record, value, fresh) = match (record, held_value) {
        (Some(record), Some(value)) if value_matches => {
            let tag = keysmith_providers::tag::name_tag(&record.name)
                .map(str::to_owned)
                .unwrap_or_else(|| new_tag(&uid));
            let usage = keysmith_limits::usage_status(
                &record.usage,
                keysmith_limits::budget_reset_in_force(key, hub),
                now,
            );
            let breaches = keysmith_limits::breaches(key, hub, &usage, &caps);
            if let Some(why) = plan::suspension_reason(key, &breaches, &caps, now) {
                suspend(key, ctx, provider, status, why).await?;
                return Ok(Some(record.usage));
            }
            let mut desired = plan::desired_settings(key, hub, &tag);
            let blocked = enforce(key, hub, &caps, &record.usage, now, &mut desired);
            let rotation = plan::rotation_due(key, status, now);
            match plan::key_change(&record, &desired, &caps, provider.expiry_in_place()) {
                _ if rotation.is_some() => {
                    let why = rotation.unwrap_or_default();
                    ctx.event(
                        key,
                        false,
                        "KeyRotating",
                        "Rotate",
                        format!("rotation {why}: issuing a new key"),
                    )
                    .await;
                    let (record, value) = issue(
                        key,
                        ctx,
                        hub,
                        secrets,
                        existing,
                        unread,
                        provider,
                        delivery,
                        status,
                        CreateKind::Rotate,
                    )
                    .await?;
                    (record, value, true)
                }
                KeyChange::None => (record, value, false),
                KeyChange::Update => {
                    let (reason, note) = update_note(&record, &desired, blocked);
                    info!(key_id = %record.id, reason, "updating provider key in place");
                    ctx.event(key, false, reason, "Update", note).await;
                    (provider.update_key(&record.id, &desired).await?, value, false)
                }
                KeyChange::Reissue => {
                    ctx.event(
                        key,
                        false,
                        "KeyReissued",
                        "Reissue",
                        "expiry changed and the provider cannot change it in place: issuing a new key".into(),
                    )
                    .await;
                    let (record, value) = issue(
                        key,
                        ctx,
                        hub,
                        secrets,
                        existing,
                        unread,
                        provider,
                        delivery,
                        status,
                        CreateKind::Reissue,
                    )
                    .await?;
                    (record, value, true)
                }
            }
        }
        (record, _) => {
            // A key that must not work and cannot be disabled is not issued (or, live but unheld, is
            // revoked): it is issued once it may work.
            let usage = keysmith_limits::usage_while_suspended(status, now);
            let breaches = keysmith_limits::breaches(key, hub, &usage, &caps);
            if let Some(why) = plan::suspension_reason(key, &breaches, &caps, now) {
                if record.is_some() {
                    suspend(key, ctx, provider, status, why).await?;
                } else {
                    status.key_id = None;
                    status.suspended = Some(Suspension {
                        reason: why.to_owned(),
                        since: now.to_string(),
                        revoked_key_id: None,
                    });
                }
                return Ok(None);
            }
            // No key yet, the key vanished at the provider, or the Secret lost its value: a new key is
            // the only way to deliver one (the old value cannot be read back).
            let reason = if status.key_id.is_none() {
                CreateKind::Create
            } else {
                CreateKind::Replace
            };
            if record.is_some() || status.key_id.is_some() {
                warn!(
                    reason = reason.as_str(),
                    "provider key or its Secret is missing: issuing a new key"
                );
            }
            let (record, value) = issue(
                key, ctx, hub, secrets, existing, unread, provider, delivery, status, reason,
            )
            .await?;
            (record, value, true)
        }
    };

    if !fresh {
        // The spec's Secret settings (labels, data key names, base URL) may have changed.
        apply_secret(ctx, key, secrets, existing, &value, Some(&record.id), delivery).await?;
    }
    status.key_id = Some(record.id.clone());
    status.key_label = record.label.clone();
    status.fingerprint = Some(value.fingerprint());
    status.expires_at = reported_expiry(key, &caps, &record);
    Ok(Some(record.usage))
}

/// Stops a key the provider cannot disable by revoking it. The decision is recorded before the
/// revocation: were the call's outcome lost, the next reconcile finishes it instead of taking the
/// missing key for one to replace.
async fn suspend(
    key: &ApiKey,
    ctx: &Arc<Context>,
    provider: &DynProvider,
    status: &mut ApiKeyStatus,
    why: &str,
) -> SyncResult<()> {
    status.suspended = Some(Suspension {
        reason: why.to_owned(),
        since: ctx.clock.now().to_string(),
        revoked_key_id: None,
    });
    let api = Api::<ApiKey>::namespaced(
        ctx.client.clone(),
        &key.namespace().ok_or(Error::MissingNamespace)?,
    );
    ctx.write_key_status(&api, key, None, status).await?;
    // A rotated-out key still in its overlap must stop working too.
    revoke_previous(key, ctx, provider, status, Revoke::Now).await?;
    finish_revoke(key, ctx, provider, status).await
}

/// Revokes the key a suspension still records as live, then records it as revoked.
async fn finish_revoke(
    key: &ApiKey,
    ctx: &Arc<Context>,
    provider: &DynProvider,
    status: &mut ApiKeyStatus,
) -> SyncResult<()> {
    let (Some(suspension), Some(id)) = (status.suspended.as_mut(), status.key_id.clone()) else {
        return Ok(());
    };
    provider.delete_key(&id).await?;
    let note = format!(
        "the provider cannot disable keys, so key {id} was revoked ({}); a new key is issued when it may work again",
        suspension.reason
    );
    suspension.revoked_key_id = Some(id);
    status.key_id = None;
    status.key_label = None;
    ctx.event(key, false, "KeyBlocked", "Delete", note).await;
    Ok(())
}

/// Mints a key with the crash-safe protocol, writes its Secret, and revokes the key it replaces.
#[allow(clippy::too_many_arguments)]
async fn issue(
    key: &ApiKey,
    ctx: &Arc<Context>,
    hub: &ModelHub,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    unread: bool,
    provider: &DynProvider,
    delivery: &plan::Delivery,
    status: &mut ApiKeyStatus,
    reason: CreateKind,
) -> SyncResult<(KeyRecord, SecretValue)> {
    let uid = key.uid().ok_or(Error::MissingUid)?;
    // One previous key at a time: a key still in its overlap is revoked before another takes its place,
    // so no key is ever left without a record.
    // One previous key at a time: a key still in its overlap is revoked before another takes its place.
    revoke_previous(key, ctx, provider, status, Revoke::Now).await?;
    let tag = new_tag(&uid);
    let api = Api::<ApiKey>::namespaced(
        ctx.client.clone(),
        &key.namespace().ok_or(Error::MissingNamespace)?,
    );
    // Conditional on the version this decision was made from: a cache that missed an earlier marker
    // (the apiserver went away before its watch event arrived) must not mint a second key.
    let marked = async {
        if key.finalizers().iter().any(|f| f == FINALIZER) {
            status.pending_create = Some(PendingCreate {
                tag: tag.clone(),
                reason,
            });
            ctx.write_key_status(&api, key, key.resource_version(), status)
                .await?;
            Ok(())
        } else {
            mark_first_issue(key, ctx, &api, &tag).await
        }
    };
    let looked_up = async {
        if !unread {
            return Ok(None);
        }
        get_cached(secrets, &plan::secret_name(key))
            .await
            .map_err(|e| Problem::from(Error::kube("get Secret")(e)))
    };
    let ((), found) = futures::try_join!(marked, looked_up)?;
    // A Secret of someone else's stops the create after its marker: the next reconcile reads the
    // Secret first, reports the same conflict, and once it is resolved finds no key to recover.
    ensure_ours(found.as_ref(), key)?;
    let existing = found.as_ref().or(existing);
    failpoint("before-provider-create");

    let caps = provider.capabilities();
    let mut desired = plan::desired_settings(key, hub, &tag);
    // A new key has no usage yet, but it may be born past an expiry only keysmith enforces.
    desired.disabled |= keysmith_limits::operator_expired(key, &caps, ctx.clock.now());
    let created = provider.create_key(&desired).await?;
    failpoint("after-provider-create");

    apply_secret(
        ctx,
        key,
        secrets,
        existing,
        &created.value,
        Some(&created.record.id),
        delivery,
    )
    .await?;
    failpoint("after-secret-write");

    let previous = status
        .key_id
        .replace(created.record.id.clone())
        .filter(|old| *old != created.record.id);
    status.pending_create = None;
    status.key_label = created.record.label.clone();
    status.fingerprint = Some(created.value.fingerprint());
    status.expires_at = reported_expiry(key, &caps, &created.record);
    let rotating = reason == CreateKind::Rotate;
    if let Some(old) = previous.clone() {
        // Recorded in the same write as the new key, so status never loses track of the old one: a
        // crash or a failed revocation below is retried by `revoke_previous`.
        if rotating {
            retire_after_overlap(key, status, old, ctx.clock.now());
        } else {
            let rotation = status.rotation.get_or_insert_with(Default::default);
            rotation.previous_key_id = Some(old);
            rotation.previous_key_revoke_at = Some(ctx.clock.now().to_string());
        }
    }
    if previous.is_some() {
        // The old key must be on record before anything revokes it or lets its overlap run.
        ctx.write_key_status(&api, key, None, status).await?;
        failpoint("after-status-write");
    }
    // A first key is recorded by the reconcile's final status write, one write fewer per key: a crash
    // before it leaves the marker, and recovery adopts the key the Secret already holds. Nor does it
    // get an Event: the Ready condition and `status.keyId` say it, and at ten thousand keys an Event
    // each would be ten thousand writes nobody asked for. Every later key is announced.
    if reason != CreateKind::Create {
        ctx.event(
            key,
            false,
            "KeyIssued",
            "Create",
            format!("provider key {} issued ({})", created.record.id, reason.as_str()),
        )
        .await;
    }

    match previous {
        Some(old) if rotating => {
            let note = format!("new key in the Secret; previous key {old} stays valid for the overlap");
            ctx.event(key, false, "KeyRotated", "Rotate", note).await;
        }
        // Recorded above as due now: revoked here, and retried on the next reconcile should this fail.
        Some(_) => revoke_previous(key, ctx, provider, status, Revoke::Now).await?,
        None => {}
    }
    Ok((created.record, created.value))
}

/// Adds the finalizer and the first key's crash-safety marker ([`keysmith_api::well_known::ISSUING_ANNOTATION`]) in one
/// merge patch, conditional on the version the decision to create was made from (a conflict means a
/// stale decision, retried from fresh state). A merge patch, like the finalizer helpers of kube-rs,
/// and not an apply: it is the cheaper write for the API server, and keysmith owns no other field of
/// the ApiKey's metadata that an apply would track.
async fn mark_first_issue(key: &ApiKey, ctx: &Context, api: &Api<ApiKey>, tag: &str) -> SyncResult<()> {
    let mut finalizers = key.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    let body = serde_json::json!({
        "metadata": {
            "resourceVersion": key.resource_version(),
            "finalizers": finalizers,
            "annotations": { keysmith_api::well_known::ISSUING_ANNOTATION: tag },
        },
    });
    let written = api
        .patch(&key.name_any(), &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(Error::kube("add the finalizer and the create marker"))?;
    ctx.wrote(&key.uid().unwrap_or_default(), written.resource_version());
    Ok(())
}

/// Finishes an interrupted create: adopts the key the Secret holds (or, where the provider can show a
/// value again, the key whose value it reveals), revokes every other key this ApiKey made except the
/// one status already records, then clears the marker. Returns a revealed key and its value.
async fn recover(
    key: &ApiKey,
    ctx: &Arc<Context>,
    provider: &DynProvider,
    uid: &str,
    secret_key_id: Option<&str>,
    status: &mut ApiKeyStatus,
) -> SyncResult<Option<(String, SecretValue)>> {
    let previous = status.rotation.as_ref().and_then(|r| r.previous_key_id.clone());
    let mine: Vec<KeyRecord> = provider
        .list_keys()
        .await?
        .into_iter()
        .filter(|k| keysmith_providers::tag::tagged_uid(&k.name) == Some(uid))
        .collect();
    let recorded = |id: &String| Some(id) == status.key_id.as_ref() || Some(id) == previous.as_ref();
    let mut adopted = secret_key_id
        .filter(|id| mine.iter().any(|k| k.id == *id))
        .map(str::to_owned);
    let mut revealed = None;
    if adopted.is_none() {
        // Nobody holds the new key's value, but this provider can show it again: adopting it spares
        // a revoke and a second create.
        for k in mine.iter().filter(|k| !recorded(&k.id)) {
            if let Some(value) = provider.reveal_key(&k.id).await? {
                info!(key_id = %k.id, "adopting a key left behind by an interrupted create");
                adopted = Some(k.id.clone());
                revealed = Some((k.id.clone(), value));
                break;
            }
        }
    }
    for k in &mine {
        let keep = Some(&k.id) == adopted.as_ref() || recorded(&k.id);
        if !keep {
            warn!(key_id = %k.id, "revoking a key left behind by an interrupted create");
            provider.delete_key(&k.id).await?;
        }
    }
    let rotating = status
        .pending_create
        .as_ref()
        .is_some_and(|p| p.reason == CreateKind::Rotate);
    if let Some(id) = adopted {
        // The Secret holds this key: it replaces whatever status recorded.
        if let Some(old) = status.key_id.replace(id.clone()).filter(|old| *old != id) {
            if rotating {
                // The interrupted rotation finishes as planned: the old key lives out its overlap.
                retire_after_overlap(key, status, old, ctx.clock.now());
            } else {
                provider.delete_key(&old).await?;
            }
        }
    }
    status.pending_create = None;
    Ok(revealed)
}

/// Records a rotation: the previous key stays valid until the overlap ends.
fn retire_after_overlap(key: &ApiKey, status: &mut ApiKeyStatus, previous: String, now: jiff::Timestamp) {
    let overlap = jiff::SignedDuration::try_from(plan::rotation_overlap(key)).unwrap_or_default();
    let rotation = status.rotation.get_or_insert_with(Default::default);
    rotation.previous_key_id = Some(previous);
    rotation.previous_key_revoke_at = now.checked_add(overlap).ok().map(|t| t.to_string());
    rotation.last_rotated_at = Some(now.to_string());
    rotation.next_rotation_at = plan::next_rotation(key, now).map(|t| t.to_string());
    rotation.last_requested_token = key
        .annotations()
        .get(keysmith_api::well_known::ROTATE_ANNOTATION)
        .cloned();
}

/// When to revoke the previous key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Revoke {
    /// Once its overlap has ended.
    IfDue,
    /// Now, whatever its overlap.
    Now,
}

/// Revokes the previous key recorded in status. It leaves status only after the provider confirmed,
/// so a failed call is retried on the next reconcile and no key is ever left without a record.
async fn revoke_previous(
    key: &ApiKey,
    ctx: &Arc<Context>,
    provider: &DynProvider,
    status: &mut ApiKeyStatus,
    when: Revoke,
) -> SyncResult<()> {
    let Some(rotation) = status.rotation.as_mut() else {
        return Ok(());
    };
    let due = when == Revoke::Now
        || rotation
            .previous_key_revoke_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t <= ctx.clock.now());
    if let (true, Some(old)) = (due, rotation.previous_key_id.clone()) {
        provider.delete_key(&old).await?;
        rotation.previous_key_id = None;
        rotation.previous_key_revoke_at = None;
        ctx.event(
            key,
            false,
            "KeyRevoked",
            "Delete",
            format!("previous provider key {old} revoked"),
        )
        .await;
    }
    Ok(())
}

fn new_tag(uid: &str) -> String {
    let nonce: u32 = rand::random();
    keysmith_providers::tag::attempt_tag(uid, &format!("{nonce:08x}"))
}

/// Writes the Secret unless it already has the desired content.
async fn apply_secret(
    ctx: &Context,
    key: &ApiKey,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    value: &SecretValue,
    key_id: Option<&str>,
    delivery: &plan::Delivery,
) -> SyncResult<()> {
    let desired = plan::desired_secret(key, value, key_id, delivery);
    if let Some(have) = existing
        && secret_matches(have, &desired)
    {
        return Ok(());
    }
    let written = secrets
        .patch(
            &plan::secret_name(key),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(Error::kube("apply Secret"))?;
    ctx.wrote_secret(&key.uid().unwrap_or_default(), written.resource_version());
    Ok(())
}

fn secret_matches(have: &Secret, want: &Secret) -> bool {
    let subset = |want: Option<&std::collections::BTreeMap<String, String>>,
                  have: Option<&std::collections::BTreeMap<String, String>>| {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    };
    have.data == want.data
        && have.type_ == want.type_
        && subset(want.metadata.labels.as_ref(), have.metadata.labels.as_ref())
        && subset(
            want.metadata.annotations.as_ref(),
            have.metadata.annotations.as_ref(),
        )
        && want.metadata.owner_references.iter().flatten().all(|r| {
            have.owner_references()
                .iter()
                .any(|h| h.uid == r.uid && h.controller == r.controller)
        })
}
