//! The simulated Anthropic organisation: admin keys, Console-made API keys, workspaces, and the
//! usage and cost ledgers the reports are summed from (timestamped, so buckets follow the clock).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sha256_hex;

/// An API key's status. `expired` is only ever set by the server, when `expires_at` passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Inactive,
    Archived,
    Expired,
}

impl KeyStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            "archived" => Some(Self::Archived),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// The user every Console-made key is attributed to.
pub const CONSOLE_USER: &str = "user_01WCz1FkmYMm4gnmykNKUu3Q";

#[derive(Clone, Debug)]
pub(super) struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub value_hash: String,
    pub hint: String,
    pub status: KeyStatus,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// `None`: the default workspace.
    pub workspace_id: Option<String>,
}

impl ApiKeyRecord {
    /// The status as the API shows it: an active or inactive key past its expiry reads `expired`.
    pub fn status(&self, now: Timestamp) -> KeyStatus {
        match self.status {
            KeyStatus::Active | KeyStatus::Inactive if self.expires_at.is_some_and(|at| at <= now) => {
                KeyStatus::Expired
            }
            status => status,
        }
    }

    pub fn api_json(&self, now: Timestamp) -> Value {
        let scope = match &self.workspace_id {
            Some(id) => json!({"type": "workspace", "workspace_id": id}),
            None => json!({"type": "organization"}),
        };
        json!({
            "type": "api_key",
            "id": self.id,
            "name": self.name,
            "created_at": rfc3339(self.created_at),
            "created_by": {"id": CONSOLE_USER, "type": "user"},
            "partial_key_hint": self.hint,
            "status": self.status(now),
            "expires_at": self.expires_at.map(rfc3339),
            "workspace_id": self.workspace_id,
            "scope": scope,
            "principal": {"id": CONSOLE_USER, "type": "user"},
        })
    }

    pub fn sim_key(&self, now: Timestamp) -> SimKey {
        SimKey {
            id: self.id.clone(),
            name: self.name.clone(),
            partial_key_hint: self.hint.clone(),
            status: self.status(now),
            expires_at: self.expires_at,
            workspace_id: self.workspace_id.clone(),
            created_at: self.created_at,
        }
    }
}

/// A key as the test hooks show it: never the value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimKey {
    pub id: String,
    pub name: String,
    pub partial_key_hint: String,
    pub status: KeyStatus,
    pub expires_at: Option<Timestamp>,
    pub workspace_id: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub(super) struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub archived_at: Option<Timestamp>,
}

impl Workspace {
    pub fn api_json(&self) -> Value {
        json!({
            "type": "workspace",
            "id": self.id,
            "name": self.name,
            "created_at": rfc3339(self.created_at),
            "archived_at": self.archived_at.map(rfc3339),
            "display_color": "#6C5BB9",
        })
    }
}

/// Messages usage charged to a key (or, with no key, made in the Console), as the `/_sim/usage`
/// hook accepts it. `costCents`, when given, also books that cost in the key's workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessagesUsage {
    pub api_key_id: Option<String>,
    /// Only read when `api_key_id` is absent; a key's usage lands in the key's workspace.
    pub workspace_id: Option<String>,
    pub model: String,
    pub uncached_input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_5m_input_tokens: u64,
    pub cache_creation_1h_input_tokens: u64,
    pub web_search_requests: u64,
    pub cost_cents: Option<f64>,
}

impl MessagesUsage {
    pub fn tokens(&self) -> u64 {
        self.uncached_input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_5m_input_tokens
            + self.cache_creation_1h_input_tokens
    }
}

/// A cost line, as the `/_sim/cost` hook accepts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostLine {
    #[serde(default)]
    pub workspace_id: Option<String>,
    pub amount_cents: f64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "tokens")]
    pub cost_type: String,
    #[serde(default)]
    pub token_type: Option<String>,
}

fn tokens() -> String {
    "tokens".into()
}

#[derive(Clone, Debug)]
pub(super) struct Dated<T> {
    pub at: Timestamp,
    pub item: T,
}

/// Everything the simulated organisation holds.
#[derive(Debug, Default)]
pub(super) struct State {
    pub admin_hashes: Vec<String>,
    /// In creation order; lists show them newest first.
    pub keys: Vec<ApiKeyRecord>,
    pub workspaces: Vec<Workspace>,
    pub usage: Vec<Dated<MessagesUsage>>,
    pub costs: Vec<Dated<CostLine>>,
}

impl State {
    pub fn key(&self, id: &str) -> Option<&ApiKeyRecord> {
        self.keys.iter().find(|key| key.id == id)
    }

