//! The limits in force for a key: each from the ApiKey's spec, else its hub's defaults, else (for
//! request and token rates) the provider's entry tier, with where it came from and who enforces it.

use std::collections::BTreeMap;

use keysmith_api::{
    ApiKey, BudgetReset, Capabilities, EffectiveBudget, EffectiveLimits, EffectiveModelLimit, EffectiveRate,
    EffectiveValue, Enforcement, LimitScope, LimitSource, ModelHub, RateLimit,
    well_known::{MAX_INPUT_TOKENS_DATA_KEY, MAX_OUTPUT_TOKENS_DATA_KEY},
};

/// Effective budget: the key's, else the hub default; `None` when neither sets one.
pub fn effective_budget(key: &ApiKey, hub: &ModelHub) -> Option<(keysmith_api::Budget, LimitSource)> {
    if let Some(b) = &key.spec.budget {
        return Some((b.clone(), LimitSource::Spec));
    }
    hub.spec
        .defaults
        .as_ref()?
        .budget
        .clone()
        .map(|b| (b, LimitSource::HubDefault))
}

/// `spec.rateLimit`, else the hub's default, with where it came from.
pub fn effective_rate_limit(key: &ApiKey, hub: &ModelHub) -> Option<(RateLimit, LimitSource)> {
    key.spec
        .rate_limit
        .clone()
        .map(|r| (r, LimitSource::Spec))
        .or_else(|| {
            hub.spec
                .defaults
                .as_ref()
                .and_then(|d| d.rate_limit.clone())
                .map(|r| (r, LimitSource::HubDefault))
        })
}

/// Folds a request rate over exactly a minute or a day into `limits`, where it is the same limit as
/// requests per minute or per day (the stricter of the two wins), so a provider that holds those
/// really enforces it. Returns the rate when its interval is neither, for the provider to refuse.
pub fn fold_rate_limit(limits: &mut keysmith_api::Limits, rate: RateLimit) -> Option<RateLimit> {
    let slot = match rate.interval_seconds {
        60 => &mut limits.requests_per_minute,
        86_400 => &mut limits.requests_per_day,
        _ => return Some(rate),
    };
    *slot = Some(slot.map_or(rate.requests, |v| v.min(rate.requests)));
    None
}

/// The key-wide request and token limits: each from the spec, else from the hub's defaults.
pub fn effective_key_limits(key: &ApiKey, hub: &ModelHub) -> keysmith_api::Limits {
    let own = key.spec.limits.clone().unwrap_or_default();
    let def = hub
        .spec
        .defaults
        .as_ref()
        .and_then(|d| d.limits.clone())
        .unwrap_or_default();
    keysmith_api::Limits {
        requests_per_minute: own.requests_per_minute.or(def.requests_per_minute),
        requests_per_day: own.requests_per_day.or(def.requests_per_day),
        tokens_per_minute: own.tokens_per_minute.or(def.tokens_per_minute),
        tokens_per_day: own.tokens_per_day.or(def.tokens_per_day),
    }
}

/// The per-model limits: the spec's list, else the hub's default list.
pub fn effective_model_limits(key: &ApiKey, hub: &ModelHub) -> Vec<keysmith_api::ModelLimit> {
    if key.spec.model_limits.is_empty() {
        hub.spec
            .defaults
            .as_ref()
            .map(|d| d.model_limits.clone())
            .unwrap_or_default()
    } else {
        key.spec.model_limits.clone()
    }
}

