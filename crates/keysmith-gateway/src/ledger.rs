//! The usage report the operator reads into `status.usage`: per ApiKey, today's requests and tokens
//! (UTC day), per model, and spend in the current budget window where the cost is known.
//!
//! This replica's figures only; with several replicas the operator sums their reports (or the shared
//! counter store takes over).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use jiff::Timestamp;
use keysmith_api::{
    BudgetReset,
    gateway_route::{ApiKeyRef, KeyReport, ModelReport, TokenFigures, UsageReport},
};

use crate::{enforce::Usage, windows::Window};

#[derive(Debug, Default)]
struct Tally {
    day: i64,
    requests: u64,
    tokens: TokenFigures,
    models: BTreeMap<String, ModelTally>,
    spend_window: Option<i64>,
    spend_micros: u64,
    spend_known: bool,
}

#[derive(Debug, Default)]
struct ModelTally {
    requests: u64,
    tokens: TokenFigures,
    spend_micros: Option<u64>,
}

/// One forwarded request, for the report.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// The model requested, if the call names one.
    pub model: Option<&'a str>,
    /// Usage reported, if any.
    pub usage: Option<Usage>,
    /// Spend, when known.
    pub spend_micros: Option<u64>,
    /// Whether the call is metered (a spend can be expected).
    pub metered: bool,
}

/// Usage per ApiKey in this replica.
#[derive(Debug, Default)]
pub struct Ledger {
    tallies: Mutex<HashMap<ApiKeyRef, Tally>>,
}

/// Models kept per key per day; beyond it, further models are folded into `other`, so a client
/// inventing model names cannot grow the report without bound.
const MAX_MODELS: usize = 64;

impl Ledger {
    /// Records one forwarded request.
    pub fn record(&self, key: &ApiKeyRef, reset: BudgetReset, entry: Entry<'_>, now: Timestamp) {
        let day = Window::day(now).start;
        let budget_window = Window::budget(reset, now).start;
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let tally = tallies.entry(key.clone()).or_default();
        if tally.day != day {
            *tally = Tally {
                spend_window: tally.spend_window,
                spend_micros: tally.spend_micros,
                spend_known: tally.spend_known,
                ..Tally::default()
            };
            tally.day = day;
        }
        if tally.spend_window != Some(budget_window) {
            tally.spend_window = Some(budget_window);
            tally.spend_micros = 0;
            tally.spend_known = true;
        }
        let usage = entry.usage.unwrap_or_default();
        tally.requests += 1;
        tally.tokens.input += usage.input;
        tally.tokens.output += usage.output;
        match entry.spend_micros {
            Some(m) => tally.spend_micros += m,
            None if entry.metered => tally.spend_known = false,
            None => {}
        }
        if let Some(model) = entry.model {
            let name = if tally.models.len() < MAX_MODELS || tally.models.contains_key(model) {
                model
            } else {
                "other"
            };
            let m = tally.models.entry(name.to_owned()).or_default();
            m.requests += 1;
            m.tokens.input += usage.input;
            m.tokens.output += usage.output;
            if let Some(s) = entry.spend_micros {
                *m.spend_micros.get_or_insert(0) += s;
            }
        }
    }

    /// The report for `keys` (with their budget resets) at `now`.
    pub fn report(&self, keys: &[(ApiKeyRef, BudgetReset)], now: Timestamp) -> UsageReport {
        let today = Window::day(now);
        let day = now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<KeyReport> = keys
            .iter()
            .map(|(key, reset)| {
                let window = Window::budget(*reset, now);
                let mut r = KeyReport {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    day: day.clone(),
                    spend_usd: Some(0.0),
                    window_resets_at: window.end_timestamp().map(|t| t.to_string()),
                    ..KeyReport::default()
                };
                let Some(t) = tallies.get(key) else { return r };
                if t.day == today.start {
                    r.requests_today = t.requests;
                    r.tokens_today = t.tokens;
                    r.models = t
                        .models
                        .iter()
                        .map(|(model, m)| ModelReport {
                            model: model.clone(),
                            requests: m.requests,
                            tokens: m.tokens,
                            spend_usd: m.spend_micros.map(usd),
                        })
                        .collect();
                }
                r.spend_usd = match (t.spend_window == Some(window.start), t.spend_known) {
                    (true, true) => Some(usd(t.spend_micros)),
                    (true, false) => None,
                    (false, _) => Some(0.0),
                };
                r
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        UsageReport { keys: out }
    }
}

fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKeyRef {
        ApiKeyRef {
            namespace: "ns".into(),
            name: "k".into(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn entry(model: &str, input: u64, output: u64, spend: Option<u64>) -> Entry<'_> {
        Entry {
            model: Some(model),
            usage: Some(Usage {
                input,
                output,
                cost_usd: None,
            }),
            spend_micros: spend,
            metered: true,
        }
    }

    #[test]
    fn today_and_the_budget_window_are_reported_per_model() {
        let ledger = Ledger::default();
        let now = at("2026-12-07T10:00:00Z");
        ledger.record(&key(), BudgetReset::Monthly, entry("a", 10, 5, Some(1_500)), now);
        ledger.record(&key(), BudgetReset::Monthly, entry("b", 1, 1, Some(500)), now);
        let r = &ledger.report(&[(key(), BudgetReset::Monthly)], now).keys[0];
        assert_eq!(r.requests_today, 2);
        assert_eq!(r.tokens_today, TokenFigures { input: 11, output: 6 });
        assert_eq!(r.models.len(), 2);
        assert_eq!(r.spend_usd, Some(0.002));
        assert_eq!(r.window_resets_at.as_deref(), Some("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn a_new_day_resets_today_but_not_the_month() {
        let ledger = Ledger::default();
        ledger.record(
            &key(),
            BudgetReset::Monthly,
            entry("a", 10, 5, Some(1_000)),
            at("2026-12-07T23:59:00Z"),
        );
        let next = at("2026-12-08T00:01:00Z");
        let r = &ledger.report(&[(key(), BudgetReset::Monthly)], next).keys[0];
        assert_eq!(r.requests_today, 0);
        assert_eq!(r.spend_usd, Some(0.001));
        ledger.record(&key(), BudgetReset::Monthly, entry("a", 1, 1, Some(1_000)), next);
        let r = &ledger.report(&[(key(), BudgetReset::Monthly)], next).keys[0];
        assert_eq!((r.requests_today, r.spend_usd), (1, Some(0.002)));
    }

    #[test]
    fn an_unknown_cost_makes_the_spend_unknown() {
        let ledger = Ledger::default();
        let now = at("2026-12-07T10:00:00Z");
        ledger.record(&key(), BudgetReset::Daily, entry("a", 1, 1, Some(10)), now);
        ledger.record(&key(), BudgetReset::Daily, entry("a", 1, 1, None), now);
        let r = &ledger.report(&[(key(), BudgetReset::Daily)], now).keys[0];
        assert_eq!(r.spend_usd, None);
    }
}
