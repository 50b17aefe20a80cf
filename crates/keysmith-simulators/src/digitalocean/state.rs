//! The simulated DigitalOcean account: API tokens, model API keys, and the per-token request window
//! behind the `ratelimit-*` headers.
//!
//! Key values are never kept: a key is recognised by the SHA-256 of the value presented to the
//! inference service, and regenerating it replaces that digest, so the old value stops working.

use std::collections::{HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use crate::sha256_hex;

/// Requests per token per rolling hour (DigitalOcean's documented limit).
pub const HOURLY_LIMIT: u64 = 5000;

/// The rolling window of [`HOURLY_LIMIT`].
const WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// The `created_by` of keys in this account (a uint64 as a string, as DigitalOcean sends it).
pub const CREATED_BY: &str = "12345";

/// A model API key as the state holds it.
#[derive(Clone, Debug)]
pub(super) struct ModelKey {
    pub uuid: String,
    pub name: String,
    /// SHA-256 of the current value.
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    /// How many times the value was regenerated.
    pub regenerations: u32,
}

impl ModelKey {
    pub fn new(value: &str, name: String, now: Timestamp) -> Self {
        Self {
            uuid: new_uuid(),
            name,
            secret_hash: sha256_hex(value),
            created_at: whole_seconds(now),
            deleted_at: None,
            regenerations: 0,
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// `ModelAPIKeyInfo` without `secret_key`; create and regenerate add it to their answer.
    pub fn api_json(&self) -> Value {
        json!({
            "uuid": self.uuid,
            "name": self.name,
            "created_at": iso(self.created_at),
            "created_by": CREATED_BY,
            "deleted_at": self.deleted_at.map(iso),
        })
    }

    pub fn sim_key(&self) -> SimModelKey {
        SimModelKey {
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            deleted_at: self.deleted_at,
            deleted: self.is_deleted(),
            regenerations: self.regenerations,
        }
    }
}

/// A model key as the test hooks show it: everything but the value, deleted keys included.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimModelKey {
    pub uuid: String,
    pub name: String,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub deleted: bool,
    pub regenerations: u32,
}

/// Everything the simulated account holds.
#[derive(Debug, Default)]
pub(super) struct State {
    /// SHA-256 of each API token the management API accepts.
    pub tokens: Vec<String>,
    /// In creation order, which is also list order.
    pub keys: Vec<ModelKey>,
    /// Answer `POST .../api_keys` as DigitalOcean did before June 2026 instead of 410.
    pub legacy_create: bool,
    /// Arrival times of the requests each credential made in the last hour.
    pub windows: HashMap<Option<String>, VecDeque<Timestamp>>,
}

impl State {
    pub fn key(&self, uuid: &str) -> Option<&ModelKey> {
        self.keys.iter().find(|key| key.uuid == uuid)
    }

    /// A key that has not been deleted.
    pub fn live_key_mut(&mut self, uuid: &str) -> Option<&mut ModelKey> {
        self.keys
            .iter_mut()
            .find(|key| key.uuid == uuid && !key.is_deleted())
    }

    pub fn is_token(&self, token: &str) -> bool {
        self.tokens.contains(&sha256_hex(token))
    }

    /// The live key whose value is `value`.
    pub fn key_by_value(&self, value: &str) -> Option<&ModelKey> {
        let hash = sha256_hex(value);
        self.keys
            .iter()
            .find(|key| key.secret_hash == hash && !key.is_deleted())
    }

    /// Counts a request from `credential` at `now` and returns the `ratelimit-*` figures after it.
    pub fn count_request(&mut self, credential: Option<String>, now: Timestamp) -> RateFigures {
        let window = self.windows.entry(credential).or_default();
        while window.front().is_some_and(|at| *at + WINDOW <= now) {
            window.pop_front();
        }
        window.push_back(now);
        let used = window.len() as u64;
        let oldest = window.front().copied().unwrap_or(now);
        RateFigures {
            limit: HOURLY_LIMIT,
            remaining: HOURLY_LIMIT.saturating_sub(used),
            reset: (oldest + WINDOW).as_second(),
        }
    }
}

/// The values of `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset` (unix seconds at which
/// the oldest counted request leaves the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RateFigures {
    pub limit: u64,
    pub remaining: u64,
    pub reset: i64,
}

/// A random version-4 UUID in its text form.
fn new_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A fresh model key value. DigitalOcean's format is not documented; `sk-do-` and 64 hex digits is
/// this simulator's choice.
pub(super) fn new_key_value() -> String {
    format!("sk-do-{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// ISO-8601 in UTC with a `Z`, as DigitalOcean renders `date-time` fields.
pub(super) fn iso(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_canonical_shape() {
        let uuid = new_uuid();
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert_eq!(&uuid[14..15], "4");
        assert_ne!(uuid, new_uuid());
    }

    #[test]
    fn the_request_window_counts_the_last_hour_per_credential() {
        let mut state = State::default();
        let start: Timestamp = "2026-07-01T10:00:00Z".parse().unwrap();
        let a = Some("a".to_owned());
        let first = state.count_request(a.clone(), start);
        assert_eq!(first.remaining, HOURLY_LIMIT - 1);
        assert_eq!(first.reset, (start + WINDOW).as_second());
        let later = start + SignedDuration::from_mins(30);
        assert_eq!(state.count_request(a.clone(), later).remaining, HOURLY_LIMIT - 2);
        assert_eq!(state.count_request(None, later).remaining, HOURLY_LIMIT - 1);
        // The first request leaves the window an hour after it arrived.
        let after = start + SignedDuration::from_mins(61);
        let figures = state.count_request(a, after);
        assert_eq!(figures.remaining, HOURLY_LIMIT - 2);
        assert_eq!(figures.reset, (later + WINDOW).as_second());
    }
}
