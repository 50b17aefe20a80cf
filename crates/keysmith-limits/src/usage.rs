//! Usage arithmetic: a provider's figures turned into the status's, in the budget's window.

use jiff::Timestamp;
use keysmith_api::{BudgetReset, ModelUsage, StatusTime, Usage};

use crate::windows::next_window_reset;

/// Usage figures of one key, in the provider's windows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyUsage {
    /// All-time spend in USD.
    pub total_usd: Option<f64>,
    /// Spend in the current UTC day.
    pub daily_usd: Option<f64>,
    /// Spend in the current UTC week.
    pub weekly_usd: Option<f64>,
    /// Spend in the current UTC month.
    pub monthly_usd: Option<f64>,
    /// Budget left in the current window, as the provider computes it.
    pub remaining_usd: Option<f64>,
    /// Requests in the current UTC day.
    pub requests_today: Option<u64>,
    /// Tokens in the current UTC day.
    pub tokens_today: Option<u64>,
    /// Per-model figures, where the provider reports them.
    pub models: Vec<ModelUsage>,
}

/// Rounds money to a tenth of a cent so float noise never causes a status write.
pub fn money(v: Option<f64>) -> Option<f64> {
    v.map(|x| (x * 1000.0).round() / 1000.0)
}

/// Usage for the status, from the provider's figures and the budget in force.
pub fn usage_status(usage: &KeyUsage, budget_reset: Option<BudgetReset>, now: Timestamp) -> Usage {
    let current = match budget_reset {
        Some(BudgetReset::Daily) => usage.daily_usd,
        Some(BudgetReset::Weekly) => usage.weekly_usd,
        Some(BudgetReset::Monthly) => usage.monthly_usd,
        Some(BudgetReset::Never) | None => usage.total_usd,
    };
    Usage {
        total_usd: money(usage.total_usd),
        daily_usd: money(usage.daily_usd),
        weekly_usd: money(usage.weekly_usd),
        monthly_usd: money(usage.monthly_usd),
        current_usd: money(current),
        remaining_usd: money(usage.remaining_usd),
        window_resets_at: budget_reset
            .and_then(|r| next_window_reset(r, now))
            .map(StatusTime::from),
        requests_today: usage.requests_today,
        tokens_today: usage.tokens_today,
        models: usage
            .models
            .iter()
            .map(|m| keysmith_api::ModelUsage {
                usd: money(m.usd),
                ..m.clone()
            })
            .collect(),
    }
}

/// The usage to judge a suspended key by: what was last reported, or nothing once the window that
/// report belongs to has reset (the revoked key can spend no more, and a new key starts at zero).
/// An unreadable reset time counts as not reached: the key stays judged by what it spent (the
/// operator refuses such a status before it decides anything, see `ApiKeyStatus::check_times`).
pub fn usage_while_suspended(status: &keysmith_api::ApiKeyStatus, now: Timestamp) -> Usage {
    let mut last = status.usage.clone().unwrap_or_default();
    let reset = last
        .window_resets_at
        .as_ref()
        .is_some_and(|t| t.get().is_ok_and(|t| t <= now));
    if reset {
        return Usage::default();
    }
    // Daily counts start again at 00:00 UTC, whatever the budget's window.
    let day = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date();
    let since = status.suspended.as_ref().and_then(|s| s.since.get().ok());
    if since.is_some_and(|since| day(since) < day(now)) {
        last.requests_today = None;
        last.tokens_today = None;
        last.daily_usd = None;
    }
    last
}
