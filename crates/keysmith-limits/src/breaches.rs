//! Which effective limits usage has reached, and whether keysmith itself must stop the key.

use jiff::Timestamp;
use keysmith_api::{ApiKey, Capabilities, Enforcement, ModelHub, Usage};

use crate::effective::{
    effective_budget, effective_key_limits, effective_model_limits, effective_rate_limit,
};

/// A limit that usage has reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Breach {
    /// The spec field of the limit, e.g. `budget` or `limits.requestsPerDay`.
    pub limit: &'static str,
    /// What was reached, for the condition message and the Event.
    pub message: String,
    /// Who enforces the limit.
    pub enforcement: Enforcement,
    /// The model of a per-model limit (`modelLimits`); `None` for a limit on the whole key. A model
    /// at its limit leaves the key working for every other model.
    pub model: Option<String>,
}

impl Breach {
    /// Whether the limit stops the whole key, not one model.
    pub fn whole_key(&self) -> bool {
        self.model.is_none()
    }
}

/// Every effective limit that `usage` has reached, with its enforcement under `caps`.
pub fn breaches(key: &ApiKey, hub: &ModelHub, usage: &Usage, caps: &Capabilities) -> Vec<Breach> {
    let mut out = Vec::new();
    if let (Some((budget, _)), Some(spent)) = (effective_budget(key, hub), usage.current_usd)
        && spent >= budget.limit_usd
    {
        out.push(Breach {
            limit: "budget",
            message: format!(
                "spend {spent:.3} USD reached the budget of {:.3} USD",
                budget.limit_usd
            ),
            enforcement: caps.budget,
            model: None,
        });
    }
    let limits = effective_key_limits(key, hub);
    let counted = [
        (
            "limits.requestsPerDay",
            "requests",
            limits.requests_per_day,
            usage.requests_today,
        ),
        (
            "limits.tokensPerDay",
            "tokens",
            limits.tokens_per_day,
            usage.tokens_today,
        ),
    ];
    out.extend(reached(counted, daily(caps.rate_limits), None));
    // A request rate over a whole day is a daily request cap too (a stricter `limits.requestsPerDay`
    // already reached is the one named).
    if let Some((rate, _)) = effective_rate_limit(key, hub)
        && rate.interval_seconds == 86_400
        && let Some(used) = usage.requests_today
        && used >= rate.requests
        && !out.iter().any(|b| b.limit == "limits.requestsPerDay")
    {
        out.push(Breach {
            limit: "rateLimit",
            message: format!(
                "{used} requests today reached rateLimit = {} per day",
                rate.requests
            ),
            enforcement: daily(caps.rate_limits),
            model: None,
        });
    }
    out.extend(model_breaches(key, hub, usage, caps));
    out
}

/// Per-model daily caps that the provider's per-model counts have reached (aiXplain reports them).
/// They are held by whoever holds model limits: keysmith never stops a whole key for one model.
fn model_breaches(key: &ApiKey, hub: &ModelHub, usage: &Usage, caps: &Capabilities) -> Vec<Breach> {
    let mut out = Vec::new();
    for limit in effective_model_limits(key, hub) {
        let Some(used) = usage.models.iter().find(|u| u.model == limit.model) else {
            continue;
        };
        let counted = [
            (
                "modelLimits.requestsPerDay",
                "requests",
                limit.requests_per_day,
                used.requests,
            ),
            (
                "modelLimits.tokensPerDay",
                "tokens",
                limit.tokens_per_day,
                used.tokens,
            ),
        ];
        out.extend(reached(counted, caps.model_limits, Some(&limit.model)));
    }
    out
}

/// The daily counts among `counted` (spec field, unit, cap, count) that reached their cap, for the
/// whole key or for `model`.
fn reached(
    counted: [(&'static str, &str, Option<u64>, Option<u64>); 2],
    enforcement: Enforcement,
    model: Option<&str>,
) -> impl Iterator<Item = Breach> {
    let model = model.map(str::to_owned);
    counted.into_iter().filter_map(move |(limit, unit, cap, used)| {
        let (cap, used) = (cap?, used?);
        (used >= cap).then(|| Breach {
            limit,
            message: match &model {
                None => format!("{used} {unit} today reached {limit} = {cap}"),
                Some(m) => format!(
                    "{used} {unit} today on model {m} reached its {limit} = {cap} (other models are not limited by it)"
                ),
            },
            enforcement,
            model: model.clone(),
        })
    })
}

/// Who holds a daily request or token cap whose count the provider reports for the key: where the
/// provider holds no per-key limit, keysmith does, by acting on the count (disabling or revoking the
/// key until 00:00 UTC), as it does for budgets.
pub fn daily(rate_limits: Enforcement) -> Enforcement {
    match rate_limits {
        Enforcement::Advisory => Enforcement::Operator,
        other => other,
    }
}

/// `limits` with the daily caps whose counts `usage` reports marked as held by keysmith (see [`daily`]).
pub fn with_daily_counts(limits: &mut keysmith_api::EffectiveLimits, usage: &Usage) {
    let upgrade = |value: &mut Option<keysmith_api::EffectiveValue>, counted: bool| {
        if let Some(v) = value.as_mut().filter(|_| counted) {
            v.enforcement = daily(v.enforcement);
        }
    };
    upgrade(&mut limits.requests_per_day, usage.requests_today.is_some());
    upgrade(&mut limits.tokens_per_day, usage.tokens_today.is_some());
    if let Some(rate) = limits
        .rate_limit
        .as_mut()
        .filter(|r| r.interval_seconds == 86_400 && usage.requests_today.is_some())
    {
        rate.enforcement = daily(rate.enforcement);
    }
}

/// Whether keysmith itself must stop the key: `Reject` and a reached limit that only keysmith
/// enforces, or an expiry the provider does not hold that has passed.
pub fn operator_blocks(key: &ApiKey, breaches: &[Breach], caps: &Capabilities, now: Timestamp) -> bool {
    let reject = key.spec.on_limit_exceeded.unwrap_or_default() == keysmith_api::OnLimitExceeded::Reject;
    let over = reject
        && breaches
            .iter()
            .any(|b| b.whole_key() && b.enforcement == Enforcement::Operator);
    over || operator_expired(key, caps, now)
}

/// Whether `spec.expiresAt` has passed for a provider whose keys carry no expiry of their own.
pub fn operator_expired(key: &ApiKey, caps: &Capabilities, now: Timestamp) -> bool {
    caps.expiry == Enforcement::Operator
        && key
            .spec
            .expires_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t <= now)
}
