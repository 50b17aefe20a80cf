//! The simulated Cloud project: its API keys (soft-deleted ones included until they are purged), the
//! long-running operations that report changes, the service accounts the token endpoint trusts and
//! the access tokens it issued.
//!
//! Key values are kept in plaintext because the API hands them out again (`getKeyString`); tokens and
//! refresh tokens only as SHA-256.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use crate::sha256_hex;

/// How long a deleted key can be undeleted before it is purged.
pub const PURGE_AFTER: SignedDuration = SignedDuration::from_hours(30 * 24);

/// The `@type` of a key in an operation's `response`.
pub const KEY_TYPE: &str = "type.googleapis.com/google.api.apikeys.v2.Key";

/// A key as the state holds it.
#[derive(Clone, Debug)]
pub(super) struct KeyEntry {
    /// The last part of the resource name.
    pub key_id: String,
    pub uid: String,
    pub display_name: String,
    pub key_string: String,
    pub annotations: BTreeMap<String, String>,
    /// The `restrictions` object as sent (validated), or `None`.
    pub restrictions: Option<Value>,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
    pub delete_time: Option<Timestamp>,
    pub etag: String,
}

impl KeyEntry {
    pub fn new(key_id: String, key_string: String, now: Timestamp) -> Self {
        Self {
            key_id,
            uid: uuid4(),
            display_name: String::new(),
            key_string,
            annotations: BTreeMap::new(),
            restrictions: None,
            create_time: now,
            update_time: now,
            delete_time: None,
            etag: new_etag(),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.delete_time.is_some()
    }

    /// Records a change: new `updateTime` and a new `etag`.
    pub fn touch(&mut self, now: Timestamp) {
        self.update_time = now;
        self.etag = new_etag();
    }

    /// Whether the key may call `service` (no `apiTargets` allows every service).
    pub fn allows(&self, service: &str) -> bool {
        let targets = self
            .restrictions
            .as_ref()
            .and_then(|r| r.get("apiTargets"))
            .and_then(Value::as_array);
        match targets {
            None => true,
            Some(targets) if targets.is_empty() => true,
            Some(targets) => targets
                .iter()
                .any(|t| t.get("service").and_then(Value::as_str) == Some(service)),
        }
    }

    /// The `Key` resource under project number `project`; `keyString` only when asked.
    pub fn api_json(&self, project: &str, with_key_string: bool) -> Value {
        let mut key = json!({
            "name": format!("projects/{project}/locations/global/keys/{}", self.key_id),
            "uid": self.uid,
            "displayName": self.display_name,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
            "etag": self.etag,
        });
        if !self.annotations.is_empty() {
            key["annotations"] = json!(self.annotations);
        }
        if let Some(restrictions) = &self.restrictions {
            key["restrictions"] = restrictions.clone();
        }
        if let Some(deleted) = self.delete_time {
            key["deleteTime"] = json!(rfc3339(deleted));
        }
        if with_key_string {
            key["keyString"] = json!(self.key_string);
        }
        key
    }

    pub fn sim_key(&self, project: &str) -> SimKey {
        SimKey {
            name: format!("projects/{project}/locations/global/keys/{}", self.key_id),
            key_id: self.key_id.clone(),
            uid: self.uid.clone(),
            display_name: self.display_name.clone(),
            annotations: self.annotations.clone(),
            restrictions: self.restrictions.clone(),
            create_time: self.create_time,
            update_time: self.update_time,
            delete_time: self.delete_time,
            etag: self.etag.clone(),
        }
    }
}

/// A key as the test hooks show it: everything but the value, deleted keys included.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimKey {
    pub name: String,
    pub key_id: String,
    pub uid: String,
    pub display_name: String,
    pub annotations: BTreeMap<String, String>,
    pub restrictions: Option<Value>,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
    pub delete_time: Option<Timestamp>,
    pub etag: String,
}

impl SimKey {
    pub fn is_deleted(&self) -> bool {
        self.delete_time.is_some()
    }
}

/// An operation: done once it has been polled `polls_left` more times.
#[derive(Clone, Debug)]
pub(super) struct OperationEntry {
    pub polls_left: u32,
    /// The finished operation's `response` (a create's carries the key value).
    pub response: Value,
}

/// A service account the token endpoint trusts.
#[derive(Clone, Debug)]
pub(super) struct ServiceAccount {
    pub email: String,
    /// PKCS#1 `RSAPublicKey`, DER.
    pub public_key_der: Vec<u8>,
    /// Whether it may still get tokens (a disabled or deleted account may not).
    pub enabled: bool,
}

