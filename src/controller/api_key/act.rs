//! Carrying out a [`Step`]: the only place that calls the provider and writes the key's Secret.
//!
//! # Expected flow
//! [`Run::sync`] asks [`decide`] for a step, performs it, and asks again until a final step is done.
//! Status is updated in place; the caller writes it once at the end, except where the create
//! protocol below needs a write before the next call.
//!
//! # Guarantees (DESIGN §2.2)
//! A new key is made by [`Run::create`] alone, in four steps:
//! 1. record the attempt *before* calling the provider: `status.pendingCreate` (with the attempt's
//!    tag), or, for an ApiKey's first key, the `keysmith.dev/issuing` annotation written with the
//!    finalizer, conditional on the version the decision was made from;
//! 2. create the key (its provider-side name carries the tag) or regenerate its value;
//! 3. write the Secret (value plus the key id in an annotation) *before* recording success;
//! 4. record the key in status and clear the marker.
//!
//! A crash between 1 and 4 leaves the marker. The next sync's [`Step::Recover`] lists the provider's
//! keys, adopts the one the Secret holds (crash between 3 and 4), revokes every other key carrying
//! this ApiKey's uid (crash between 2 and 3: nobody holds its value), then mints afresh if needed. A
//! previous key leaves status only once the provider confirmed its revocation.
//!
//! # Assumptions
//! Provider calls are idempotent but for create, which the marker guards. The ApiKey's uid is stable.
//!
//! # Errors
//! A failed call ends the sync with a [`Problem`]; what was recorded stays recorded, and the next
//! reconcile continues from there.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use keysmith_api::{
    ApiKey, ApiKeyStatus, Capabilities, CreateKind, Enforcement, FIELD_MANAGER, ModelHub, PendingCreate,
    Suspension, SuspensionReason, reasons::Reason, well_known::ISSUING_ANNOTATION,
};
use keysmith_limits::{KeyUsage, operator_expired};
use keysmith_providers::{CreatedKey, DynProvider, KeyRecord, KeySettings, SecretValue, tag};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};
use tracing::{info, warn};

use super::{
    Problem, SyncResult,
    decide::{ImportView, Observed, Record, Step, decide},
};
use crate::{
    controller::{Context, Error, failpoint, finalizer, get_cached},
    plan,
};

/// Most steps one sync takes; `decide` ends every path well within it.
const MAX_STEPS: usize = 12;

/// One sync of one ApiKey: what it observed and the handles it acts through.
pub struct Run<'a> {
    pub ctx: &'a Arc<Context>,
    pub key: &'a ApiKey,
    pub hub: &'a ModelHub,
    pub provider: DynProvider,
    pub caps: Capabilities,
    pub secrets: Api<Secret>,
    /// The target Secret as read before the sync.
    pub existing: Option<Secret>,
    /// Whether the Secret was left unread (an ApiKey that never had a key; see `Target::Unread`).
    pub unread: bool,
    pub delivery: plan::Delivery,
    /// The value the target Secret holds and the key id it names.
    pub held: Option<(SecretValue, Option<String>)>,
    pub record: Record,
    pub recovered: bool,
    /// For an import: the value to deliver, the value the import Secret holds, and what is known.
    pub import: Option<(SecretValue, SecretValue, ImportView)>,
    pub fresh_tag: String,
}

/// What a finished sync delivers.
pub struct Delivered {
    /// Usage to report; `None` while the key is suspended on purpose.
    pub usage: Option<KeyUsage>,
}

