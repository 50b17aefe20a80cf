//! One key's usage and spend from the organisation's reports.
//!
//! The usage report can be grouped by `api_key_id`, so tokens per key and model are exact. The cost
//! report cannot (only by workspace and description), so a key's spend is known exactly only on
//! days when nothing else used its workspace: then the workspace's cost that day is the key's. On a
//! day the key shared its workspace with other keys (or with the Console, whose usage has no key),
//! its spend is unknown and every window holding that day reports none, rather than a guess.

use std::collections::BTreeMap;

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};

use super::wire::{Bucket, CostRow, UsageRow};
use crate::KeyUsage;
use keysmith_api::ModelUsage;

/// The first day the windows need: the earlier of this week's Monday and the 1st of the month.
pub(super) fn window_start(now: Timestamp) -> Timestamp {
    let today = utc_date(now);
    let monday = today.saturating_sub(i64::from(today.weekday().to_monday_zero_offset()).days());
    midnight(monday.min(today.first_of_month()))
}

/// What one day holds for the key and its workspace.
#[derive(Default)]
struct Day {
    key_tokens: u64,
    model_tokens: BTreeMap<String, u64>,
    /// Tokens of other keys (or the Console) in the key's workspace.
    others: u64,
    workspace_usd: f64,
    model_usd: BTreeMap<String, f64>,
    /// A cost line in a currency keysmith does not convert.
    unknown_cost: bool,
}

impl Day {
    /// The key's spend that day, where it can be told apart.
    fn key_usd(&self) -> Option<f64> {
        if self.key_tokens == 0 {
            Some(0.0)
        } else if self.others == 0 && !self.unknown_cost {
            Some(self.workspace_usd)
        } else {
            None
        }
    }
}

/// Usage of key `key_id` in `workspace` (`None`: the default workspace), from report rows grouped by
/// `api_key_id`, `workspace_id` and `model` (usage) and by `workspace_id` and `description` (cost),
/// in daily buckets from [`window_start`].
pub(super) fn key_usage(
    key_id: &str,
    workspace: Option<&str>,
    usage: &[Bucket<UsageRow>],
    cost: &[Bucket<CostRow>],
    now: Timestamp,
) -> KeyUsage {
    let mut days: BTreeMap<Date, Day> = BTreeMap::new();
    for bucket in usage {
        let day = days.entry(utc_date(bucket.starting_at)).or_default();
        for row in bucket
            .results
            .iter()
            .filter(|r| r.workspace_id.as_deref() == workspace)
        {
            let tokens = row.tokens();
            if row.api_key_id.as_deref() == Some(key_id) {
                day.key_tokens += tokens;
                let model = row.model.clone().unwrap_or_default();
                *day.model_tokens.entry(model).or_default() += tokens;
            } else {
                day.others += tokens;
            }
        }
    }
    for bucket in cost {
        let day = days.entry(utc_date(bucket.starting_at)).or_default();
        for row in bucket
            .results
            .iter()
            .filter(|r| r.workspace_id.as_deref() == workspace)
        {
            match row.usd() {
                Some(usd) => {
                    day.workspace_usd += usd;
                    if let Some(model) = &row.model {
                        *day.model_usd.entry(model.clone()).or_default() += usd;
                    }
                }
                None => day.unknown_cost = true,
            }
        }
    }

    let today = utc_date(now);
    let monday = today.saturating_sub(i64::from(today.weekday().to_monday_zero_offset()).days());
    let since = |first: Date| -> Option<f64> {
        days.range(first..=today)
            .map(|(_, day)| day.key_usd())
            .try_fold(0.0, |sum, usd| usd.map(|usd| sum + usd))
    };
    let empty = Day::default();
    let current = days.get(&today).unwrap_or(&empty);
    let attributable = current.key_usd().is_some();
    KeyUsage {
        daily_usd: current.key_usd(),
        weekly_usd: since(monday),
        monthly_usd: since(today.first_of_month()),
        // An all-time figure would need every report since the key was made.
        total_usd: None,
        remaining_usd: None,
        // The usage report counts tokens, not requests.
        requests_today: None,
        tokens_today: Some(current.key_tokens),
        models: current
            .model_tokens
            .iter()
            .map(|(model, tokens)| ModelUsage {
                model: model.clone(),
                usd: attributable.then(|| current.model_usd.get(model).copied().unwrap_or(0.0)),
                requests: None,
                tokens: Some(*tokens),
            })
            .collect(),
    }
}

fn utc_date(at: Timestamp) -> Date {
    at.to_zoned(TimeZone::UTC).date()
}

