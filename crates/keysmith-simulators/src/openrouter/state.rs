//! The simulated OpenRouter account: keys, their spend ledgers, and the usage arithmetic that turns a
//! ledger into the usage and limit fields of the wire format.
//!
//! Usage is never stored as counters. It is summed from timestamped ledger entries against the
//! simulator clock each time it is read, so moving the clock across a UTC midnight, a Monday or the
//! 1st of a month resets the windows exactly as OpenRouter does.

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sha256_hex;

/// The workspace keys belong to unless a request names another.
pub const DEFAULT_WORKSPACE: &str = "0df9e665-3c1f-4a5e-9b7d-2f6a8c1e4b10";

/// Model recorded for spend that does not name one.
pub const DEFAULT_MODEL: &str = "openai/gpt-4o-mini";

/// How often a key's `limit` starts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    /// Parses the wire value (`daily`, `weekly`, `monthly`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "daily" => Some(Self::Daily),
            "weekly" => Some(Self::Weekly),
            "monthly" => Some(Self::Monthly),
            _ => None,
        }
    }
}

/// One charge against a key, as the `/_sim/keys/{hash}/spend` hook accepts it
/// (`{"usd":1.5,"byok":false,"requests":1,"promptTokens":10,"completionTokens":5}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spend {
    /// Cost in USD.
    pub usd: f64,
    /// Whether the spend went to the caller's own provider account (BYOK) rather than OpenRouter credits.
    #[serde(default)]
    pub byok: bool,
    #[serde(default = "one")]
    pub requests: u64,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    #[serde(default = "default_model")]
    pub model: String,
}

fn one() -> u64 {
    1
}

fn default_model() -> String {
    DEFAULT_MODEL.to_owned()
}

impl Spend {
    /// One request costing `usd`, charged to OpenRouter credits or (with `byok`) to the caller's own
    /// provider account.
    pub fn usd(usd: f64, byok: bool) -> Self {
        Self {
            usd,
            byok,
            requests: 1,
            prompt_tokens: 0,
            completion_tokens: 0,
            reasoning_tokens: 0,
            model: default_model(),
        }
    }
}

/// A ledger entry: a spend and when it happened.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Entry {
    pub at: Timestamp,
    pub spend: Spend,
}

/// Spend totals for the usage fields of the key object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    pub usage: f64,
    pub usage_daily: f64,
    pub usage_weekly: f64,
    pub usage_monthly: f64,
    pub byok_usage: f64,
    pub byok_usage_daily: f64,
    pub byok_usage_weekly: f64,
    pub byok_usage_monthly: f64,
}

/// The starts of the current UTC day, week (Monday) and month.
#[derive(Clone, Copy, Debug)]
struct Windows {
    day: Timestamp,
    week: Timestamp,
    month: Timestamp,
}

impl Windows {
    fn at(now: Timestamp) -> Self {
        let today = now.to_zoned(TimeZone::UTC).date();
        let monday = today.saturating_sub(i64::from(today.weekday().to_monday_zero_offset()).days());
        Self {
            day: midnight(today),
            week: midnight(monday),
            month: midnight(today.first_of_month()),
        }
    }
}

