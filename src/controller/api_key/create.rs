//! The crash-safe create protocol (DESIGN §2.2), written once, and the recovery that finishes it.
//!
//! A new key, or an imported key's regenerated value, is made by [`Run::create`] alone, in four
//! steps:
//! 1. record the attempt *before* calling the provider: `status.pendingCreate` (with the attempt's
//!    tag), or, for an ApiKey's first key, the `keysmith.dev/issuing` annotation written with the
//!    finalizer, conditional on the version the decision was made from;
//! 2. create the key (its provider-side name carries the tag) or regenerate its value;
//! 3. write the Secret (value plus the key id in an annotation) *before* recording success;
//! 4. record the key in status and clear the marker.
//!
//! A crash between 1 and 4 leaves the marker. The next sync's [`Run::recover`] lists the provider's
//! keys, adopts the one the Secret holds (crash between 3 and 4), revokes every other key carrying
//! this ApiKey's uid (crash between 2 and 3: nobody holds its value), then mints afresh if needed.

use keysmith_api::{
    ApiKeyStatus, CreateKind, PendingCreate,
    reasons::Reason,
    well_known::{APIKEY_FINALIZER, ISSUING_ANNOTATION, ROTATE_ANNOTATION},
};
use keysmith_limits::operator_expired;
use keysmith_providers::{CreatedKey, KeyRecord, tag};
use kube::ResourceExt;
use tracing::{info, warn};

use super::{
    Problem, SyncResult,
    act::{Run, ensure_ours, new_tag, reported_expiry, retire_after_overlap},
    decide::{ImportView, Record},
};
use crate::{
    controller::{Error, failpoint, finalizer, get_cached},
    plan,
};

impl Run<'_> {
    /// Issues a new key and revokes (or, for a rotation, retires after the overlap) the one it
    /// replaces.
    pub(super) async fn issue(
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
                let note = "expiry changed and the provider cannot change it in place: issuing a new key; the previous one stays valid for the overlap";
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
        if let Some(gateway) = self.gateway.as_mut() {
            // Through the gateway, the app key issued for the key being replaced keeps working exactly
            // as long as that key does.
            gateway.carry_previous = kind.keeps_previous();
            gateway.previous_live = kind.keeps_previous();
        }
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
        let rotating = kind.keeps_previous();
        if let Some(old) = previous.clone() {
            // Recorded in the same write as the new key, so status never loses track of the old one:
            // a crash or a failed revocation below is retried by `RevokePrevious`.
            if rotating {
                retire_after_overlap(self.key, status, old, now);
            } else {
                let rotation = status.rotation.get_or_insert_with(Default::default);
                rotation.previous_key_id = Some(old);
                rotation.previous_key_revoke_at = Some(now.into());
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
            // A re-issue said so when it began.
            Some(_) if kind == CreateKind::Reissue => {}
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
    pub(super) async fn regenerate(&mut self, why: &str, status: &mut ApiKeyStatus) -> SyncResult<()> {
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
        rotation.last_rotated_at = Some(now.into());
        rotation.next_rotation_at = plan::next_rotation(self.key, now).map(Into::into);
        rotation.last_requested_token = self.key.annotations().get(ROTATE_ANNOTATION).cloned();
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
    pub(super) async fn create(
        &mut self,
        marker: PendingCreate,
        status: &mut ApiKeyStatus,
        call: impl Future<Output = keysmith_providers::Result<CreatedKey>>,
    ) -> SyncResult<CreatedKey> {
        let first = !finalizer::present(self.key, APIKEY_FINALIZER);
        let tag = marker.tag.clone();
        let marked = async {
            // Conditional on the version this decision was made from: a cache that missed an earlier
            // marker (the apiserver went away before its watch event arrived) must not create twice.
            if first {
                let api = self.api()?;
                let written =
                    finalizer::add(&api, self.key, APIKEY_FINALIZER, Some((ISSUING_ANNOTATION, &tag)))
                        .await?;
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
        self.claim_secret()?;
        failpoint("before-provider-create");
        let created = call.await?;
        failpoint("after-provider-create");
        if let Err(err) = self.apply_secret(&created.value, Some(&created.record.id)).await {
            return Err(self.unclaimed(&created.record.id, err).await);
        }
        failpoint("after-secret-write");
        status.pending_create = None;
        Ok(created)
    }

    /// The Secret write after a create failed with `err`. If another ApiKey's Secret took the name
    /// meanwhile (two ApiKeys created at once naming one Secret: the apiserver refuses a second
    /// controller reference), the key just made can be delivered nowhere: it is revoked now, rather than
    /// left live behind a conflict that keeps recovery from running, and the conflict is reported.
    async fn unclaimed(&self, id: &str, err: Problem) -> Problem {
        let name = plan::secret_name(self.key);
        match self.secrets.get_opt(&name).await {
            Ok(Some(secret)) if !plan::secret_owned_by(&secret, self.key) => {
                match self.provider.delete_key(id).await {
                    Ok(()) => {
                        warn!(key_id = %id, secret = %name, "another ApiKey holds the Secret: the key just made is revoked");
                        Problem::SecretConflict(name)
                    }
                    Err(e) => e.into(),
                }
            }
            _ => err,
        }
    }

    /// Finishes an interrupted create: adopts the key the Secret holds (or, where the provider can
    /// show a value again, the key whose value it reveals), revokes every other key this ApiKey made
    /// except those status records, then clears the marker.
    pub(super) async fn recover(&mut self, status: &mut ApiKeyStatus) -> SyncResult<()> {
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
            .is_some_and(|p| p.reason.keeps_previous());
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
}