/// Each limit in force for `key`, where it comes from and who enforces it.
pub fn effective_limits(key: &ApiKey, hub: &ModelHub, caps: &Capabilities) -> EffectiveLimits {
    let defaults = hub.spec.defaults.as_ref();
    let mut out = EffectiveLimits::default();
    if let Some((b, source)) = effective_budget(key, hub) {
        out.budget = Some(EffectiveBudget {
            limit_usd: b.limit_usd,
            reset: b.reset.unwrap_or(BudgetReset::Never),
            include_byok: b.include_byok.unwrap_or(false),
            spend_known: None,
            source,
            enforcement: caps.budget,
        });
    }
    let tier = crate::entry_tier::entry_tier(hub.spec.provider).unwrap_or_default();
    out.provider_defaults = Some(crate::entry_tier::provider_defaults_note(hub.spec.provider));
    out.rate_limit = effective_rate_limit(key, hub)
        .map(|(r, source)| EffectiveRate {
            requests: r.requests,
            interval_seconds: r.interval_seconds,
            source,
            enforcement: caps.rate_limits,
            applies_to: None,
        })
        // No rate set: the entry tier's requests per minute, which the provider holds on the account.
        .or_else(|| {
            tier.requests_per_minute.map(|requests| EffectiveRate {
                requests,
                interval_seconds: 60,
                source: LimitSource::ProviderDefault,
                enforcement: Enforcement::Provider,
                applies_to: Some(LimitScope::Account),
            })
        });
    // Spec, else the hub's default, else the provider's entry tier, which the provider itself enforces
    // on the whole account.
    let pick = |own: Option<u64>, def: Option<u64>, tier: Option<u64>| -> Option<EffectiveValue> {
        own.map(|v| (v, LimitSource::Spec, caps.rate_limits))
            .or(def.map(|v| (v, LimitSource::HubDefault, caps.rate_limits)))
            .or(tier.map(|v| (v, LimitSource::ProviderDefault, Enforcement::Provider)))
            .map(|(value, source, enforcement)| EffectiveValue {
                value,
                source,
                enforcement,
                applies_to: (source == LimitSource::ProviderDefault).then_some(LimitScope::Account),
            })
    };
    let own = key.spec.limits.clone().unwrap_or_default();
    let def = defaults.and_then(|d| d.limits.clone()).unwrap_or_default();
    out.requests_per_minute = pick(
        own.requests_per_minute,
        def.requests_per_minute,
        tier.requests_per_minute,
    );
    out.requests_per_day = pick(own.requests_per_day, def.requests_per_day, tier.requests_per_day);
    out.tokens_per_minute = pick(
        own.tokens_per_minute,
        def.tokens_per_minute,
        tier.tokens_per_minute,
    );
    out.tokens_per_day = pick(own.tokens_per_day, def.tokens_per_day, tier.tokens_per_day);
    let (models, source) = if key.spec.model_limits.is_empty() {
        (
            defaults.map(|d| d.model_limits.clone()).unwrap_or_default(),
            LimitSource::HubDefault,
        )
    } else {
        (key.spec.model_limits.clone(), LimitSource::Spec)
    };
    out.model_limits = models
        .into_iter()
        .map(|m| EffectiveModelLimit {
            model: m.model,
            requests_per_minute: m.requests_per_minute,
            requests_per_day: m.requests_per_day,
            tokens_per_minute: m.tokens_per_minute,
            tokens_per_day: m.tokens_per_day,
            source,
            enforcement: caps.model_limits,
        })
        .collect();
    let req_own = key.spec.request_limits.clone().unwrap_or_default();
    let req_def = defaults
        .and_then(|d| d.request_limits.clone())
        .unwrap_or_default();
    let pick_req = |own: Option<u64>, def: Option<u64>| {
        own.map(|v| (v, LimitSource::Spec))
            .or(def.map(|v| (v, LimitSource::HubDefault)))
            .filter(|(v, _)| *v > 0)
            .map(|(value, source)| EffectiveValue {
                value,
                source,
                enforcement: caps.request_limits,
                applies_to: None,
            })
    };
    out.max_input_tokens = pick_req(req_own.max_input_tokens, req_def.max_input_tokens);
    out.max_output_tokens = pick_req(req_own.max_output_tokens, req_def.max_output_tokens);
    out
}

/// Whether Reject-mode enforcement applies to the budget in force.
pub fn budget_reset_in_force(key: &ApiKey, hub: &ModelHub) -> Option<BudgetReset> {
    effective_budget(key, hub).map(|(b, _)| b.reset.unwrap_or(BudgetReset::Never))
}

/// The per-request caps in force (spec, else hub default; 0 means unlimited and is left out),
/// published as Secret data so that clients and gateways can enforce what no provider does.
pub fn published_limits(key: &ApiKey, hub: &ModelHub) -> BTreeMap<String, String> {
    let own = key.spec.request_limits.clone().unwrap_or_default();
    let def = hub
        .spec
        .defaults
        .as_ref()
        .and_then(|d| d.request_limits.clone())
        .unwrap_or_default();
    [
        (
            MAX_INPUT_TOKENS_DATA_KEY,
            own.max_input_tokens.or(def.max_input_tokens),
        ),
        (
            MAX_OUTPUT_TOKENS_DATA_KEY,
            own.max_output_tokens.or(def.max_output_tokens),
        ),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.filter(|v| *v > 0).map(|v| (name.to_owned(), v.to_string())))
    .collect()
}
