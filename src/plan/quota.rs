//! A ClusterModelHub's quota for one namespace: which of the namespace's ApiKeys on the hub are
//! admitted. Pure, and the same answer for every ApiKey that asks, so two reconciles running at once
//! never both take the last slot.
//!
//! Keys that already hold a key (or may, after a create was started) are admitted whatever the quota
//! says: a lowered quota suspends nothing, it is reported as an overrun. The rest are admitted oldest
//! first (creation time, then name) while they fit, so a new key can never push out one that works.

use std::collections::BTreeMap;

use jiff::Timestamp;
use keysmith_api::{ApiKey, Limits, ModelHub, NamespaceQuota, well_known::ISSUING_ANNOTATION};
use keysmith_limits::{effective_budget, effective_key_limits};
use kube::ResourceExt;

/// What the quota looks at in one ApiKey.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The ApiKey's name.
    pub name: String,
    /// Its creation time (absent sorts first: only objects not yet stored lack one).
    pub created: Option<Timestamp>,
    /// Whether it holds a key at the provider, or may (a create under way, a suspension).
    pub holds_key: bool,
    /// Its effective budget in USD, if any.
    pub budget_usd: Option<f64>,
    /// Its effective request and token limits.
    pub limits: Limits,
    /// Spend in its current budget window, as last reported.
    pub spend_usd: Option<f64>,
}

impl Claim {
    /// The claim of `key` on `hub` (the hub's defaults fill what the key leaves out).
    pub fn of(key: &ApiKey, hub: &ModelHub) -> Self {
        let status = key.status.as_ref();
        let holds_key = key.annotations().contains_key(ISSUING_ANNOTATION)
            || status.is_some_and(|s| {
                s.key_id.is_some()
                    || s.fingerprint.is_some()
                    || s.pending_create.is_some()
                    || s.suspended.is_some()
            });
        Self {
            name: key.name_any(),
            created: key.creation_timestamp().map(|t| t.0),
            holds_key,
            budget_usd: effective_budget(key, hub).map(|(b, _)| b.limit_usd),
            limits: effective_key_limits(key, hub),
            spend_usd: status.and_then(|s| s.usage.as_ref()).and_then(|u| u.current_usd),
        }
    }
}

/// The quota's verdict on a namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Refused ApiKeys by name, with the reason in words naming the quota field.
    pub refused: BTreeMap<String, String>,
    /// Admitted ApiKeys.
    pub admitted: u32,
    /// Sum of the admitted keys' budgets.
    pub allocated_usd: f64,
    /// Sum of the admitted keys' reported spend, if any reported.
    pub spend_usd: Option<f64>,
    /// What the admitted keys hold beyond the quota (it was lowered under them).
    pub overrun: Option<String>,
}

/// Judges every claim of one namespace on one hub.
pub fn judge(quota: Option<&NamespaceQuota>, mut claims: Vec<Claim>) -> Verdict {
    claims.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    let mut verdict = Verdict::default();
    let admit = |verdict: &mut Verdict, claim: &Claim| {
        verdict.admitted += 1;
        verdict.allocated_usd += claim.budget_usd.unwrap_or(0.0);
        if let Some(spend) = claim.spend_usd {
            *verdict.spend_usd.get_or_insert(0.0) += spend;
        }
    };
    let mut held_beyond_rules = 0;
    for claim in claims.iter().filter(|c| c.holds_key) {
        if quota.is_some_and(|q| rule_breach(q, claim).is_some()) {
            held_beyond_rules += 1;
        }
        admit(&mut verdict, claim);
    }
    if let Some(quota) = quota {
        verdict.overrun = overrun(quota, verdict.admitted, verdict.allocated_usd, held_beyond_rules);
    }
    for claim in claims.iter().filter(|c| !c.holds_key) {
        let refusal = quota.and_then(|q| {
            rule_breach(q, claim).or_else(|| room_breach(q, verdict.admitted, verdict.allocated_usd, claim))
        });
        match refusal {
            Some(why) => {
                verdict.refused.insert(claim.name.clone(), why);
            }
            None => admit(&mut verdict, claim),
        }
    }
    verdict.allocated_usd = keysmith_limits::money(Some(verdict.allocated_usd)).unwrap_or(0.0);
    verdict.spend_usd = keysmith_limits::money(verdict.spend_usd);
    verdict
}

/// A rule of the quota that `claim` breaks on its own.
fn rule_breach(quota: &NamespaceQuota, claim: &Claim) -> Option<String> {
    if quota.require_budget == Some(true) && claim.budget_usd.is_none() {
        return Some(
            "quota.requireBudget: the ClusterModelHub requires a budget; set spec.budget".to_owned(),
        );
    }
    let max = quota.max_limits.as_ref()?;
    let fields = [
        (
            "requestsPerMinute",
            max.requests_per_minute,
            claim.limits.requests_per_minute,
        ),
        (
            "requestsPerDay",
            max.requests_per_day,
            claim.limits.requests_per_day,
        ),
        (
            "tokensPerMinute",
            max.tokens_per_minute,
            claim.limits.tokens_per_minute,
        ),
        ("tokensPerDay", max.tokens_per_day, claim.limits.tokens_per_day),
    ];
    fields.into_iter().find_map(|(field, cap, own)| match (cap, own) {
        (Some(cap), None) => Some(format!(
            "quota.maxLimits.{field} is {cap}: set spec.limits.{field} to at most {cap}"
        )),
        (Some(cap), Some(own)) if own > cap => Some(format!(
            "quota.maxLimits.{field} is {cap}: spec.limits.{field} asks for {own}"
        )),
        _ => None,
    })
}

/// Whether `claim` fits beside what is already admitted.
fn room_breach(quota: &NamespaceQuota, keys: u32, allocated: f64, claim: &Claim) -> Option<String> {
    if let Some(max) = quota.max_keys
        && keys >= max
    {
        return Some(format!(
            "quota.maxKeys is {max}: the namespace already holds {keys} key(s) on this hub"
        ));
    }
    let budget = quota.budget_usd.as_ref()?;
    let asked = claim.budget_usd.unwrap_or(0.0);
    // A tenth of a cent of slack: budgets are decimal, sums of f64 are not.
    (allocated + asked > budget.limit + 0.0005).then(|| {
        format!(
            "quota.budgetUsd.limit is {}: the namespace has allocated {} and this key asks for {}",
            usd(budget.limit),
            usd(allocated),
            usd(asked)
        )
    })
}

/// What admitted keys hold beyond a quota lowered under them.
fn overrun(quota: &NamespaceQuota, keys: u32, allocated: f64, beyond_rules: u32) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(max) = quota.max_keys
        && keys > max
    {
        parts.push(format!("{keys} keys held, quota.maxKeys is {max}"));
    }
    if let Some(budget) = &quota.budget_usd
        && allocated > budget.limit + 0.0005
    {
        parts.push(format!(
            "{} allocated, quota.budgetUsd.limit is {}",
            usd(allocated),
            usd(budget.limit)
        ));
    }
    if beyond_rules > 0 {
        parts.push(format!(
            "{beyond_rules} key(s) break quota.requireBudget or quota.maxLimits"
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn usd(v: f64) -> String {
    format!("${v:.2}")
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
