//! Bringing one ApiKey's provider key and Secret in line with its spec.
//!
//! Pipeline: hub → provider client → Secret ownership check → (import | recover → mint or update) →
//! Secret → usage. Each provider call is safe to repeat. The create protocol keeps DESIGN §2.2:
//! 1. record `status.pendingCreate` (with the attempt's tag) *before* calling the provider;
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

use super::{Context, Error, failpoint, patch_status, providers::HubClientError};
use crate::{
    crd::{ApiKey, ApiKeyStatus, FIELD_MANAGER, ModelHub, PendingCreate, Usage},
    plan::{self, KeyChange},
    provider::{self, DynProvider, KeyRecord, SecretValue},
};

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
    Provider(#[from] provider::Error),
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
    /// The provider client, for capabilities.
    pub provider: DynProvider,
    /// Usage to report.
    pub usage: Usage,
}

type SyncResult<T> = std::result::Result<T, Problem>;

/// Syncs `key`, updating `status` in place. Writes status itself only where the crash-safety protocol
/// requires it; the caller writes the final status.
pub async fn sync(key: &ApiKey, ctx: &Arc<Context>, status: &mut ApiKeyStatus) -> SyncResult<Synced> {
    let ns = key.namespace().ok_or(Error::MissingNamespace)?;
    let hub = Api::<ModelHub>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&key.spec.hub_ref.name)
        .await
        .map_err(Error::kube("get ModelHub"))?
        .ok_or_else(|| Problem::HubNotFound(key.spec.hub_ref.name.clone()))?;
    let importing = key.spec.import.is_some();
    let provider = ctx
        .providers
        .client(&ctx.client, &hub, !importing)
        .await
        .map_err(|source| Problem::Hub {
            hub: hub.name_any(),
            source,
        })?;

    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    let secret_name = plan::secret_name(key);
    let existing = secrets
        .get_opt(&secret_name)
        .await
        .map_err(Error::kube("get Secret"))?;
    if let Some(s) = &existing
        && !plan::secret_owned_by(s, key)
    {
        return Err(Problem::SecretConflict(secret_name));
    }
    status.secret_name = Some(secret_name);
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
        published: plan::published_limits(key, &hub),
    };

    let usage = if importing {
        import(key, &secrets, existing.as_ref(), &provider, &delivery, status).await?
    } else {
        mint(
            key,
            ctx,
            &hub,
            &secrets,
            existing.as_ref(),
            &provider,
            &delivery,
            status,
        )
        .await?
    };
    let reset = plan::budget_reset_in_force(key, &hub);
    Ok(Synced {
        usage: plan::usage_status(&usage, reset, jiff::Timestamp::now()),
        hub,
        provider,
    })
}

async fn import(
    key: &ApiKey,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    provider: &DynProvider,
    delivery: &plan::Delivery,
    status: &mut ApiKeyStatus,
) -> SyncResult<provider::KeyUsage> {
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
    let value = SecretValue::new(value.trim());
    if value.expose().is_empty() {
        return Err(missing());
    }
    let info = provider.inspect_imported(&value).await?;
    apply_secret(key, secrets, existing, &value, import.key_id.as_deref(), delivery).await?;
    status.key_id = import.key_id.clone();
    status.key_label = info.label;
    status.fingerprint = Some(value.fingerprint());
    Ok(info.usage)
}