/// 00:00 UTC on `date`.
pub(super) fn midnight(date: Date) -> Timestamp {
    date.to_zoned(TimeZone::UTC)
        .map(|zoned| zoned.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// The wire format of timestamps: ISO-8601 in UTC with a `Z`, fractions of a second only when set.
pub(super) fn iso(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// A key as the state holds it. The plaintext value is never kept: callers are recognised by the
/// SHA-256 of the value they present, which is also the key's `hash`.
#[derive(Clone, Debug)]
pub(super) struct KeyRecord {
    pub hash: String,
    pub name: String,
    pub label: String,
    pub disabled: bool,
    pub limit: Option<f64>,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub creator_user_id: Option<String>,
    pub workspace_id: String,
    pub deleted_at: Option<Timestamp>,
    pub ledger: Vec<Entry>,
}

impl KeyRecord {
    /// A fresh, enabled key with no limit for the plaintext `value`, created at `now`.
    pub fn new(value: &str, name: String, now: Timestamp) -> Self {
        Self {
            hash: sha256_hex(value),
            name,
            label: mask(value),
            disabled: false,
            limit: None,
            limit_reset: None,
            include_byok_in_limit: false,
            created_at: whole_seconds(now),
            updated_at: None,
            expires_at: None,
            creator_user_id: None,
            workspace_id: DEFAULT_WORKSPACE.to_owned(),
            deleted_at: None,
            ledger: Vec::new(),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|expires| expires <= now)
    }

    /// Records an update at `now`.
    pub fn touch(&mut self, now: Timestamp) {
        self.updated_at = Some(whole_seconds(now));
    }

    /// Ledger entries that have happened by `now` (a clock set backwards hides later ones).
    pub fn entries(&self, now: Timestamp) -> impl Iterator<Item = &Entry> {
        self.ledger.iter().filter(move |entry| entry.at <= now)
    }

    pub fn usage(&self, now: Timestamp) -> Usage {
        let windows = Windows::at(now);
        let mut usage = Usage::default();
        for Entry { at, spend } in self.entries(now) {
            let (all, day, week, month) = if spend.byok {
                (
                    &mut usage.byok_usage,
                    &mut usage.byok_usage_daily,
                    &mut usage.byok_usage_weekly,
                    &mut usage.byok_usage_monthly,
                )
            } else {
                (
                    &mut usage.usage,
                    &mut usage.usage_daily,
                    &mut usage.usage_weekly,
                    &mut usage.usage_monthly,
                )
            };
            *all += spend.usd;
            if *at >= windows.day {
                *day += spend.usd;
            }
            if *at >= windows.week {
                *week += spend.usd;
            }
            if *at >= windows.month {
                *month += spend.usd;
            }
        }
        usage
    }

    /// USD left in the current `limit_reset` window (all time when there is no reset), never below 0.
    pub fn limit_remaining(&self, usage: &Usage) -> Option<f64> {
        let limit = self.limit?;
        let (credits, byok) = match self.limit_reset {
            None => (usage.usage, usage.byok_usage),
            Some(LimitReset::Daily) => (usage.usage_daily, usage.byok_usage_daily),
            Some(LimitReset::Weekly) => (usage.usage_weekly, usage.byok_usage_weekly),
            Some(LimitReset::Monthly) => (usage.usage_monthly, usage.byok_usage_monthly),
        };
        let spent = if self.include_byok_in_limit {
            credits + byok
        } else {
            credits
        };
        Some((limit - spent).max(0.0))
    }

    /// The `Key` object of list, get, create and update responses.
    pub fn api_json(&self, now: Timestamp) -> Value {
        let usage = self.usage(now);
        let mut object = json!({
            "hash": self.hash,
            "name": self.name,
            "label": self.label,
            "disabled": self.disabled,
            "created_at": iso(self.created_at),
            "updated_at": self.updated_at.map(iso),
            "expires_at": self.expires_at.map(iso),
            "creator_user_id": self.creator_user_id,
            "workspace_id": self.workspace_id,
        });
        self.add_limit_fields(&mut object, &usage);
        object
    }

    /// The `CurrentKey` object of `GET /key` for this (ordinary) key.
    pub fn current_json(&self, now: Timestamp, is_free_tier: bool) -> Value {
        let usage = self.usage(now);
        let mut object = current_key_base(&self.label, false, is_free_tier);
        object["expires_at"] = json!(self.expires_at.map(iso));
        object["creator_user_id"] = json!(self.creator_user_id);
        self.add_limit_fields(&mut object, &usage);
        object
    }

    fn add_limit_fields(&self, object: &mut Value, usage: &Usage) {
        object["limit"] = json!(self.limit);
        object["limit_remaining"] = json!(self.limit_remaining(usage));
        object["limit_reset"] = json!(self.limit_reset);
        object["include_byok_in_limit"] = json!(self.include_byok_in_limit);
        if let (Value::Object(fields), Ok(Value::Object(usage))) = (object, serde_json::to_value(usage)) {
            fields.extend(usage);
        }
    }

    pub fn sim_key(&self, now: Timestamp) -> SimKey {
        let usage = self.usage(now);
        SimKey {
            hash: self.hash.clone(),
            name: self.name.clone(),
            label: self.label.clone(),
            disabled: self.disabled,
            deleted: self.is_deleted(),
            expired: self.is_expired(now),
            limit: self.limit,
            limit_remaining: self.limit_remaining(&usage),
            limit_reset: self.limit_reset,
            include_byok_in_limit: self.include_byok_in_limit,
            usage,
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            deleted_at: self.deleted_at,
            creator_user_id: self.creator_user_id.clone(),
            workspace_id: self.workspace_id.clone(),
        }
    }
}

/// The `GET /key` fields shared by management and ordinary keys. `rate_limit` is deprecated upstream
/// ("safe to ignore") but still sent, so clients must tolerate it.
pub(super) fn current_key_base(label: &str, is_management_key: bool, is_free_tier: bool) -> Value {
    json!({
        "label": label,
        "is_free_tier": is_free_tier,
        "is_management_key": is_management_key,
        "is_provisioning_key": is_management_key,
        "rate_limit": {"requests": -1, "interval": "10s", "note": "This field is deprecated and safe to ignore."},
        "expires_at": null,
        "creator_user_id": null,
        "limit": null,
        "limit_remaining": null,
        "limit_reset": null,
        "include_byok_in_limit": false,
    })
}

/// A key as the test hooks show it: everything but the plaintext value, including deleted keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimKey {
    pub hash: String,
    pub name: String,
    pub label: String,
    pub disabled: bool,
    pub deleted: bool,
    /// Whether `expires_at` has passed on the simulator clock.
    pub expired: bool,
    pub limit: Option<f64>,
    pub limit_remaining: Option<f64>,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    #[serde(flatten)]
    pub usage: Usage,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    pub creator_user_id: Option<String>,
    pub workspace_id: String,
}

/// A management key: it only manages, so it has no name, limit or spend of its own.
#[derive(Clone, Debug)]
pub(super) struct ManagementKey {
    pub hash: String,
    pub label: String,
}

/// Everything the simulated account holds.
#[derive(Debug)]
pub(super) struct State {
    /// In creation order; lists show them newest first.
    pub keys: Vec<KeyRecord>,
    pub management: Vec<ManagementKey>,
    /// What `/credits` reports as bought.
    pub total_credits: f64,
}

impl State {
    pub fn key(&self, hash: &str) -> Option<&KeyRecord> {
        self.keys.iter().find(|key| key.hash == hash)
    }

    pub fn key_mut(&mut self, hash: &str) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|key| key.hash == hash)
    }

    /// A key that has not been deleted.
    pub fn live_key_mut(&mut self, hash: &str) -> Option<&mut KeyRecord> {
        self.key_mut(hash).filter(|key| !key.is_deleted())
    }

    /// Registers a management key by its plaintext value (kept only as a hash); returns the hash.
    pub fn add_management_key(&mut self, value: &str) -> String {
        let hash = sha256_hex(value);
        if !self.management.iter().any(|key| key.hash == hash) {
            self.management.push(ManagementKey {
                hash: hash.clone(),
                label: mask(value),
            });
        }
        hash
    }

    /// Credit spend of every key, deleted ones included, up to `now`.
    pub fn total_usage(&self, now: Timestamp) -> f64 {
        self.keys
            .iter()
            .flat_map(|key| key.entries(now))
            .filter(|entry| !entry.spend.byok)
            .map(|entry| entry.spend.usd)
            .sum()
    }

    /// An account counts as free tier until it has bought credits.
    pub fn is_free_tier(&self) -> bool {
        self.total_credits <= 0.0
    }
}