impl Run<'_> {
    fn observed<'s>(&'s self, status: &'s ApiKeyStatus) -> Observed<'s> {
        let held_id = self.held.as_ref().and_then(|(_, id)| id.as_deref());
        Observed {
            key: self.key,
            hub: self.hub,
            caps: self.caps.clone(),
            expiry_in_place: self.provider.expiry_in_place(),
            status,
            held_id,
            record: &self.record,
            recovered: self.recovered,
            import: self.import.as_ref().map(|(_, _, view)| view),
            fresh_tag: &self.fresh_tag,
            now: self.ctx.clock.now(),
        }
    }

    /// Decides and acts until a final step is done.
    pub async fn sync(mut self, status: &mut ApiKeyStatus) -> SyncResult<Delivered> {
        for _ in 0..MAX_STEPS {
            let step = decide(&self.observed(status));
            let last = step.is_final();
            if let Some(delivered) = self.act(step, status).await? {
                return Ok(delivered);
            }
            if last {
                break;
            }
        }
        Err(Problem::Stuck)
    }

    async fn act(&mut self, step: Step, status: &mut ApiKeyStatus) -> SyncResult<Option<Delivered>> {
        match step {
            Step::Recover => self.recover(status).await?,
            Step::RevokePrevious => self.revoke_previous(status).await?,
            Step::FinishRevoke => self.finish_revoke(status).await?,
            Step::Restore => {
                status.suspended = None;
                self.event(
                    Reason::KeyRestored,
                    "Create",
                    "the key may work again and the provider cannot re-enable a revoked key: issuing a new one"
                        .into(),
                )
                .await;
            }
            Step::ReadRecord => {
                self.record = match &status.key_id {
                    Some(id) => self
                        .provider
                        .get_key(id)
                        .await?
                        .map_or(Record::Missing, Record::Found),
                    None => Record::Missing,
                };
            }
            Step::Regenerate(why) => self.regenerate(why, status).await?,
            Step::CheckImported => {
                if let Some((value, _, view)) = &mut self.import {
                    self.provider.inspect_imported(value).await?;
                    view.validated = true;
                }
            }
            Step::Validate => return self.validate(status).await.map(Some),
            Step::Keep | Step::Update { .. } | Step::Issue(..) => {
                return self.deliver(step, status).await.map(Some);
            }
            Step::Suspend { why, report_usage } => {
                let usage = match (&self.record, report_usage) {
                    (Record::Found(record), true) => Some(record.usage.clone()),
                    _ => None,
                };
                self.suspend(why, status).await?;
                return Ok(Some(Delivered { usage }));
            }
            Step::Withhold(why) => {
                status.key_id = None;
                status.suspended = Some(Suspension {
                    reason: why,
                    since: self.ctx.clock.now().to_string(),
                    revoked_key_id: None,
                });
                return Ok(Some(Delivered { usage: None }));
            }
            Step::StaySuspended => {
                return Ok(Some(Delivered { usage: None }));
            }
        }
        Ok(None)
    }

    /// The final steps that leave a working key: keep it, change it in place, or issue a new one;
    /// then the Secret and status say so.
    async fn deliver(&mut self, step: Step, status: &mut ApiKeyStatus) -> SyncResult<Delivered> {
        let current = match (&self.record, &self.import) {
            (_, Some((_, _, view))) => view.record.clone(),
            (Record::Found(record), None) => Some(record.clone()),
            _ => None,
        };
        let value = match &self.import {
            Some((value, _, _)) => Some(value.clone()),
            None => self.held.as_ref().map(|(value, _)| value.clone()),
        };
        let (record, value, fresh) = match (step, current, value) {
            (Step::Keep, Some(record), Some(value)) => (record, value, false),
            (Step::Update { desired, blocked }, Some(record), Some(value)) => {
                (self.update(&record, &desired, blocked).await?, value, false)
            }
            (Step::Issue(kind, why), _, _) => {
                let created = self.issue(kind, why, status).await?;
                (created.record, created.value, true)
            }
            _ => return Err(Problem::Stuck),
        };
        if !fresh {
            // The spec's Secret settings (labels, data key names, base URL) may have changed.
            self.apply_secret(&value, Some(&record.id)).await?;
        }
        status.key_id = Some(record.id.clone());
        status.key_label = record.label.clone();
        status.fingerprint = Some(value.fingerprint());
        status.expires_at = reported_expiry(self.key, &self.caps, &record);
        Ok(Delivered {
            usage: Some(record.usage),
        })
    }

    async fn update(
        &self,
        record: &KeyRecord,
        desired: &KeySettings,
        blocked: bool,
    ) -> SyncResult<KeyRecord> {
        let (reason, note) = update_note(record, desired, blocked);
        info!(key_id = %record.id, reason = reason.as_str(), "updating the provider key in place");
        self.event(reason, "Update", note).await;
        let mut updated = self.provider.update_key(&record.id, desired).await?;
        if updated.usage == KeyUsage::default() {
            // Some providers answer an update without usage figures; the record's still stand.
            updated.usage = record.usage.clone();
        }
        Ok(updated)
    }

    /// An import the provider keeps no record of: validated with the key itself and delivered.
    async fn validate(&mut self, status: &mut ApiKeyStatus) -> SyncResult<Delivered> {
        let Some((value, _, _)) = self.import.clone() else {
            return Err(Problem::Stuck);
        };
        let key_id = self.key.spec.import.as_ref().and_then(|i| i.key_id.clone());
        let info = self.provider.inspect_imported(&value).await?;
        self.apply_secret(&value, key_id.as_deref()).await?;
        status.key_id = key_id;
        status.key_label = info.label;
        status.fingerprint = Some(value.fingerprint());
        Ok(Delivered {
            usage: Some(info.usage),
        })
    }

    /// Issues a new key and revokes (or, for a rotation, retires after the overlap) the one it
    /// replaces.
    async fn issue(
        &mut self,
        kind: CreateKind,
        why: Option<&str>,
        status: &mut ApiKeyStatus,
    ) -> SyncResult<CreatedKey> {
        match kind {
            CreateKind::Rotate => {
                let note = format!("rotation {}: issuing a new key", why.unwrap_or("due"));
                self.event(Reason::KeyRotating, "Rotate", note).await;
            }
            CreateKind::Reissue => {
                let note = "expiry changed and the provider cannot change it in place: issuing a new key";
                self.event(Reason::KeyReissued, "Reissue", note.into()).await;
            }
            CreateKind::Replace => warn!("provider key or its Secret is missing: issuing a new key"),
            CreateKind::Create | CreateKind::Regenerate => {}
        }
        // One previous key at a time: a key still in its overlap is revoked before another takes its
        // place, so no key is ever left without a record.
        self.revoke_previous(status).await?;
        let uid = self.key.uid().ok_or(Error::MissingUid)?;
        let tag = new_tag(&uid);
        let mut desired = plan::desired_settings(self.key, self.hub, &tag);
        // A new key has no usage yet, but it may be born past an expiry only keysmith enforces.
        desired.disabled |= operator_expired(self.key, &self.caps, self.ctx.clock.now());
        let marker = PendingCreate {
            tag: tag.clone(),
            reason: kind,
        };
        let provider = self.provider.clone();
        let created = self
            .create(marker, status, async move { provider.create_key(&desired).await })
            .await?;

        let now = self.ctx.clock.now();
        let previous = status
            .key_id
            .replace(created.record.id.clone())
            .filter(|old| *old != created.record.id);
        status.key_label = created.record.label.clone();
        status.fingerprint = Some(created.value.fingerprint());
        status.expires_at = reported_expiry(self.key, &self.caps, &created.record);
        let rotating = kind == CreateKind::Rotate;
        if let Some(old) = previous.clone() {
            // Recorded in the same write as the new key, so status never loses track of the old one:
            // a crash or a failed revocation below is retried by `RevokePrevious`.
            if rotating {
                retire_after_overlap(self.key, status, old, now);
            } else {
                let rotation = status.rotation.get_or_insert_with(Default::default);
                rotation.previous_key_id = Some(old);
                rotation.previous_key_revoke_at = Some(now.to_string());
            }
            // The old key must be on record before anything revokes it or lets its overlap run.
            self.write_status(status, None).await?;
            failpoint("after-status-write");
        }
        // A first key is recorded by the reconcile's final status write, one write fewer per key: a
        // crash before it leaves the marker, and recovery adopts the key the Secret already holds. Nor
        // does it get an Event: the Ready condition and `status.keyId` say it, and at ten thousand keys
        // an Event each would be ten thousand writes nobody asked for. Every later key is announced.
        if kind != CreateKind::Create {
            let note = format!("provider key {} issued ({})", created.record.id, kind.as_str());
            self.event(Reason::KeyIssued, "Create", note).await;
        }
        match previous {
            Some(old) if rotating => {
                let note = format!("new key in the Secret; previous key {old} stays valid for the overlap");
                self.event(Reason::KeyRotated, "Rotate", note).await;
            }
            // Recorded above as due now: revoked here, and retried on the next reconcile should this fail.
            Some(_) => self.revoke_previous(status).await?,
            None => {}
        }
        Ok(created)
    }

    /// Regenerates an imported key's value in place, with the create protocol: should the new value
    /// be lost to a crash, the next sync regenerates again rather than trust a value the provider no
    /// longer accepts.
    async fn regenerate(&mut self, why: &str, status: &mut ApiKeyStatus) -> SyncResult<()> {
        let Some((_, source, view)) = self.import.clone() else {
            return Err(Problem::Stuck);
        };
        let Some(record) = view.record else {
            return Err(Problem::Stuck);
        };
        let note = format!("rotation {why}: regenerating the key's value in place");
        self.event(Reason::KeyRotating, "Rotate", note).await;
        // The import Secret still holds the value being replaced; remembered so the next sync
        // delivers the value keysmith wrote, until the user puts a new one there.
        let rotation = status.rotation.get_or_insert_with(Default::default);
        if rotation.replaced_import_fingerprint.is_none() {
            rotation.replaced_import_fingerprint = Some(source.fingerprint());
        }
        let marker = PendingCreate {
            tag: record.id.clone(),
            reason: CreateKind::Regenerate,
        };
        let provider = self.provider.clone();
        let id = record.id.clone();
        let created = self
            .create(marker, status, async move { provider.regenerate_key(&id).await })
            .await?;
        let now = self.ctx.clock.now();
        let rotation = status.rotation.get_or_insert_with(Default::default);
        rotation.last_rotated_at = Some(now.to_string());
        rotation.next_rotation_at = plan::next_rotation(self.key, now).map(|t| t.to_string());
        rotation.last_requested_token = self
            .key
            .annotations()
            .get(keysmith_api::well_known::ROTATE_ANNOTATION)
            .cloned();
        status.fingerprint = Some(created.value.fingerprint());
        self.write_status(status, None).await?;
        let note = format!(
            "key {} regenerated: the Secret holds the new value; the old value no longer works",
            created.record.id
        );
        self.event(Reason::KeyRotated, "Rotate", note).await;
        self.import = Some((
            created.value,
            source,
            ImportView {
                record: Some(created.record),
                regenerated: true,
                validated: view.validated,
            },
        ));
        Ok(())
    }

    /// The crash-safe create protocol (steps 1 to 3 of the module doc; the caller records success).
    async fn create(
        &mut self,
        marker: PendingCreate,
        status: &mut ApiKeyStatus,
        call: impl Future<Output = keysmith_providers::Result<CreatedKey>>,
    ) -> SyncResult<CreatedKey> {
        let first = !finalizer::present(self.key);
        let tag = marker.tag.clone();
        let marked = async {
            // Conditional on the version this decision was made from: a cache that missed an earlier
            // marker (the apiserver went away before its watch event arrived) must not create twice.
            if first {
                let api = self.api()?;
                let written = finalizer::add(&api, self.key, Some((ISSUING_ANNOTATION, &tag))).await?;
                self.ctx.wrote(&self.key.uid().unwrap_or_default(), written);
            } else {
                status.pending_create = Some(marker);
                self.write_status(status, self.key.resource_version()).await?;
            }
            Ok::<_, Problem>(())
        };
        let looked_up = async {
            if !self.unread {
                return Ok(None);
            }
            get_cached(&self.secrets, &plan::secret_name(self.key))
                .await
                .map_err(|e| Problem::from(Error::kube("get Secret")(e)))
        };
        let ((), found) = futures::try_join!(marked, looked_up)?;
        // A Secret of someone else's stops the create after its marker: the next reconcile reads the
        // Secret first, reports the same conflict, and once it is resolved finds no key to recover.
        if found.is_some() {
            ensure_ours(found.as_ref(), self.key)?;
            self.existing = found;
        }
        failpoint("before-provider-create");
        let created = call.await?;
        failpoint("after-provider-create");
        self.apply_secret(&created.value, Some(&created.record.id))
            .await?;
        failpoint("after-secret-write");
        status.pending_create = None;
        Ok(created)
    }

    /// Finishes an interrupted create: adopts the key the Secret holds (or, where the provider can
    /// show a value again, the key whose value it reveals), revokes every other key this ApiKey made
    /// except those status records, then clears the marker.
    async fn recover(&mut self, status: &mut ApiKeyStatus) -> SyncResult<()> {
        self.recovered = true;
        let uid = self.key.uid().ok_or(Error::MissingUid)?;
        let previous = status.rotation.as_ref().and_then(|r| r.previous_key_id.clone());
        let mine: Vec<KeyRecord> = self
            .provider
            .list_keys()
            .await?
            .into_iter()
            .filter(|k| tag::tagged_uid(&k.name) == Some(uid.as_str()))
            .collect();
        let recorded = |id: &String| Some(id) == status.key_id.as_ref() || Some(id) == previous.as_ref();
        let secret_key_id = self.held.as_ref().and_then(|(_, id)| id.clone());
        let mut adopted = secret_key_id.filter(|id| mine.iter().any(|k| k.id == *id));
        if adopted.is_none() {
            // Nobody holds the new key's value, but this provider can show it again: adopting it
            // spares a revoke and a second create.
            for k in mine.iter().filter(|k| !recorded(&k.id)) {
                if let Some(value) = self.provider.reveal_key(&k.id).await? {
                    info!(key_id = %k.id, "adopting a key left behind by an interrupted create");
                    adopted = Some(k.id.clone());
                    self.held = Some((value, Some(k.id.clone())));
                    break;
                }
            }
        }
        for k in &mine {
            if Some(&k.id) != adopted.as_ref() && !recorded(&k.id) {
                warn!(key_id = %k.id, "revoking a key left behind by an interrupted create");
                self.provider.delete_key(&k.id).await?;
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
                    retire_after_overlap(self.key, status, old, self.ctx.clock.now());
                } else {
                    self.provider.delete_key(&old).await?;
                }
            }
        }
        status.pending_create = None;
        self.record = Record::Unread;
        Ok(())
    }

    /// Stops a key the provider cannot disable by revoking it. The decision is recorded before the
    /// revocation: were the call's outcome lost, the next sync finishes it instead of taking the
    /// missing key for one to replace.
    async fn suspend(&mut self, why: SuspensionReason, status: &mut ApiKeyStatus) -> SyncResult<()> {
        status.suspended = Some(Suspension {
            reason: why,
            since: self.ctx.clock.now().to_string(),
            revoked_key_id: None,
        });
        self.write_status(status, None).await?;
        // A rotated-out key still in its overlap must stop working too.
        self.revoke_previous(status).await?;
        self.finish_revoke(status).await
    }

    /// Revokes the key a suspension still records as live, then records it as revoked.
    async fn finish_revoke(&mut self, status: &mut ApiKeyStatus) -> SyncResult<()> {
        let (Some(suspension), Some(id)) = (status.suspended.as_mut(), status.key_id.clone()) else {
            return Ok(());
        };
        self.provider.delete_key(&id).await?;
        let note = format!(
            "the provider cannot disable keys, so key {id} was revoked ({}); a new key is issued when it may work again",
            suspension.reason.as_str()
        );
        suspension.revoked_key_id = Some(id);
        status.key_id = None;
        status.key_label = None;
        self.record = Record::Missing;
        self.event(Reason::KeyBlocked, "Delete", note).await;
        Ok(())
    }

    /// Revokes the previous key recorded in status, whatever its overlap ([`decide`] says when it is
    /// due). It leaves status only after the provider confirmed, so a failed call is retried on the
    /// next sync and no key is left without a record.
    async fn revoke_previous(&self, status: &mut ApiKeyStatus) -> SyncResult<()> {
        let Some(rotation) = status.rotation.as_mut() else {
            return Ok(());
        };
        if let Some(old) = rotation.previous_key_id.clone() {
            self.provider.delete_key(&old).await?;
            rotation.previous_key_id = None;
            rotation.previous_key_revoke_at = None;
            let note = format!("previous provider key {old} revoked");
            self.event(Reason::KeyRevoked, "Delete", note).await;
        }
        Ok(())
    }

    /// Writes the Secret unless it already has the desired content.
    async fn apply_secret(&mut self, value: &SecretValue, key_id: Option<&str>) -> SyncResult<()> {
        let desired = plan::desired_secret(self.key, value, key_id, &self.delivery);
        if let Some(have) = &self.existing
            && secret_matches(have, &desired)
        {
            return Ok(());
        }
        let written = self
            .secrets
            .patch(
                &plan::secret_name(self.key),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(Error::kube("apply Secret"))?;
        self.ctx
            .wrote_secret(&self.key.uid().unwrap_or_default(), written.resource_version());
        self.existing = Some(written);
        Ok(())
    }

    fn api(&self) -> SyncResult<Api<ApiKey>> {
        let ns = self.key.namespace().ok_or(Error::MissingNamespace)?;
        Ok(Api::namespaced(self.ctx.client.clone(), &ns))
    }

    async fn write_status(&self, status: &ApiKeyStatus, at: Option<String>) -> SyncResult<()> {
        let api = self.api()?;
        Ok(self.ctx.write_key_status(&api, self.key, at, status).await?)
    }

    async fn event(&self, reason: Reason, action: &str, note: String) {
        self.ctx
            .event(self.key, EventType::Normal, reason.as_str(), action, note)
            .await;
    }
}

/// Refuses a target Secret that exists and is not this ApiKey's: keysmith never overwrites it.
pub fn ensure_ours(secret: Option<&Secret>, key: &ApiKey) -> SyncResult<()> {
    match secret {
        Some(secret) if !plan::secret_owned_by(secret, key) => {
            Err(Problem::SecretConflict(plan::secret_name(key)))
        }
        _ => Ok(()),
    }
}

/// The Event for an in-place update, naming why the key is switched off or on when keysmith does it.
fn update_note(record: &KeyRecord, desired: &KeySettings, blocked: bool) -> (Reason, String) {
    match (record.settings.disabled, desired.disabled, blocked) {
        (false, true, true) => (
            Reason::KeyBlocked,
            "a limit only keysmith enforces was reached (or the key expired): key disabled at the provider"
                .into(),
        ),
        (true, false, _) => (Reason::KeyRestored, "key enabled again at the provider".into()),
        _ => (
            Reason::KeyUpdated,
            "provider key updated to match the spec".into(),
        ),
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

fn new_tag(uid: &str) -> String {
    let nonce: u32 = rand::random();
    tag::attempt_tag(uid, &format!("{nonce:08x}"))
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
