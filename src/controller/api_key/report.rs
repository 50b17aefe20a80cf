//! The status a sync's outcome reports: conditions, usage and effective limits, the Events of
//! condition transitions and when to look again. Pure, one small builder per condition.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keysmith_api::{
    ApiKey, ApiKeyStatus, Capabilities, EffectiveLimits, Enforcement, LimitSource, ModelHub, OnLimitExceeded,
    StatusTime, Usage, conditions, reasons::Reason,
};
use keysmith_limits::Breach;
use kube::runtime::events::EventType;

use super::Problem;

/// A condition to set: status, reason and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl Verdict {
    fn new(status: bool, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Writes a successful sync into `status`: usage, effective limits and every condition.
pub fn synced(
    key: &ApiKey,
    hub: &ModelHub,
    caps: &Capabilities,
    usage: Usage,
    status: &mut ApiKeyStatus,
    denied: bool,
    now: &Time,
) {
    let generation = key.metadata.generation;
    let mut limits = keysmith_limits::effective_limits(key, hub, caps);
    keysmith_limits::with_daily_counts(&mut limits, &usage);
    let unknown_spend = spend_unknown(&limits, &usage);
    if let Some(budget) = limits.budget.as_mut().filter(|_| unknown_spend) {
        budget.spend_known = Some(false);
    }
    let enforced = limits_enforced(&limits);
    status.effective_limits = Some(limits);
    let breaches = keysmith_limits::breaches(key, hub, &usage, caps);
    let set = |conditions: &mut Vec<_>, type_: &str, v: Verdict| {
        conditions::set(
            conditions,
            type_,
            v.status,
            v.reason.as_str(),
            v.message,
            generation,
            now,
        );
    };
    match limit_exceeded(&breaches, &usage) {
        // Nothing reached, but the budget cannot be checked: neither True nor False.
        v if !v.status && unknown_spend => conditions::set_status(
            &mut status.conditions,
            conditions::LIMIT_EXCEEDED,
            "Unknown",
            Reason::SpendUnknown.as_str(),
            "the provider reports no spend for this key in the budget's current window (an Anthropic key that shares its workspace with other keys or the Console, say): whether the budget is reached cannot be told; no other enforced limit is reached",
            generation,
            now,
        ),
        v => set(&mut status.conditions, conditions::LIMIT_EXCEEDED, v),
    }
    set(&mut status.conditions, conditions::LIMITS_ENFORCED, enforced);
    let expired_at = status
        .expires_at
        .as_ref()
        .and_then(|t| t.get().ok())
        .filter(|t| *t <= now.0);
    match expired(status.expires_at.as_ref().map(StatusTime::as_str), expired_at) {
        Some(v) => set(&mut status.conditions, conditions::EXPIRED, v),
        None => conditions::remove(&mut status.conditions, conditions::EXPIRED),
    }
    let ready = ready(
        key,
        caps,
        &breaches,
        status.suspended.is_some(),
        expired_at.is_some(),
        denied,
    );
    set(&mut status.conditions, conditions::READY, ready);
    set(
        &mut status.conditions,
        conditions::SYNCED,
        Verdict::new(true, Reason::InSync, "the provider holds what the spec asks for"),
    );
    status.usage = Some(usage);
    conditions::remove(&mut status.conditions, conditions::RECONCILING);
    conditions::remove(&mut status.conditions, conditions::STALLED);
}

/// Writes a failed sync into `status`: not Ready, and either Reconciling (keysmith retries) or
/// Stalled (a change from the user is needed), kstatus-style.
///
/// A passing provider failure while the delivered key worked leaves `Ready` as it was: the key keeps
/// working, and `Synced=False` says what failed (Crossplane's split), so a provider blip does not turn
/// every key unhealthy in Argo CD.
pub fn failed(key: &ApiKey, problem: &Problem, status: &mut ApiKeyStatus, now: &Time) {
    let generation = key.metadata.generation;
    let reason = problem.reason();
    let message = problem.to_string();
    let c = &mut status.conditions;
    let delivered = status.key_id.is_some() || status.fingerprint.is_some();
    let key_works = problem.is_provider_blip() && delivered && conditions::is_true(c, conditions::READY);
    if !key_works {
        conditions::set(c, conditions::READY, false, reason, &message, generation, now);
    }
    conditions::set(c, conditions::SYNCED, false, reason, &message, generation, now);
    if problem.is_transient() {
        conditions::set(
            c,
            conditions::RECONCILING,
            true,
            reason,
            "retrying",
            generation,
            now,
        );
        conditions::remove(c, conditions::STALLED);
    } else {
        conditions::set(c, conditions::STALLED, true, reason, message, generation, now);
        conditions::remove(c, conditions::RECONCILING);
    }
}

/// `LimitExceeded`: which enforced limits usage has reached, and when their window resets.
pub fn limit_exceeded(breaches: &[Breach], usage: &Usage) -> Verdict {
    if breaches.is_empty() {
        return Verdict::new(
            false,
            Reason::WithinLimits,
            "usage is within every enforced limit",
        );
    }
    let reason = if breaches.iter().any(|b| b.limit == "budget") {
        Reason::BudgetExceeded
    } else if breaches.iter().all(|b| !b.whole_key()) {
        Reason::ModelLimitExceeded
    } else {
        Reason::RateLimitExceeded
    };
    let summary = breaches
        .iter()
        .map(|b| format!("{}: {} ({:?})", b.limit, b.message, b.enforcement))
        .collect::<Vec<_>>()
        .join("; ");
    let resets = usage
        .window_resets_at
        .as_ref()
        .map(|t| format!("; the window resets at {t}"))
        .unwrap_or_default();
    Verdict::new(true, reason, format!("{summary}{resets}"))
}

/// Whether a budget someone enforces cannot be checked: the provider reports no spend for the window.
pub fn spend_unknown(limits: &EffectiveLimits, usage: &Usage) -> bool {
    limits.budget.as_ref().is_some_and(|b| enforced(b.enforcement)) && usage.current_usd.is_none()
}

/// Whether someone stops a key at the limit: the provider, keysmith, or keysmith-gateway.
fn enforced(enforcement: Enforcement) -> bool {
    matches!(
        enforcement,
        Enforcement::Provider | Enforcement::Operator | Enforcement::Gateway
    )
}

/// `LimitsEnforced`: whether every limit the spec or the hub's defaults set is held by the provider or
/// keysmith, and if not, which are only published (`Advisory`) or cannot be held (`Unsupported`).
/// Entry-tier figures (`ProviderDefault`) are the account's, shown for information, and not judged.
pub fn limits_enforced(limits: &EffectiveLimits) -> Verdict {
    let set = |source: LimitSource| source != LimitSource::ProviderDefault;
    let mut loose: Vec<(String, Enforcement)> = Vec::new();
    let mut note = |name: String, source: LimitSource, enforcement: Enforcement| {
        if set(source) && matches!(enforcement, Enforcement::Advisory | Enforcement::Unsupported) {
            loose.push((name, enforcement));
        }
    };
    if let Some(b) = &limits.budget {
        let enforcement = if b.spend_known == Some(false) {
            Enforcement::Advisory
        } else {
            b.enforcement
        };
        let name = if b.spend_known == Some(false) {
            "budget (spend not attributable to this key now)"
        } else {
            "budget"
        };
        note(name.into(), b.source, enforcement);
    }
    if let Some(r) = &limits.rate_limit {
        note("rateLimit".into(), r.source, r.enforcement);
    }
    for (name, value) in [
        ("requestsPerMinute", &limits.requests_per_minute),
        ("requestsPerDay", &limits.requests_per_day),
        ("tokensPerMinute", &limits.tokens_per_minute),
        ("tokensPerDay", &limits.tokens_per_day),
        ("maxInputTokens", &limits.max_input_tokens),
        ("maxOutputTokens", &limits.max_output_tokens),
    ] {
        if let Some(v) = value {
            note(name.into(), v.source, v.enforcement);
        }
    }
    for m in &limits.model_limits {
        note(format!("modelLimits[{}]", m.model), m.source, m.enforcement);
    }
    if loose.is_empty() {
        return Verdict::new(
            true,
            Reason::AllLimitsEnforced,
            "every limit set is enforced by the provider or keysmith",
        );
    }
    let list = |wanted: Enforcement| {
        loose
            .iter()
            .filter(|(_, e)| *e == wanted)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (advisory, unsupported) = (list(Enforcement::Advisory), list(Enforcement::Unsupported));
    let mut parts = Vec::new();
    if !advisory.is_empty() {
        parts.push(format!(
            "advisory (published in the Secret, enforced by nobody): {advisory}"
        ));
    }
    if !unsupported.is_empty() {
        parts.push(format!("unsupported by this provider: {unsupported}"));
    }
    let reason = if unsupported.is_empty() {
        Reason::LimitsAdvisory
    } else {
        Reason::LimitsUnsupported
    };
    Verdict::new(false, reason, parts.join("; "))
}

/// `Expired`: absent without an expiry, true once it has passed.
pub fn expired(expires_at: Option<&str>, expired_at: Option<Timestamp>) -> Option<Verdict> {
    match (expires_at, expired_at) {
        (_, Some(at)) => Some(Verdict::new(
            true,
            Reason::KeyExpired,
            format!("the key expired at {at}; set a later spec.expiresAt to issue a new one"),
        )),
        (Some(at), None) => Some(Verdict::new(
            false,
            Reason::NotExpired,
            format!("the key expires at {at}"),
        )),
        (None, None) => None,
    }
}

/// `Ready`: whether the Secret holds a key that works. A disabled, expired or blocked key does not.
/// The checks run in order; the first that holds names the reason.
pub fn ready(
    key: &ApiKey,
    caps: &Capabilities,
    breaches: &[Breach],
    revoked: bool,
    expired: bool,
    denied: bool,
) -> Verdict {
    let disabled = key.spec.disabled.unwrap_or(false);
    // Rejected at the limit by whoever enforces it: the key does not work until the window resets.
    let rejected = key.spec.on_limit_exceeded.unwrap_or_default() == OnLimitExceeded::Reject
        && breaches.iter().any(|b| b.whole_key() && enforced(b.enforcement));
    // Each check, in order, with what it ensures; the first that holds names the reason.
    let chain: [(bool, Reason, &str); 7] = [
        // An expired key does not work, whoever holds the expiry.
        (
            expired,
            Reason::Expired,
            "the key has expired; its Secret is kept",
        ),
        // Switched off because its ClusterModelHub no longer allows the namespace.
        (
            denied,
            Reason::HubNotAllowed,
            "the ClusterModelHub no longer allows this namespace: the key is disabled (revoked where the provider cannot disable keys) and its Secret kept; it works again once the namespace is allowed",
        ),
        // The spec asks for something that is not so, and Ready would hide it.
        (
            disabled && caps.disable == Enforcement::Unsupported,
            Reason::DisableUnsupported,
            "spec.disabled is true, but keysmith cannot disable or revoke this key at the provider: THE KEY STILL WORKS; delete the ApiKey or revoke the key at the provider",
        ),
        // Disabled as asked, by revocation where the provider cannot disable keys.
        (
            disabled && revoked,
            Reason::KeyDisabled,
            "the provider cannot disable keys, so keysmith revoked the key; enabling it again issues a new key; its Secret is kept",
        ),
        (
            disabled,
            Reason::KeyDisabled,
            "the key is disabled at the provider as the spec asks; its Secret is kept",
        ),
        // Refused at a limit until its window resets.
        (
            rejected && revoked,
            Reason::LimitExceeded,
            "the provider cannot disable keys, so keysmith revoked the key until its limit's window resets, then issues a new one (onLimitExceeded: Reject); see the LimitExceeded condition",
        ),
        (
            rejected,
            Reason::LimitExceeded,
            "the key is refused until its limit's window resets (onLimitExceeded: Reject); see the LimitExceeded condition",
        ),
    ];
    chain.into_iter().find(|(holds, _, _)| *holds).map_or_else(
        || {
            Verdict::new(
                true,
                Reason::KeyReady,
                "the Secret holds a key the provider accepts",
            )
        },
        |(_, reason, message)| Verdict::new(false, reason, message),
    )
}

/// One Event per condition transition (not per reconcile): its type, reason and message.
pub fn transitions(before: &ApiKeyStatus, after: &ApiKeyStatus) -> Vec<(EventType, String, String)> {
    let mut out = Vec::new();
    for type_ in [conditions::READY, conditions::LIMIT_EXCEEDED] {
        let old = conditions::get(&before.conditions, type_);
        let Some(new) = conditions::get(&after.conditions, type_) else {
            continue;
        };
        let changed = old.is_none_or(|o| o.status != new.status || o.reason != new.reason);
        // A key that starts out Ready, or within its limits, is the expected outcome of creating it:
        // the conditions say so without an Event per ApiKey.
        let expected_start = if type_ == conditions::READY {
            "True"
        } else {
            "False"
        };
        if !changed || (old.is_none() && new.status == expected_start) {
            continue;
        }
        let warning = (type_ == conditions::READY
            && new.status == "False"
            && new.reason != Reason::KeyDisabled.as_str())
            || (type_ == conditions::LIMIT_EXCEEDED && new.status == "True");
        let kind = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        out.push((kind, new.reason.clone(), new.message.clone()));
    }
    out
}

/// The usage interval, or sooner when the previous key's overlap ends, a rotation falls due or the
/// key expires.
pub fn next_wake(usage: Duration, status: &ApiKeyStatus, now: Timestamp) -> Duration {
    let rotation = status.rotation.clone().unwrap_or_default();
    [
        rotation.previous_key_revoke_at,
        rotation.next_rotation_at,
        status.expires_at.clone(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|t| t.get().ok())
    // Past deadlines were handled by this reconcile; only future ones bring the next one forward.
    .filter(|t| *t > now)
    .map(|t| t.duration_since(now).unsigned_abs() + Duration::from_millis(200))
    .fold(usage, Duration::min)
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
