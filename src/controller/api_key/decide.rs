//! The decision: what to do next for one ApiKey, from what was observed. Pure: no I/O, no clock
//! (the time is an input), no randomness (a fresh tag is an input), so every branch is a table test.
//!
//! A sync is a short series of steps. [`decide`] is asked again after each preparatory step (recover
//! an interrupted create, revoke a key whose overlap ended, finish a revocation, lift a suspension,
//! read the provider's record), each of which changes what is observed; it ends with one final step
//! (keep, update in place, issue, suspend, validate an unmanaged import). The order of the checks is
//! the order of the guarantees: nothing is issued while an earlier create may have left a key behind,
//! and nothing works that must not.

use jiff::Timestamp;
use keysmith_api::{ApiKey, ApiKeyStatus, Capabilities, CreateKind, Enforcement, ModelHub, SuspensionReason};
use keysmith_limits::{
    KeyUsage, breaches, budget_reset_in_force, operator_blocks, usage_status, usage_while_suspended,
};
use keysmith_providers::{KeyRecord, KeySettings, tag::name_tag};

use crate::plan::{self, KeyChange};

/// The provider's record of the key status names, as far as this sync has looked.
// One per sync, moved rarely: boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Not read yet (or status has named another key since).
    Unread,
    /// The provider has no such key, or status names none.
    Missing,
    /// The provider's record.
    Found(KeyRecord),
}

/// What an import is working from.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportView {
    /// The provider's record of the imported key, where it keeps one (`None`: validate only).
    pub record: Option<KeyRecord>,
    /// Whether its value was regenerated in this sync.
    pub regenerated: bool,
    /// Whether the value was checked with the provider in this sync.
    pub validated: bool,
}

/// Everything a decision depends on.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The ApiKey as this reconcile read it.
    pub key: &'a ApiKey,
    /// Its hub.
    pub hub: &'a ModelHub,
    /// How the provider carries out each limit and action.
    pub caps: Capabilities,
    /// Whether the provider changes a key's expiry in place (else a new expiry re-issues the key).
    pub expiry_in_place: bool,
    /// The status as this sync has it so far.
    pub status: &'a ApiKeyStatus,
    /// The id of the key whose value the target Secret holds (both readable), if any.
    pub held_id: Option<&'a str>,
    /// The provider's record of `status.keyId`.
    pub record: &'a Record,
    /// Whether an interrupted create was already recovered in this sync.
    pub recovered: bool,
    /// For an import: what it is working from.
    pub import: Option<&'a ImportView>,
    /// A tag for a key whose provider-side name lost keysmith's.
    pub fresh_tag: &'a str,
    /// The key's ClusterModelHub no longer allows its namespace: the key must not work.
    pub denied: bool,
    /// Now.
    pub now: Timestamp,
}

/// The next thing to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Finish an interrupted create: adopt the key the Secret holds (`held_id`), revoke the rest.
    Recover,
    /// Revoke the previous key: its rotation overlap has ended.
    RevokePrevious,
    /// Revoke the key a recorded suspension still names as live.
    FinishRevoke,
    /// The suspension is over: forget it, so a new key is issued.
    Restore,
    /// Read the provider's record of `status.keyId`.
    ReadRecord,
    /// Regenerate an imported key's value in place (a rotation, or one cut short).
    Regenerate(&'static str),
    /// Check an imported value with the provider itself.
    CheckImported,
    /// Final: the provider holds what the spec asks for.
    Keep,
    /// Final: change the provider key in place. `blocked`: keysmith switches it off itself.
    Update { desired: KeySettings, blocked: bool },
    /// Final: issue a new key with the crash-safe create protocol.
    Issue(CreateKind, Option<&'static str>),
    /// Final: revoke a live key the provider cannot disable, recording why first.
    Suspend {
        why: SuspensionReason,
        report_usage: bool,
    },
    /// Final: no key and none may be issued yet: record why.
    Withhold(SuspensionReason),
    /// Final: a suspension that still holds.
    StaySuspended,
    /// Final: an import the provider keeps no record of: validate it and deliver it as it is.
    Validate,
}

impl Step {
    /// Whether the sync ends with this step.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            Self::Recover
                | Self::RevokePrevious
                | Self::FinishRevoke
                | Self::Restore
                | Self::ReadRecord
                | Self::Regenerate(_)
                | Self::CheckImported
        )
    }
}

/// The next step for `o`.
pub fn decide(o: &Observed<'_>) -> Step {
    match o.import {
        Some(import) => decide_import(o, import),
        None => decide_minted(o),
    }
}

