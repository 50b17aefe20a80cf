//! The simulated aiXplain team: its API keys, their limits and a usage ledger from which the daily
//! counts of `usage-limits` are summed against the simulator clock (so crossing a UTC midnight
//! resets them, as aiXplain's daily counters do).

use jiff::{Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sha256_hex;

/// Which tokens a token limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Input,
    Output,
    Total,
}

/// `rpm`, `rpd`, `tpm` and `tpd` (each `None` when unset) and the token type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub tpm: Option<u64>,
    pub tpd: Option<u64>,
    pub rpm: Option<u64>,
    pub rpd: Option<u64>,
    pub token_type: Option<TokenType>,
}

/// Limits for one model (`assetId`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetLimit {
    pub asset_id: String,
    #[serde(flatten)]
    pub limits: Limits,
}

/// Traffic charged to a key, as the `/_sim/keys/{id}/usage` hook accepts it
/// (`{"requests": 1, "tokens": 120, "assetId": "6646261c6eb563165658bbb1"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    #[serde(default = "one")]
    pub requests: u64,
    #[serde(default)]
    pub tokens: u64,
    /// The model called, if any.
    #[serde(default)]
    pub asset_id: Option<String>,
}

fn one() -> u64 {
    1
}

#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub at: Timestamp,
    pub traffic: Traffic,
}

/// A key as the state holds it. The value is kept as its SHA-256 and a mask; the plaintext only when
/// the simulator was told that the list reveals values (see [`super::AixplainSim::set_list_reveals_keys`]).
#[derive(Clone, Debug)]
pub(super) struct KeyRecord {
    pub id: String,
    pub name: String,
    pub value_hash: String,
    pub masked: String,
    pub plaintext: Option<String>,
    pub budget: Option<f64>,
    pub global_limits: Option<Limits>,
    pub assets_limits: Vec<AssetLimit>,
    pub expires_at: Option<Timestamp>,
    pub is_admin: bool,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub ledger: Vec<Entry>,
}

impl KeyRecord {
    pub fn new(value: &str, name: String, is_admin: bool, keep_plaintext: bool, now: Timestamp) -> Self {
        Self {
            id: new_id(),
            name,
            value_hash: sha256_hex(value),
            masked: mask(value),
            plaintext: keep_plaintext.then(|| value.to_owned()),
            budget: None,
            global_limits: None,
            assets_limits: Vec::new(),
            expires_at: None,
            is_admin,
            created_at: now,
            deleted_at: None,
            ledger: Vec::new(),
        }
    }

    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The ApiKey object. `access_key` is what goes in `accessKey`: the plaintext in a create
    /// response, otherwise the mask (or the plaintext, when the list reveals values).
    pub fn api_json(&self, access_key: &str) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "budget": self.budget,
            "globalLimits": self.global_limits,
            "assetsLimits": self.assets_limits,
            "expiresAt": self.expires_at.map(iso),
            "accessKey": access_key,
            "isAdmin": self.is_admin,
        })
    }

    /// `accessKey` in read responses.
    pub fn listed_access_key(&self) -> &str {
        self.plaintext.as_deref().unwrap_or(&self.masked)
    }

    /// The `usage-limits` array: the global entry first, then one per model with limits or traffic
    /// today. Counts cover the current UTC day only.
    pub fn usage_limits(&self, now: Timestamp) -> Vec<Value> {
        let start = day_start(now);
        let today: Vec<&Traffic> = self
            .ledger
            .iter()
            .filter(|entry| entry.at >= start && entry.at <= now)
            .map(|entry| &entry.traffic)
            .collect();
        let count = |asset: Option<&str>| {
            today
                .iter()
                .filter(|t| asset.is_none_or(|id| t.asset_id.as_deref() == Some(id)))
                .fold((0u64, 0u64), |(r, k), t| (r + t.requests, k + t.tokens))
        };
        let (requests, tokens) = count(None);
        let global = self.global_limits.clone().unwrap_or_default();
        let mut out = vec![json!({
            "requestCount": requests, "requestCountLimit": global.rpd,
            "tokenCount": tokens, "tokenCountLimit": global.tpd,
        })];
        let mut assets: Vec<&str> = self.assets_limits.iter().map(|a| a.asset_id.as_str()).collect();
        for traffic in &today {
            if let Some(id) = traffic.asset_id.as_deref()
                && !assets.contains(&id)
            {
                assets.push(id);
            }
        }
        for asset in assets {
            let (requests, tokens) = count(Some(asset));
            let limits = self
                .assets_limits
                .iter()
                .find(|a| a.asset_id == asset)
                .map(|a| a.limits.clone())
                .unwrap_or_default();
            out.push(json!({
                "assetId": asset,
                "requestCount": requests, "requestCountLimit": limits.rpd,
                "tokenCount": tokens, "tokenCountLimit": limits.tpd,
            }));
        }
        out
    }

    pub fn sim_key(&self, now: Timestamp) -> SimKey {
        SimKey {
            id: self.id.clone(),
            name: self.name.clone(),
            masked: self.masked.clone(),
            budget: self.budget,
            global_limits: self.global_limits.clone(),
            assets_limits: self.assets_limits.clone(),
            expires_at: self.expires_at,
            is_admin: self.is_admin,
            deleted: !self.is_live(),
            expired: self.is_expired(now),
            created_at: self.created_at,
        }
    }
}