fn midnight(date: Date) -> Timestamp {
    date.to_zoned(TimeZone::UTC)
        .map(|zoned| zoned.timestamp())
        .unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn usage(day: &str, rows: Value) -> Bucket<UsageRow> {
        serde_json::from_value(json!({"starting_at": day, "results": rows})).unwrap()
    }

    fn cost(day: &str, rows: Value) -> Bucket<CostRow> {
        serde_json::from_value(json!({"starting_at": day, "results": rows})).unwrap()
    }

    #[test]
    fn windows_start_at_the_earlier_of_monday_and_the_first() {
        // 2025-08-14 is a Thursday; 2025-09-02 a Tuesday whose Monday is 1 September.
        assert_eq!(
            window_start(at("2025-08-14T15:00:00Z")),
            at("2025-08-01T00:00:00Z")
        );
        assert_eq!(
            window_start(at("2025-09-02T15:00:00Z")),
            at("2025-09-01T00:00:00Z")
        );
        // 2025-10-01 is a Wednesday: the week began in September.
        assert_eq!(
            window_start(at("2025-10-01T09:00:00Z")),
            at("2025-09-29T00:00:00Z")
        );
    }

    #[test]
    fn a_key_alone_in_its_workspace_is_charged_the_workspaces_cost() {
        let now = at("2025-08-14T15:00:00Z");
        let usage = [
            usage(
                "2025-08-13T00:00:00Z",
                json!([{"api_key_id": "k", "workspace_id": "w", "model": "m", "output_tokens": 10}]),
            ),
            usage(
                "2025-08-14T00:00:00Z",
                json!([
                    {"api_key_id": "k", "workspace_id": "w", "model": "m", "uncached_input_tokens": 100},
                    {"api_key_id": "k", "workspace_id": "w", "model": "n", "output_tokens": 5},
                    {"api_key_id": "other", "workspace_id": "elsewhere", "model": "m", "output_tokens": 999},
                ]),
            ),
        ];
        let cost = [
            cost(
                "2025-08-13T00:00:00Z",
                json!([{"amount": "200", "currency": "USD", "workspace_id": "w"}]),
            ),
            cost(
                "2025-08-14T00:00:00Z",
                json!([
                    {"amount": "150", "currency": "USD", "workspace_id": "w", "model": "m"},
                    {"amount": "25.5", "currency": "USD", "workspace_id": "w", "model": "n"},
                    {"amount": "9999", "currency": "USD", "workspace_id": "elsewhere"},
                ]),
            ),
        ];
        let got = key_usage("k", Some("w"), &usage, &cost, now);
        assert_eq!(got.tokens_today, Some(105));
        assert!((got.daily_usd.unwrap() - 1.755).abs() < 1e-9);
        assert!((got.weekly_usd.unwrap() - 3.755).abs() < 1e-9);
        assert!((got.monthly_usd.unwrap() - 3.755).abs() < 1e-9);
        assert_eq!(got.total_usd, None);
        assert_eq!(got.models.len(), 2);
        assert_eq!(got.models[0].tokens, Some(100));
        assert!((got.models[0].usd.unwrap() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn a_shared_day_leaves_every_window_holding_it_unknown() {
        let now = at("2025-08-14T15:00:00Z");
        let usage = [
            usage(
                "2025-08-12T00:00:00Z",
                json!([
                    {"api_key_id": "k", "workspace_id": null, "model": "m", "output_tokens": 10},
                    {"api_key_id": null, "workspace_id": null, "model": "m", "output_tokens": 1},
                ]),
            ),
            usage(
                "2025-08-14T00:00:00Z",
                json!([{"api_key_id": "k", "workspace_id": null, "model": "m", "output_tokens": 10}]),
            ),
        ];
        let cost = [
            cost(
                "2025-08-12T00:00:00Z",
                json!([{"amount": "10", "workspace_id": null}]),
            ),
            cost(
                "2025-08-14T00:00:00Z",
                json!([{"amount": "40", "workspace_id": null}]),
            ),
        ];
        let got = key_usage("k", None, &usage, &cost, now);
        assert!((got.daily_usd.unwrap() - 0.4).abs() < 1e-9);
        assert_eq!(got.weekly_usd, None);
        assert_eq!(got.monthly_usd, None);
    }

    #[test]
    fn days_without_the_keys_tokens_cost_it_nothing() {
        let now = at("2025-08-14T15:00:00Z");
        let usage = [usage(
            "2025-08-14T00:00:00Z",
            json!([{"api_key_id": "other", "workspace_id": null, "output_tokens": 10}]),
        )];
        let cost = [cost(
            "2025-08-14T00:00:00Z",
            json!([{"amount": "40", "workspace_id": null}]),
        )];
        let got = key_usage("k", None, &usage, &cost, now);
        assert_eq!(
            (got.daily_usd, got.monthly_usd, got.tokens_today),
            (Some(0.0), Some(0.0), Some(0))
        );
        assert!(got.models.is_empty());
    }
}
