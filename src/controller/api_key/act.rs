//! Carrying out a [`Step`]: the only place that calls the provider and writes the key's Secret.
//!
//! # Expected flow
//! [`Run::sync`] asks [`decide`] for a step, performs it, and asks again until a final step is done.
//! Status is updated in place; the caller writes it once at the end, except where the create
//! protocol below needs a write before the next call.
//!
//! # Guarantees
//! Every new key goes through the crash-safe create protocol in [`super::create`], and a previous
//! key leaves status only once the provider confirmed its revocation.
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
    ApiKey, ApiKeyStatus, Capabilities, Enforcement, FIELD_MANAGER, ModelHub, StatusTime, Suspension,
    SuspensionReason, reasons::Reason,
};
use keysmith_limits::KeyUsage;
use keysmith_providers::{DynProvider, KeyRecord, KeySettings, SecretValue, tag};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::events::EventType,
};
use tracing::info;

use super::{
    Problem, SyncResult,
    decide::{ImportView, Observed, Record, Step, decide},
};
use crate::{
    controller::{Context, Error},
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
    /// The Secret keysmith wrote before `spec.secret.name` changed, which `held` was read from: removed
    /// once the Secret the spec names now holds the key.
    pub moved_from: Option<Secret>,
    pub record: Record,
    pub recovered: bool,
    /// For an import: the value to deliver, the value the import Secret holds, and what is known.
    pub import: Option<(SecretValue, SecretValue, ImportView)>,
    pub fresh_tag: String,
    /// The ClusterModelHub no longer allows the key's namespace: the key must not work.
    pub denied: bool,
    /// The gateway side, for a key delivered through keysmith-gateway (or one that left it).
    pub gateway: Option<super::gateway::GatewayRun>,
}