/// The masked form OpenRouter shows in `label`: `sk-or-v1-` plus the first 3 and last 4 characters
/// of the secret part, e.g. `sk-or-v1-0e6...1c96`. Values in another format keep their own prefix out.
pub(super) fn mask(value: &str) -> String {
    const PREFIX: &str = "sk-or-v1-";
    let (prefix, secret) = value
        .strip_prefix(PREFIX)
        .map_or(("", value), |rest| (PREFIX, rest));
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 8 {
        return format!("{prefix}...");
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}{head}...{tail}")
}

/// Drops sub-second precision, which OpenRouter's timestamps do not show.
fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn windows_start_at_utc_midnight_monday_and_the_first_of_the_month() {
        // 2025-08-14 is a Thursday.
        let windows = Windows::at(at("2025-08-14T15:30:00Z"));
        assert_eq!(windows.day, at("2025-08-14T00:00:00Z"));
        assert_eq!(windows.week, at("2025-08-11T00:00:00Z"));
        assert_eq!(windows.month, at("2025-08-01T00:00:00Z"));
        let monday = Windows::at(at("2025-08-11T00:00:00Z"));
        assert_eq!(monday.week, at("2025-08-11T00:00:00Z"));
    }

    #[test]
    fn labels_mask_all_but_the_first_three_and_last_four_secret_characters() {
        let value = format!("sk-or-v1-0e6{}1c96", "a".repeat(57));
        assert_eq!(mask(&value), "sk-or-v1-0e6...1c96");
        assert_eq!(mask("short"), "...");
        assert_eq!(mask("legacy-key-123456"), "leg...3456");
    }

    #[test]
    fn timestamps_render_as_utc_with_a_z() {
        assert_eq!(iso(at("2025-08-24T10:30:00Z")), "2025-08-24T10:30:00Z");
        assert_eq!(iso(at("2025-08-24T12:30:00.5+02:00")), "2025-08-24T10:30:00.5Z");
    }
}
