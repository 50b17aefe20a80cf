//! Pure decisions about one ApiKey: names, the desired Secret, the desired provider settings,
//! rotation and suspension. Nothing here performs I/O, so every branch is unit-tested without a
//! cluster. The meaning of limits lives in `keysmith-limits`, shared with the gateway.

pub mod gateway;
pub mod quota;
mod rotation;
mod secret;
mod settings;
pub mod unrevoked;

pub use rotation::{RestartPlan, next_rotation, restart_plan, rotation_due, rotation_overlap};
pub use secret::{
    Delivery, desired_secret, display_name, limits_document, secret_data_keys, secret_key_id, secret_name,
    secret_owned_by, secret_value,
};
pub use settings::{KeyChange, desired_settings, key_change};

use jiff::Timestamp;
use keysmith_api::{ApiKey, Capabilities, Enforcement, SuspensionReason, well_known::ISSUING_ANNOTATION};
use keysmith_limits::{Breach, operator_expired};
use kube::ResourceExt;

/// Jitters `secs` by ±10% so that many keys created together do not poll together.
pub fn jittered(secs: u64, unit: f64) -> std::time::Duration {
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    std::time::Duration::from_secs_f64(secs as f64 * factor)
}

/// Whether a create may have happened that status does not record yet: the status marker of a
/// later create, or the annotation of a first one whose key status has not recorded.
pub fn create_pending(key: &ApiKey, status: &keysmith_api::ApiKeyStatus) -> bool {
    status.pending_create.is_some()
        || (status.key_id.is_none()
            && status.suspended.is_none()
            && key.annotations().contains_key(ISSUING_ANNOTATION))
}

/// Why keysmith must revoke the key, where the provider cannot disable keys (`disable: Operator`):
/// the spec disables it, its expiry only keysmith holds has passed, or a limit only keysmith enforces
/// was reached under `Reject`. `None` when the key may work (or the provider disables keys itself).
pub fn suspension_reason(
    key: &ApiKey,
    breaches: &[Breach],
    caps: &Capabilities,
    now: Timestamp,
) -> Option<SuspensionReason> {
    if caps.disable != Enforcement::Operator {
        return None;
    }
    let reject = key.spec.on_limit_exceeded.unwrap_or_default() == keysmith_api::OnLimitExceeded::Reject;
    if key.spec.disabled.unwrap_or(false) {
        Some(SuspensionReason::Disabled)
    } else if operator_expired(key, caps, now) {
        Some(SuspensionReason::Expired)
    } else if reject
        && breaches
            .iter()
            .any(|b| b.whole_key() && b.enforcement == Enforcement::Operator)
    {
        Some(SuspensionReason::LimitExceeded)
    } else {
        None
    }
}

/// Whether this pass is about to create the ApiKey's first provider key: it then needs no separate
/// finalizer write, since the create's marker carries the finalizer (see [`ISSUING_ANNOTATION`]).
pub fn first_key_pending(key: &ApiKey) -> bool {
    let status = key.status.as_ref();
    key.spec.import.is_none()
        && status.is_none_or(|s| s.key_id.is_none() && s.pending_create.is_none() && s.suspended.is_none())
}

#[cfg(test)]
mod tests;