fn decide_minted(o: &Observed<'_>) -> Step {
    let (key, status, now) = (o.key, o.status, o.now);
    if !o.recovered && plan::create_pending(key, status) {
        return Step::Recover;
    }
    if overlap_over(status, now) {
        return Step::RevokePrevious;
    }
    if status.suspended.is_some() {
        if status.key_id.is_some() {
            return Step::FinishRevoke;
        }
        return match must_stop(o, &usage_while_suspended(status, now)) {
            Some(_) => Step::StaySuspended,
            None => Step::Restore,
        };
    }
    if status.key_id.is_some() && *o.record == Record::Unread {
        return Step::ReadRecord;
    }
    let held = o.held_id.is_some() && o.held_id == status.key_id.as_deref();
    match o.record {
        Record::Found(record) if held => decide_live(o, record),
        record => {
            let found = matches!(record, Record::Found(_));
            // A key that must not work and cannot be disabled is not issued (or, live but unheld,
            // is revoked): it is issued once it may work.
            if let Some(why) = must_stop(o, &usage_while_suspended(status, now)) {
                return if found {
                    Step::Suspend {
                        why,
                        report_usage: false,
                    }
                } else {
                    Step::Withhold(why)
                };
            }
            // No key yet, the key vanished at the provider, or the Secret lost its value: a new key
            // is the only way to deliver one (the old value cannot be read back).
            match status.key_id {
                None => Step::Issue(CreateKind::Create, None),
                Some(_) => Step::Issue(CreateKind::Replace, None),
            }
        }
    }
}

/// A live key whose value the Secret holds.
fn decide_live(o: &Observed<'_>, record: &KeyRecord) -> Step {
    let usage = usage_status(&record.usage, budget_reset_in_force(o.key, o.hub), o.now);
    if let Some(why) = must_stop(o, &usage) {
        return Step::Suspend {
            why,
            report_usage: true,
        };
    }
    let tag = name_tag(&record.name).unwrap_or(o.fresh_tag);
    let (desired, blocked) = enforced(o, plan::desired_settings(o.key, o.hub, tag), &record.usage);
    if let Some(why) = plan::rotation_due(o.key, o.status, o.now) {
        return Step::Issue(CreateKind::Rotate, Some(why));
    }
    match plan::key_change(record, &desired, &o.caps, o.expiry_in_place) {
        KeyChange::None => Step::Keep,
        KeyChange::Update => Step::Update { desired, blocked },
        KeyChange::Reissue => Step::Issue(CreateKind::Reissue, None),
    }
}

fn decide_import(o: &Observed<'_>, import: &ImportView) -> Step {
    let Some(record) = &import.record else {
        return Step::Validate;
    };
    if !import.regenerated && o.caps.rotation == Enforcement::Provider {
        let why = plan::rotation_due(o.key, o.status, o.now).or(o
            .status
            .pending_create
            .is_some()
            .then_some("interrupted"));
        if let Some(why) = why {
            return Step::Regenerate(why);
        }
    }
    // A record alone does not prove the value works. A key the provider holds switched off is
    // refused by its own API whatever its value, so it is checked once it is switched on again.
    if !import.regenerated && !import.validated && !record.settings.disabled {
        return Step::CheckImported;
    }
    let mut desired = record.settings.clone();
    if let Some(name) = &o.key.spec.display_name {
        desired.name = name.clone();
    }
    desired.disabled = o.key.spec.disabled.unwrap_or(false);
    let (desired, blocked) = enforced(o, desired, &record.usage);
    match plan::key_change(record, &desired, &o.caps, true) {
        KeyChange::Update => Step::Update { desired, blocked },
        _ => Step::Keep,
    }
}

/// Whether the previous key of a rotation is due for revocation.
fn overlap_over(status: &ApiKeyStatus, now: Timestamp) -> bool {
    status.rotation.as_ref().is_some_and(|rotation| {
        rotation.previous_key_id.is_some()
            && rotation
                .previous_key_revoke_at
                .as_ref()
                .is_some_and(|t| t.get().is_ok_and(|t| t <= now))
    })
}

/// Why the key must not work where the provider cannot disable it, judged by `usage`.
fn must_stop(o: &Observed<'_>, usage: &keysmith_api::Usage) -> Option<SuspensionReason> {
    if o.denied && o.caps.disable == Enforcement::Operator {
        return Some(SuspensionReason::HubNotAllowed);
    }
    let breaches = breaches(o.key, o.hub, usage, &o.caps);
    plan::suspension_reason(o.key, &breaches, &o.caps, o.now)
}

/// `desired` with `disabled` forced on while keysmith itself must stop the key (a limit only it
/// enforces, an expiry the provider does not hold, a hub that no longer allows the namespace); the
/// flag says whether it is.
fn enforced(o: &Observed<'_>, mut desired: KeySettings, usage: &KeyUsage) -> (KeySettings, bool) {
    let usage = usage_status(usage, budget_reset_in_force(o.key, o.hub), o.now);
    let breaches = breaches(o.key, o.hub, &usage, &o.caps);
    let blocked = operator_blocks(o.key, &breaches, &o.caps, o.now) || o.denied;
    desired.disabled |= blocked;
    (desired, blocked)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