#[allow(clippy::too_many_arguments)]
async fn mint(
    key: &ApiKey,
    ctx: &Arc<Context>,
    hub: &ModelHub,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    provider: &DynProvider,
    delivery: &plan::Delivery,
    status: &mut ApiKeyStatus,
) -> SyncResult<provider::KeyUsage> {
    let uid = key.uid().ok_or(Error::MissingUid)?;
    let held_value = existing.and_then(|s| plan::secret_value(s, key));
    let held_id = existing.and_then(plan::secret_key_id).map(str::to_owned);

    if status.pending_create.is_some() {
        let secret_key_id = held_value.is_some().then_some(held_id.as_deref()).flatten();
        recover(key, provider, &uid, secret_key_id, status).await?;
    }
    revoke_previous(key, ctx, provider, status, Revoke::IfDue).await?;

    let record = match &status.key_id {
        Some(id) => provider.get_key(id).await?,
        None => None,
    };
    let value_matches = held_value.is_some() && held_id.is_some() && held_id == status.key_id;

    // `fresh`: a key was just issued and its Secret written, so the Secret needs no second look.
    let (record, value, fresh) = match (record, held_value) {
        (Some(record), Some(value)) if value_matches => {
            let tag = plan::name_tag(&record.name)
                .map(str::to_owned)
                .unwrap_or_else(|| new_tag(&uid));
            let desired = plan::desired_settings(key, hub, &tag);
            let rotation = plan::rotation_due(key, status, jiff::Timestamp::now());
            match plan::key_change(
                &record,
                &desired,
                &provider.capabilities(),
                provider.expiry_in_place(),
            ) {
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
                        key, ctx, hub, secrets, existing, provider, delivery, status, "Rotate",
                    )
                    .await?;
                    (record, value, true)
                }
                KeyChange::None => (record, value, false),
                KeyChange::Update => {
                    info!(key_id = %record.id, "updating provider key in place");
                    ctx.event(
                        key,
                        false,
                        "KeyUpdated",
                        "Update",
                        "provider key updated to match the spec".into(),
                    )
                    .await;
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
                        key, ctx, hub, secrets, existing, provider, delivery, status, "Reissue",
                    )
                    .await?;
                    (record, value, true)
                }
            }
        }
        (record, _) => {
            // No key yet, the key vanished at the provider, or the Secret lost its value: a new key is
            // the only way to deliver one (the old value cannot be read back).
            let reason = if status.key_id.is_none() {
                "Create"
            } else {
                "Replace"
            };
            if record.is_some() || status.key_id.is_some() {
                warn!(reason, "provider key or its Secret is missing: issuing a new key");
            }
            let (record, value) = issue(
                key, ctx, hub, secrets, existing, provider, delivery, status, reason,
            )
            .await?;
            (record, value, true)
        }
    };

    if !fresh {
        // The spec's Secret settings (labels, data key names, base URL) may have changed.
        apply_secret(key, secrets, existing, &value, Some(&record.id), delivery).await?;
    }
    status.key_id = Some(record.id.clone());
    status.key_label = record.label.clone();
    status.fingerprint = Some(value.fingerprint());
    status.expires_at = record.settings.expires_at.map(|t| t.to_string());
    Ok(record.usage)
}