/// What a finished sync delivers.
pub struct Delivered {
    /// Usage to report; `None` while the key is suspended on purpose.
    pub usage: Option<KeyUsage>,
    /// `Some(true)` when a route Secret now holds the provider key, `Some(false)` when the key's route
    /// was removed, `None` when the sync wrote no Secret.
    pub through_gateway: Option<bool>,
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
            denied: self.denied,
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
                // What lifted the suspension (a new window, a new day) must not bring it back at once.
                status.usage = Some(keysmith_limits::usage_while_suspended(
                    status,
                    self.ctx.clock.now(),
                ));
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
                return Ok(Some(Delivered {
                    usage,
                    through_gateway: None,
                }));
            }
            Step::Withhold(why) => {
                status.key_id = None;
                status.suspended = Some(Suspension {
                    reason: why,
                    since: self.ctx.clock.now().into(),
                    revoked_key_id: None,
                });
                return Ok(Some(Delivered {
                    usage: None,
                    through_gateway: None,
                }));
            }
            Step::StaySuspended => {
                return Ok(Some(Delivered {
                    usage: None,
                    through_gateway: None,
                }));
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
            if let Some(gateway) = self.gateway.as_mut() {
                gateway.previous_live = status
                    .rotation
                    .as_ref()
                    .is_some_and(|r| r.previous_key_id.is_some());
            }
            // The spec's Secret settings (labels, data key names, base URL) may have changed.
            self.apply_secret(&value, Some(&record.id)).await?;
        }
        self.remove_moved().await?;
        status.key_id = Some(record.id.clone());
        status.key_label = record.label.clone();
        status.fingerprint = Some(value.fingerprint());
        status.expires_at = reported_expiry(self.key, &self.caps, &record);
        Ok(Delivered {
            usage: Some(record.usage),
            through_gateway: self.through_gateway(),
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
        self.remove_moved().await?;
        status.key_id = key_id;
        status.key_label = info.label;
        status.fingerprint = Some(value.fingerprint());
        Ok(Delivered {
            usage: Some(info.usage),
            through_gateway: self.through_gateway(),
        })
    }

    /// Stops a key the provider cannot disable by revoking it. The decision is recorded before the
    /// revocation: were the call's outcome lost, the next sync finishes it instead of taking the
    /// missing key for one to replace.
    async fn suspend(&mut self, why: SuspensionReason, status: &mut ApiKeyStatus) -> SyncResult<()> {
        status.suspended = Some(Suspension {
            reason: why,
            since: self.ctx.clock.now().into(),
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
    pub(super) async fn revoke_previous(&self, status: &mut ApiKeyStatus) -> SyncResult<()> {
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

    /// Claims the target Secret for this ApiKey when keysmith has not written it yet (see
    /// `ClusterCache::claim_secret`): another ApiKey naming the same Secret first is a conflict.
    pub(super) fn claim_secret(&self) -> SyncResult<()> {
        if self.existing.is_some() {
            return Ok(());
        }
        let name = plan::secret_name(self.key);
        let ns = self.key.namespace().unwrap_or_default();
        let uid = self.key.uid().unwrap_or_default();
        if self.ctx.cluster.claim_secret(&ns, &name, &uid) {
            Ok(())
        } else {
            Err(Problem::SecretConflict(name))
        }
    }

    /// Where the provider key is after this sync's Secret writes (see [`Delivered::through_gateway`]).
    fn through_gateway(&self) -> Option<bool> {
        self.gateway.as_ref().map(|g| g.active || g.existing.is_some())
    }

    /// Writes the Secret unless it already has the desired content. Through the gateway, the route
    /// Secret takes the provider key first and the app's Secret gets the key issued for it; a key
    /// that left the gateway loses its route only once the app's Secret holds the provider key.
    pub(super) async fn apply_secret(&mut self, value: &SecretValue, key_id: Option<&str>) -> SyncResult<()> {
        let now = self.ctx.clock.now();
        let delivered = match self.gateway.as_mut() {
            Some(gateway) if gateway.active => {
                gateway.apply(self.key, self.hub, value, key_id, now).await?;
                plan::gateway::issued_key(value)
            }
            _ => value.clone(),
        };
        self.write_app_secret(&delivered, key_id).await?;
        if let Some(gateway) = self
            .gateway
            .as_mut()
            .filter(|g| !g.active && g.existing.is_some())
        {
            gateway.remove(self.key).await?;
        }
        Ok(())
    }

    async fn write_app_secret(&mut self, value: &SecretValue, key_id: Option<&str>) -> SyncResult<()> {
        let desired = plan::desired_secret(self.key, value, key_id, &self.delivery);
        if let Some(have) = &self.existing
            && secret_matches(have, &desired)
        {
            return Ok(());
        }
        self.claim_secret()?;
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

    /// Deletes the Secret the key was delivered in before `spec.secret.name` changed, now that the new
    /// one holds it. Only that exact object (uid precondition), and only if it is this ApiKey's.
    async fn remove_moved(&mut self) -> SyncResult<()> {
        let Some(old) = self.moved_from.take() else {
            return Ok(());
        };
        if !plan::secret_owned_by(&old, self.key) {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: old.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = old.name_any();
        match self.secrets.delete(&name, &params).await {
            // Gone already, or replaced by another object of that name: nothing of ours to remove.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            other => {
                other.map_err(Error::kube("delete the Secret the key moved from"))?;
            }
        }
        let note = format!(
            "the key moved to Secret {} (spec.secret.name); Secret {name} removed",
            plan::secret_name(self.key)
        );
        self.event(Reason::SecretMoved, "Update", note).await;
        Ok(())
    }

    pub(super) fn api(&self) -> SyncResult<Api<ApiKey>> {
        let ns = self.key.namespace().ok_or(Error::MissingNamespace)?;
        Ok(Api::namespaced(self.ctx.client.clone(), &ns))
    }

    pub(super) async fn write_status(&self, status: &ApiKeyStatus, at: Option<String>) -> SyncResult<()> {
        let api = self.api()?;
        Ok(self.ctx.write_key_status(&api, self.key, at, status).await?)
    }

    pub(super) async fn event(&self, reason: Reason, action: &str, note: String) {
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
            "keysmith disabled the key at the provider: a limit only it enforces was reached, the key expired, or its ClusterModelHub no longer allows this namespace"
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
pub(super) fn reported_expiry(key: &ApiKey, caps: &Capabilities, record: &KeyRecord) -> Option<StatusTime> {
    match caps.expiry {
        Enforcement::Operator => key
            .spec
            .expires_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(StatusTime::from),
        _ => record.settings.expires_at.map(StatusTime::from),
    }
}

/// Records a rotation: the previous key stays valid until the overlap ends.
pub(super) fn retire_after_overlap(
    key: &ApiKey,
    status: &mut ApiKeyStatus,
    previous: String,
    now: jiff::Timestamp,
) {
    let overlap = jiff::SignedDuration::try_from(plan::rotation_overlap(key)).unwrap_or_default();
    let rotation = status.rotation.get_or_insert_with(Default::default);
    rotation.previous_key_id = Some(previous);
    rotation.previous_key_revoke_at = now.checked_add(overlap).ok().map(StatusTime::from);
    rotation.last_rotated_at = Some(now.into());
    rotation.next_rotation_at = plan::next_rotation(key, now).map(StatusTime::from);
    rotation.last_requested_token = key
        .annotations()
        .get(keysmith_api::well_known::ROTATE_ANNOTATION)
        .cloned();
}

pub(super) fn new_tag(uid: &str) -> String {
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
