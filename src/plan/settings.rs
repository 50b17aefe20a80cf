//! The settings a provider should hold for a key, and what must change for an existing key to match.

use keysmith_api::{ApiKey, BudgetReset, Capabilities, Enforcement, ModelHub};
use keysmith_limits::{
    effective_budget, effective_key_limits, effective_model_limits, effective_rate_limit, fold_rate_limit,
};
use keysmith_providers::{KeyRecord, KeySettings, tag::provider_key_name};

use super::display_name;

/// The settings the provider should hold for `key`. `onLimitExceeded: UseAnyway` leaves the budget
/// out at the provider so the key keeps working; keysmith still reports the overrun. A rate limit over
/// a minute or a day is sent as requests per minute or per day (see [`fold_rate_limit`]).
pub fn desired_settings(key: &ApiKey, hub: &ModelHub, tag: &str) -> KeySettings {
    let budget = effective_budget(key, hub).map(|(b, _)| b);
    let enforce = key.spec.on_limit_exceeded.unwrap_or_default() == keysmith_api::OnLimitExceeded::Reject;
    let limit_reset = budget
        .as_ref()
        .and_then(|b| b.reset)
        .filter(|r| *r != BudgetReset::Never);
    let mut limits = effective_key_limits(key, hub);
    let other_rate_limit =
        effective_rate_limit(key, hub).and_then(|(rate, _)| fold_rate_limit(&mut limits, rate));
    KeySettings {
        name: provider_key_name(&display_name(key), tag),
        disabled: key.spec.disabled.unwrap_or(false),
        limit_usd: budget.as_ref().filter(|_| enforce).map(|b| b.limit_usd),
        limit_reset: if enforce { limit_reset } else { None },
        include_byok: budget.as_ref().and_then(|b| b.include_byok).unwrap_or(false),
        expires_at: key.spec.expires_at.as_deref().and_then(|t| t.parse().ok()),
        limits,
        other_rate_limit,
        model_limits: effective_model_limits(key, hub),
    }
}

/// What must happen to an existing provider key to match the desired settings.
#[derive(Debug, PartialEq)]
pub enum KeyChange {
    /// Nothing.
    None,
    /// Patch in place.
    Update,
    /// The key must be re-issued (a field the provider cannot change in place differs).
    Reissue,
}

/// Compares a provider record with the desired settings, looking only at what the provider itself
/// holds (per its capabilities): a field it cannot store would otherwise look changed forever. An
/// expiry the provider cannot change in place (`expiry_in_place` false) means a new key.
pub fn key_change(
    record: &KeyRecord,
    desired: &KeySettings,
    caps: &Capabilities,
    expiry_in_place: bool,
) -> KeyChange {
    let held = |e: Enforcement| e == Enforcement::Provider;
    let have = &record.settings;
    // Whole seconds: a provider that stores expiry at a coarser precision must not look changed
    // forever (each look would re-issue the key).
    let expiry_differs = have.expires_at.map(|t| t.as_second()) != desired.expires_at.map(|t| t.as_second());
    if held(caps.expiry) && expiry_differs && !expiry_in_place {
        return KeyChange::Reissue;
    }
    let same_limit = match (have.limit_usd, desired.limit_usd) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    };
    let sorted = |v: &[keysmith_api::ModelLimit]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.model.cmp(&b.model));
        v
    };
    let changed = (held(caps.expiry) && expiry_differs)
        || (held(caps.rename) && have.name != desired.name)
        || (held(caps.disable) && have.disabled != desired.disabled)
        || (held(caps.budget)
            && (!same_limit
                || have.limit_reset != desired.limit_reset
                || have.include_byok != desired.include_byok))
        || (held(caps.rate_limits)
            && (have.limits != desired.limits || have.other_rate_limit != desired.other_rate_limit))
        || (held(caps.model_limits) && sorted(&have.model_limits) != sorted(&desired.model_limits));
    if changed {
        KeyChange::Update
    } else {
        KeyChange::None
    }
}