/// Mints a key with the crash-safe protocol, writes its Secret, and revokes the key it replaces.
#[allow(clippy::too_many_arguments)]
async fn issue(
    key: &ApiKey,
    ctx: &Arc<Context>,
    hub: &ModelHub,
    secrets: &Api<Secret>,
    existing: Option<&Secret>,
    provider: &DynProvider,
    delivery: &plan::Delivery,
    status: &mut ApiKeyStatus,
    reason: &str,
) -> SyncResult<(KeyRecord, SecretValue)> {
    let uid = key.uid().ok_or(Error::MissingUid)?;
    // One previous key at a time: a key still in its overlap is revoked before another takes its place,
    // so no key is ever left without a record.
    // One previous key at a time: a key still in its overlap is revoked before another takes its place.
    revoke_previous(key, ctx, provider, status, Revoke::Now).await?;
    let tag = new_tag(&uid);
    status.pending_create = Some(PendingCreate {
        tag: tag.clone(),
        reason: reason.to_owned(),
    });
    let api = Api::<ApiKey>::namespaced(
        ctx.client.clone(),
        &key.namespace().ok_or(Error::MissingNamespace)?,
    );
    patch_status(&api, &key.name_any(), status).await?;
    failpoint("before-provider-create");

    let desired = plan::desired_settings(key, hub, &tag);
    let created = provider.create_key(&desired).await?;
    failpoint("after-provider-create");

    apply_secret(
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
    status.expires_at = created.record.settings.expires_at.map(|t| t.to_string());
    let rotating = reason == "Rotate";
    if let Some(old) = previous.clone() {
        // Recorded in the same write as the new key, so status never loses track of the old one: a
        // crash or a failed revocation below is retried by `revoke_previous`.
        if rotating {
            retire_after_overlap(key, status, old, jiff::Timestamp::now());
        } else {
            let rotation = status.rotation.get_or_insert_with(Default::default);
            rotation.previous_key_id = Some(old);
            rotation.previous_key_revoke_at = Some(jiff::Timestamp::now().to_string());
        }
    }
    patch_status(&api, &key.name_any(), status).await?;
    failpoint("after-status-write");
    ctx.event(
        key,
        false,
        "KeyIssued",
        "Create",
        format!("provider key {} issued ({reason})", created.record.id),
    )
    .await;

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

/// Finishes an interrupted create: adopts the key the Secret holds, revokes every other key this
/// ApiKey made except the one status already records, then clears the marker.
async fn recover(
    key: &ApiKey,
    provider: &DynProvider,
    uid: &str,
    secret_key_id: Option<&str>,
    status: &mut ApiKeyStatus,
) -> SyncResult<()> {
    let previous = status.rotation.as_ref().and_then(|r| r.previous_key_id.clone());
    let mine: Vec<KeyRecord> = provider
        .list_keys()
        .await?
        .into_iter()
        .filter(|k| plan::tagged_uid(&k.name) == Some(uid))
        .collect();
    let adopted = secret_key_id
        .filter(|id| mine.iter().any(|k| k.id == *id))
        .map(str::to_owned);
    for k in &mine {
        let keep = Some(&k.id) == adopted.as_ref()
            || Some(&k.id) == status.key_id.as_ref()
            || Some(&k.id) == previous.as_ref();
        if !keep {
            warn!(key_id = %k.id, "revoking a key left behind by an interrupted create");
            provider.delete_key(&k.id).await?;
        }
    }
    let rotating = status
        .pending_create
        .as_ref()
        .is_some_and(|p| p.reason == "Rotate");
    if let Some(id) = adopted {
        // The Secret holds this key: it replaces whatever status recorded.
        if let Some(old) = status.key_id.replace(id.clone()).filter(|old| *old != id) {
            if rotating {
                // The interrupted rotation finishes as planned: the old key lives out its overlap.
                retire_after_overlap(key, status, old, jiff::Timestamp::now());
            } else {
                provider.delete_key(&old).await?;
            }
        }
    }
    status.pending_create = None;
    Ok(())
}

/// Records a rotation: the previous key stays valid until the overlap ends.
fn retire_after_overlap(key: &ApiKey, status: &mut ApiKeyStatus, previous: String, now: jiff::Timestamp) {
    let overlap = jiff::SignedDuration::try_from(plan::rotation_overlap(key)).unwrap_or_default();
    let rotation = status.rotation.get_or_insert_with(Default::default);
    rotation.previous_key_id = Some(previous);
    rotation.previous_key_revoke_at = now.checked_add(overlap).ok().map(|t| t.to_string());
    rotation.last_rotated_at = Some(now.to_string());
    rotation.next_rotation_at = plan::next_rotation(key, now).map(|t| t.to_string());
    rotation.last_requested_token = key.annotations().get(plan::ROTATE_ANNOTATION).cloned();
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
            .is_some_and(|t| t <= jiff::Timestamp::now());
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
    plan::attempt_tag(uid, &format!("{nonce:08x}"))
}

/// Writes the Secret unless it already has the desired content.
async fn apply_secret(
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
    secrets
        .patch(
            &plan::secret_name(key),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(Error::kube("apply Secret"))?;
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