/// A key as the test hooks show it: everything but the value, deleted keys included.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimKey {
    pub id: String,
    pub name: String,
    /// First and last four characters of the value.
    pub masked: String,
    pub budget: Option<f64>,
    pub global_limits: Option<Limits>,
    pub assets_limits: Vec<AssetLimit>,
    pub expires_at: Option<Timestamp>,
    pub is_admin: bool,
    pub deleted: bool,
    pub expired: bool,
    pub created_at: Timestamp,
}

/// Everything the simulated team holds.
#[derive(Debug)]
pub(super) struct State {
    /// In creation order, admin keys included.
    pub keys: Vec<KeyRecord>,
    /// Whether read responses carry the plaintext `accessKey` of keys created while this was set.
    pub list_reveals_keys: bool,
    /// The models `GET /sdk/models/{id}` knows.
    pub catalog: Vec<super::catalog::CatalogModel>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            list_reveals_keys: false,
            catalog: super::catalog::builtin(),
        }
    }
}

impl State {
    pub fn live(&self, id: &str) -> Option<&KeyRecord> {
        self.keys.iter().find(|key| key.id == id && key.is_live())
    }

    pub fn live_mut(&mut self, id: &str) -> Option<&mut KeyRecord> {
        self.keys.iter_mut().find(|key| key.id == id && key.is_live())
    }

    /// Whether a live key other than `except` is named `name`.
    pub fn name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.keys
            .iter()
            .any(|key| key.is_live() && key.name == name && Some(key.id.as_str()) != except)
    }

    /// Registers a key by value (kept as a hash); returns its id. A value already known is left as is.
    pub fn add(&mut self, value: &str, name: &str, is_admin: bool, now: Timestamp) -> String {
        let hash = sha256_hex(value);
        if let Some(key) = self.keys.iter().find(|key| key.value_hash == hash) {
            return key.id.clone();
        }
        let key = KeyRecord::new(value, name.to_owned(), is_admin, self.list_reveals_keys, now);
        let id = key.id.clone();
        self.keys.push(key);
        id
    }
}

/// A 24-hex-digit id, the ObjectId shape every aiXplain id has.
fn new_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// The form the SDK matches values against: the first and last four characters.
pub(super) fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

/// 00:00 UTC of the day holding `now`.
fn day_start(now: Timestamp) -> Timestamp {
    now.to_zoned(TimeZone::UTC)
        .date()
        .to_zoned(TimeZone::UTC)
        .map(|zoned| zoned.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// ISO-8601 in UTC, as the SDK's mocks show (`2024-10-07T00:00:00Z`).
pub(super) fn iso(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn masks_keep_the_first_and_last_four_characters() {
        assert_eq!(mask("0123456789abcdef"), "0123...cdef");
        assert_eq!(mask("short"), "*****");
    }

    #[test]
    fn daily_counts_start_again_at_utc_midnight() {
        let mut key = KeyRecord::new("v", "k".into(), false, false, at("2025-01-01T00:00:00Z"));
        let traffic = |tokens, asset: Option<&str>| Traffic {
            requests: 1,
            tokens,
            asset_id: asset.map(str::to_owned),
        };
        key.ledger.push(Entry {
            at: at("2025-01-01T23:00:00Z"),
            traffic: traffic(10, None),
        });
        key.ledger.push(Entry {
            at: at("2025-01-02T01:00:00Z"),
            traffic: traffic(5, Some("m1")),
        });
        let usage = key.usage_limits(at("2025-01-02T02:00:00Z"));
        assert_eq!(usage[0]["requestCount"], 1);
        assert_eq!(usage[0]["tokenCount"], 5);
        assert_eq!(usage[1]["assetId"], "m1");
        assert_eq!(usage[1]["tokenCount"], 5);
        let before = key.usage_limits(at("2025-01-01T23:30:00Z"));
        assert_eq!(before[0]["tokenCount"], 10);
        assert_eq!(before.len(), 1);
    }
}