/// An issued access token, by the SHA-256 of its value.
#[derive(Clone, Debug)]
pub(super) struct Token {
    pub hash: String,
    pub expires_at: Timestamp,
    /// Whether the token may change things (the `cloud-platform` scope, not the read-only one).
    pub can_write: bool,
}

/// A user credential for the `refresh_token` grant, kept as hashes.
#[derive(Clone, Debug)]
pub(super) struct RefreshCredential {
    pub client_id: String,
    pub client_secret_hash: String,
    pub refresh_token_hash: String,
}

/// Everything the simulated project holds.
#[derive(Debug)]
pub(super) struct State {
    /// The project ID; paths may name it or the number.
    pub project_id: String,
    /// The project number, which resource names use.
    pub project_number: String,
    /// In creation order.
    pub keys: Vec<KeyEntry>,
    /// SHA-256 of the values of purged keys: `lookupKey` still names their project.
    pub purged: Vec<String>,
    pub operations: BTreeMap<String, OperationEntry>,
    /// Polls an operation needs before it reports done (0: done in the first answer).
    pub polls_until_done: u32,
    pub accounts: Vec<ServiceAccount>,
    pub refresh_credentials: Vec<RefreshCredential>,
    pub tokens: Vec<Token>,
    /// `expires_in` of new tokens.
    pub token_lifetime_seconds: i64,
}

impl State {
    /// Forgets keys deleted more than [`PURGE_AFTER`] ago and tokens long expired.
    pub fn purge(&mut self, now: Timestamp) {
        let (purged, kept): (Vec<KeyEntry>, Vec<KeyEntry>) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|key| key.delete_time.is_some_and(|at| at + PURGE_AFTER <= now));
        self.keys = kept;
        self.purged
            .extend(purged.iter().map(|key| sha256_hex(&key.key_string)));
        self.tokens.retain(|token| token.expires_at > now);
    }

    /// Whether `project` (from a path) names this project, by ID or number.
    pub fn is_project(&self, project: &str) -> bool {
        project == self.project_id || project == self.project_number
    }

    pub fn key(&self, key_id: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|key| key.key_id == key_id)
    }

    pub fn key_mut(&mut self, key_id: &str) -> Option<&mut KeyEntry> {
        self.keys.iter_mut().find(|key| key.key_id == key_id)
    }

    /// Starts an operation that finishes with `response`; returns its JSON as first answered.
    pub fn operation(&mut self, response: Value) -> Value {
        let name = format!("operations/akmf.p7-{}", hex::encode(rand::random::<[u8; 12]>()));
        let entry = OperationEntry {
            polls_left: self.polls_until_done,
            response,
        };
        let json = operation_json(&name, &entry);
        self.operations.insert(name, entry);
        json
    }
}

/// An operation's JSON: `done` with its `response` once no polls are left.
pub(super) fn operation_json(name: &str, entry: &OperationEntry) -> Value {
    if entry.polls_left == 0 {
        json!({ "name": name, "done": true, "response": entry.response })
    } else {
        json!({ "name": name, "metadata": {"@type": "type.googleapis.com/google.protobuf.Empty"} })
    }
}

/// A fresh key value in Google's format: `AIza` and 35 URL-safe characters.
pub(super) fn new_key_string() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let tail: String = rand::random::<[u8; 35]>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("AIzaSy{}", &tail[2..])
}

fn new_etag() -> String {
    format!("W/\"{}\"", hex::encode(rand::random::<[u8; 8]>()))
}

/// A random UUID4 in its textual form.
pub(super) fn uuid4() -> String {
    let mut bytes = rand::random::<[u8; 16]>();
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

/// Google's timestamp format: RFC 3339 in UTC with fractional seconds.
pub(super) fn rfc3339(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_look_like_google_api_keys() {
        let value = new_key_string();
        assert_eq!(value.len(), 39);
        assert!(value.starts_with("AIzaSy"));
        assert!(
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(value, new_key_string());
    }

    #[test]
    fn uids_are_version_four_uuids() {
        let uid = uuid4();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert!(matches!(&uid[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn restrictions_without_api_targets_allow_every_service() {
        let mut key = KeyEntry::new("k".into(), new_key_string(), Timestamp::UNIX_EPOCH);
        assert!(key.allows("generativelanguage.googleapis.com"));
        key.restrictions = Some(json!({"apiTargets": [{"service": "aiplatform.googleapis.com"}]}));
        assert!(key.allows("aiplatform.googleapis.com"));
        assert!(!key.allows("generativelanguage.googleapis.com"));
    }
}
