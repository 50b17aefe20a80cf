//! Turning usage and cost buckets into one key's [`KeyUsage`]. Pure: the client fetches the pages,
//! this module only adds them up, so the window arithmetic is tested without a server.
//!
//! Spend comes from `/organization/costs` in daily buckets from the key's creation day, so all-time,
//! monthly, weekly and daily figures are exact. Requests and tokens come from
//! `/organization/usage/completions` for the current UTC day only (the figures the status reports
//! per day); other endpoint families (embeddings, images, audio) are not counted.

use std::collections::BTreeMap;

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};

use super::wire::{Bucket, CompletionsResult, CostsResult};
use crate::KeyUsage;
use keysmith_api::ModelUsage;

/// Starts of the current UTC day, week (Monday) and month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Windows {
    pub day: Timestamp,
    pub week: Timestamp,
    pub month: Timestamp,
}

impl Windows {
    pub fn at(now: Timestamp) -> Self {
        let today = now.to_zoned(TimeZone::UTC).date();
        let monday = today.saturating_sub(i64::from(today.weekday().to_monday_zero_offset()).days());
        Self {
            day: midnight(today),
            week: midnight(monday),
            month: midnight(today.first_of_month()),
        }
    }
}

/// 00:00 UTC on the day of `at`.
pub(super) fn day_start(at: Timestamp) -> Timestamp {
    midnight(at.to_zoned(TimeZone::UTC).date())
}