    pub fn key_mut(&mut self, id: &str) -> Option<&mut ApiKeyRecord> {
        self.keys.iter_mut().find(|key| key.id == id)
    }

    pub fn workspace(&self, id: &str) -> Option<&Workspace> {
        self.workspaces.iter().find(|ws| ws.id == id)
    }

    /// Adds a key made "in the Console"; returns its id and its value (the only time it is shown).
    pub fn add_key(&mut self, name: &str, workspace_id: Option<String>, now: Timestamp) -> (String, String) {
        let value = new_key_value();
        let id = self.add_key_with_value(name, workspace_id, &value, now);
        (id, value)
    }

    /// Adds a key with a given value; returns its id.
    pub fn add_key_with_value(
        &mut self,
        name: &str,
        workspace_id: Option<String>,
        value: &str,
        now: Timestamp,
    ) -> String {
        let key = ApiKeyRecord {
            id: prefixed_id("apikey_01"),
            name: name.to_owned(),
            value_hash: sha256_hex(value),
            hint: hint(value),
            status: KeyStatus::Active,
            created_at: now,
            expires_at: None,
            workspace_id,
        };
        let id = key.id.clone();
        self.keys.push(key);
        id
    }

    pub fn add_workspace(&mut self, name: &str, now: Timestamp) -> String {
        let id = prefixed_id("wrkspc_01");
        self.workspaces.push(Workspace {
            id: id.clone(),
            name: name.to_owned(),
            created_at: now,
            archived_at: None,
        });
        id
    }
}

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// `prefix` and 22 base58 characters, the shape of Anthropic's ids (`apikey_01Rj2N8SVvo6BePZj99NhmiT`).
fn prefixed_id(prefix: &str) -> String {
    let tail: String = (0..22)
        .map(|_| char::from(BASE58[rand::random_range(0..BASE58.len())]))
        .collect();
    format!("{prefix}{tail}")
}

/// `sk-ant-api03-`, 93 URL-safe characters and `AA`, the shape of a Console key.
fn new_key_value() -> String {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let body: String = (0..93)
        .map(|_| char::from(URL_SAFE[rand::random_range(0..URL_SAFE.len())]))
        .collect();
    format!("sk-ant-api03-{body}AA")
}

/// `partial_key_hint`: the prefix with three more characters, `...`, and the last four
/// (`sk-ant-api03-R2D...igAA`).
pub(super) fn hint(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 24 {
        return "...".into();
    }
    let head: String = chars[..16].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

/// RFC 3339 with microseconds, as Anthropic writes timestamps.
pub(super) fn rfc3339(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_keep_the_prefix_three_characters_and_the_last_four() {
        let value = format!("sk-ant-api03-R2D{}igAA", "x".repeat(80));
        assert_eq!(hint(&value), "sk-ant-api03-R2D...igAA");
        assert_eq!(hint("short"), "...");
    }

    #[test]
    fn ids_and_values_have_anthropics_shapes() {
        let mut state = State::default();
        let (id, value) = state.add_key("k", None, Timestamp::UNIX_EPOCH);
        assert!(id.starts_with("apikey_01") && id.len() == 31);
        assert!(value.starts_with("sk-ant-api03-") && value.ends_with("AA"));
        assert_eq!(state.key(&id).unwrap().value_hash, sha256_hex(&value));
        assert!(
            state
                .add_workspace("w", Timestamp::UNIX_EPOCH)
                .starts_with("wrkspc_01")
        );
    }

    #[test]
    fn a_key_past_its_expiry_reads_expired_unless_archived() {
        let mut state = State::default();
        let (id, _) = state.add_key("k", None, Timestamp::UNIX_EPOCH);
        let key = state.key_mut(&id).unwrap();
        key.expires_at = Some(Timestamp::from_second(10).unwrap());
        assert_eq!(key.status(Timestamp::from_second(5).unwrap()), KeyStatus::Active);
        assert_eq!(
            key.status(Timestamp::from_second(10).unwrap()),
            KeyStatus::Expired
        );
        key.status = KeyStatus::Archived;
        assert_eq!(
            key.status(Timestamp::from_second(10).unwrap()),
            KeyStatus::Archived
        );
    }

    #[test]
    fn timestamps_carry_microseconds() {
        let at: Timestamp = "2024-10-30T23:58:27.427722Z".parse().unwrap();
        assert_eq!(rfc3339(at), "2024-10-30T23:58:27.427722Z");
        assert_eq!(rfc3339(Timestamp::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }
}