fn midnight(date: Date) -> Timestamp {
    date.to_zoned(TimeZone::UTC)
        .map(|zoned| zoned.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Adds the cost buckets of `key_id` into all-time, daily, weekly and monthly spend. Buckets are one
/// UTC day wide, so a bucket belongs to a window when it starts at or after the window's start.
pub(super) fn add_costs(
    usage: &mut KeyUsage,
    buckets: &[Bucket<CostsResult>],
    key_id: &str,
    windows: Windows,
) {
    let (mut total, mut day, mut week, mut month) = (0.0, 0.0, 0.0, 0.0);
    for bucket in buckets {
        let Some(start) = bucket.start() else { continue };
        let spent: f64 = bucket
            .results
            .iter()
            // Grouped by api_key_id, so a result of another key (a server ignoring the filter) is skipped.
            .filter(|result| result.api_key_id.as_deref() == Some(key_id))
            .filter_map(|result| result.amount.as_ref()?.usd())
            .sum();
        total += spent;
        if start >= windows.day {
            day += spent;
        }
        if start >= windows.week {
            week += spent;
        }
        if start >= windows.month {
            month += spent;
        }
    }
    usage.total_usd = Some(total);
    usage.daily_usd = Some(day);
    usage.weekly_usd = Some(week);
    usage.monthly_usd = Some(month);
}

/// Adds today's completion buckets of `key_id`: requests, tokens (input plus output) and the same
/// per model. Per-model spend stays unknown: costs cannot be grouped by model.
pub(super) fn add_completions(
    usage: &mut KeyUsage,
    buckets: &[Bucket<CompletionsResult>],
    key_id: &str,
    day: Timestamp,
) {
    let mut requests = 0u64;
    let mut tokens = 0u64;
    let mut models: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for bucket in buckets {
        if bucket.start().is_none_or(|start| start < day) {
            continue;
        }
        for result in &bucket.results {
            if result.api_key_id.as_deref() != Some(key_id) {
                continue;
            }
            let used = result.input_tokens.saturating_add(result.output_tokens);
            requests = requests.saturating_add(result.num_model_requests);
            tokens = tokens.saturating_add(used);
            if let Some(model) = &result.model {
                let entry = models.entry(model.clone()).or_default();
                entry.0 = entry.0.saturating_add(result.num_model_requests);
                entry.1 = entry.1.saturating_add(used);
            }
        }
    }
    usage.requests_today = Some(requests);
    usage.tokens_today = Some(tokens);
    usage.models = models
        .into_iter()
        .map(|(model, (requests, tokens))| ModelUsage {
            model,
            usd: None,
            requests: Some(requests),
            tokens: Some(tokens),
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cost_bucket(day: &str, results: serde_json::Value) -> Bucket<CostsResult> {
        let start = at(day).as_second();
        serde_json::from_value(json!({"start_time": start, "end_time": start + 86_400, "results": results}))
            .unwrap()
    }

    #[test]
    fn windows_start_at_utc_midnight_monday_and_the_first() {
        // 2025-08-14 is a Thursday.
        let windows = Windows::at(at("2025-08-14T15:30:00Z"));
        assert_eq!(windows.day, at("2025-08-14T00:00:00Z"));
        assert_eq!(windows.week, at("2025-08-11T00:00:00Z"));
        assert_eq!(windows.month, at("2025-08-01T00:00:00Z"));
        assert_eq!(day_start(at("2025-08-14T23:59:59Z")), at("2025-08-14T00:00:00Z"));
    }

    #[test]
    fn costs_fall_into_every_window_they_start_in_and_other_keys_are_ignored() {
        let windows = Windows::at(at("2025-08-14T15:30:00Z"));
        let mine = |usd: f64| json!({"amount": {"value": usd, "currency": "usd"}, "api_key_id": "key_a"});
        let buckets = vec![
            cost_bucket("2025-07-31T00:00:00Z", json!([mine(1.0)])),
            cost_bucket("2025-08-04T00:00:00Z", json!([mine(2.0)])),
            cost_bucket("2025-08-12T00:00:00Z", json!([mine(4.0)])),
            cost_bucket(
                "2025-08-14T00:00:00Z",
                json!([mine(8.0), {"amount": {"value": 100.0, "currency": "usd"}, "api_key_id": "key_b"}]),
            ),
        ];
        let mut usage = KeyUsage::default();
        add_costs(&mut usage, &buckets, "key_a", windows);
        assert_eq!(usage.total_usd, Some(15.0));
        assert_eq!(usage.monthly_usd, Some(14.0));
        assert_eq!(usage.weekly_usd, Some(12.0));
        assert_eq!(usage.daily_usd, Some(8.0));
    }

    #[test]
    fn no_buckets_means_zero_spend_not_unknown_spend() {
        let mut usage = KeyUsage::default();
        add_costs(&mut usage, &[], "key_a", Windows::at(at("2025-08-14T00:00:00Z")));
        assert_eq!((usage.total_usd, usage.daily_usd), (Some(0.0), Some(0.0)));
    }

    #[test]
    fn completions_of_today_add_up_per_model() {
        let day = at("2025-08-14T00:00:00Z");
        let row = |model: &str, requests: u64, input: u64, output: u64, key: &str| {
            json!({"input_tokens": input, "output_tokens": output, "num_model_requests": requests,
                   "api_key_id": key, "model": model})
        };
        let buckets: Vec<Bucket<CompletionsResult>> = serde_json::from_value(json!([
            {"start_time": at("2025-08-13T00:00:00Z").as_second(), "results": [row("gpt-4o", 50, 1, 1, "key_a")]},
            {"start_time": day.as_second(), "results": [
                row("gpt-4o-mini", 3, 100, 50, "key_a"),
                row("gpt-4o", 2, 10, 5, "key_a"),
                row("gpt-4o", 9, 999, 999, "key_b"),
            ]},
        ]))
        .unwrap();
        let mut usage = KeyUsage::default();
        add_completions(&mut usage, &buckets, "key_a", day);
        assert_eq!(usage.requests_today, Some(5));
        assert_eq!(usage.tokens_today, Some(165));
        assert_eq!(
            usage.models,
            vec![
                ModelUsage {
                    model: "gpt-4o".into(),
                    usd: None,
                    requests: Some(2),
                    tokens: Some(15)
                },
                ModelUsage {
                    model: "gpt-4o-mini".into(),
                    usd: None,
                    requests: Some(3),
                    tokens: Some(150)
                },
            ]
        );
    }
}
