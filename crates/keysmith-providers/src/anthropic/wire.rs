//! Anthropic's Admin API shapes (`providers.md` §5) and their mapping onto the provider-neutral
//! types. Unknown fields are ignored and missing optional ones read as `None`.

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::KeyRecord;
use crate::KeySettings;
use crate::KeyUsage;

/// The API key object. It never holds the value, only `partial_key_hint`.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct WireKey {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub partial_key_hint: Option<String>,
    /// `active`, `inactive`, `archived` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub expires_at: Option<Timestamp>,
    /// Deprecated in favour of `scope`, still sent; `null` is the default workspace.
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// `{type: "workspace", workspace_id}` or `{type: "organization"}`.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct Scope {
    #[serde(default)]
    pub workspace_id: Option<String>,
}

impl WireKey {
    /// The key's workspace (`None`: the default workspace).
    pub fn workspace(&self) -> Option<&str> {
        self.workspace_id
            .as_deref()
            .or_else(|| self.scope.as_ref()?.workspace_id.as_deref())
    }

    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("active")
    }

    /// Whether the key can still work or be switched back on: archived and expired keys cannot.
    pub fn is_usable(&self) -> bool {
        matches!(self.status(), "active" | "inactive")
    }

    /// Whether `value` is consistent with the masked hint: the part before `...` starts the value
    /// and the part after ends it. A key without a hint matches nothing.
    pub fn hint_matches(&self, value: &str) -> bool {
        let Some((head, tail)) = self
            .partial_key_hint
            .as_deref()
            .and_then(|hint| hint.split_once("..."))
        else {
            return false;
        };
        // Enough of the value must be visible for a match to mean anything.
        head.len() + tail.len() >= 8
            && value.len() >= head.len() + tail.len()
            && value.starts_with(head)
            && value.ends_with(tail)
    }

    /// Anything but `active` is a key that does not work, which is what `disabled` means to keysmith.
    /// The expiry is the Console's; keysmith can read it but not set it.
    pub fn into_record(self) -> KeyRecord {
        KeyRecord {
            settings: KeySettings {
                name: self.name.clone(),
                disabled: self.status() != "active",
                expires_at: self.expires_at,
                ..Default::default()
            },
            id: self.id,
            name: self.name,
            label: self.partial_key_hint,
            usage: KeyUsage::default(),
        }
    }
}

/// A page of a list: `{data, first_id, last_id, has_more}`.
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub last_id: Option<String>,
}

/// `POST /v1/organizations/api_keys/{id}`: the two things that can change.
#[derive(Debug, Serialize)]
pub(super) struct UpdateRequest<'a> {
    pub name: &'a str,
    pub status: &'static str,
}

impl<'a> UpdateRequest<'a> {
    pub fn new(settings: &'a KeySettings) -> Self {
        Self {
            name: &settings.name,
            status: if settings.disabled { "inactive" } else { "active" },
        }
    }
}

/// A page of a report: `{data: [bucket], has_more, next_page}`.
#[derive(Debug, Deserialize)]
pub(super) struct Report<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<Bucket<T>>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub next_page: Option<String>,
}

/// One time bucket of a report.
#[derive(Debug, Deserialize)]
pub(super) struct Bucket<T> {
    pub starting_at: Timestamp,
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
}

/// One usage report row. Cache creation comes nested (`cache_creation.ephemeral_5m_input_tokens`)
/// in the documented form and flattened in some derived schemas; both are read.
#[derive(Debug, Default, Deserialize)]
pub(super) struct UsageRow {
    #[serde(default)]
    pub uncached_input_tokens: u64,
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
    #[serde(default)]
    pub cache_creation_5m_input_tokens: u64,
    #[serde(default)]
    pub cache_creation_1h_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub api_key_id: Option<String>,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CacheCreation {
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
}

impl UsageRow {
    /// Every token the row counts: input (uncached, cache writes and reads) and output.
    pub fn tokens(&self) -> u64 {
        let nested = self
            .cache_creation
            .as_ref()
            .map_or(0, |c| c.ephemeral_1h_input_tokens + c.ephemeral_5m_input_tokens);
        self.uncached_input_tokens
            + nested
            + self.cache_creation_5m_input_tokens
            + self.cache_creation_1h_input_tokens
            + self.cache_read_input_tokens
            + self.output_tokens
    }
}

/// One cost report row.
#[derive(Debug, Deserialize)]
pub(super) struct CostRow {
    /// A decimal string in cents (`"123.45"` is $1.23); a bare number is tolerated.
    #[serde(deserialize_with = "cents")]
    pub amount: f64,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

impl CostRow {
    /// The amount in USD; `None` for a currency other than USD, which keysmith does not convert.
    pub fn usd(&self) -> Option<f64> {
        match self.currency.as_deref() {
            None | Some("USD") => Some(self.amount / 100.0),
            Some(_) => None,
        }
    }
}

/// `error.message` of Anthropic's error envelope (unsanitized: the transport sanitizes it).
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body.get("error")?.get("message")?.as_str().map(str::to_owned)
}

/// The hint Anthropic shows for `value`: its first 16 characters (`sk-ant-api03-` plus three),
/// `...`, and its last four. Computed locally to label an imported key without another call.
pub(super) fn hint_of(value: &str) -> Option<String> {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 24 {
        return None;
    }
    let head: String = chars[..16].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    Some(format!("{head}...{tail}"))
}

fn cents<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let amount = match Value::deserialize(deserializer)? {
        Value::String(text) => text.trim().parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    amount
        .filter(|a| a.is_finite())
        .ok_or_else(|| serde::de::Error::custom("amount must be a decimal number of cents"))
}

fn lenient_timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(Some(at));
    }
    Ok(text
        .parse::<DateTime>()
        .ok()
        .and_then(|civil| civil.to_zoned(TimeZone::UTC).ok())
        .map(|zoned| zoned.timestamp()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(body: Value) -> WireKey {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_documented_key_object_maps_onto_a_record() {
        let wire = key(json!({"type": "api_key", "id": "apikey_01Rj", "name": "prod",
            "created_at": "2024-10-30T23:58:27.427722Z", "created_by": {"id": "user_01", "type": "user"},
            "partial_key_hint": "sk-ant-api03-R2D...igAA", "status": "inactive",
            "expires_at": "2026-01-01T00:00:00Z", "workspace_id": null,
            "scope": {"type": "workspace", "workspace_id": "wrkspc_01"}, "principal": null}));
        assert_eq!(wire.workspace(), Some("wrkspc_01"));
        assert!(wire.is_usable());
        let record = wire.into_record();
        assert_eq!(record.id, "apikey_01Rj");
        assert_eq!(record.label.as_deref(), Some("sk-ant-api03-R2D...igAA"));
        assert!(record.settings.disabled);
        assert_eq!(
            record.settings.expires_at,
            Some("2026-01-01T00:00:00Z".parse().unwrap())
        );
        let active = key(json!({"id": "a", "status": "active"})).into_record();
        assert!(!active.settings.disabled);
        assert!(!key(json!({"id": "a", "status": "archived"})).is_usable());
    }

    #[test]
    fn hints_match_values_that_start_and_end_like_them() {
        let wire = key(json!({"id": "a", "partial_key_hint": "sk-ant-api03-R2D...igAA"}));
        assert!(wire.hint_matches("sk-ant-api03-R2Dxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-igAA"));
        assert!(!wire.hint_matches("sk-ant-api03-R2Exxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-igAA"));
        assert!(!wire.hint_matches("sk-ant-api03-R2D"));
        assert!(!key(json!({"id": "a"})).hint_matches("anything"));
        assert!(!key(json!({"id": "a", "partial_key_hint": "s...A"})).hint_matches("sAAAA"));
        let value = format!("sk-ant-api03-R2D{}igAA", "q".repeat(80));
        assert_eq!(hint_of(&value).as_deref(), Some("sk-ant-api03-R2D...igAA"));
    }

    #[test]
    fn updates_map_disabled_to_inactive() {
        let mut settings = KeySettings {
            name: "n".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(UpdateRequest::new(&settings)).unwrap(),
            json!({"name": "n", "status": "active"})
        );
        settings.disabled = true;
        assert_eq!(
            serde_json::to_value(UpdateRequest::new(&settings)).unwrap()["status"],
            "inactive"
        );
    }

    #[test]
    fn usage_rows_count_nested_and_flattened_cache_tokens() {
        let nested: UsageRow = serde_json::from_value(json!({"uncached_input_tokens": 10,
            "cache_creation": {"ephemeral_1h_input_tokens": 1, "ephemeral_5m_input_tokens": 2},
            "cache_read_input_tokens": 3, "output_tokens": 4, "server_tool_use": {"web_search_requests": 9},
            "api_key_id": "k", "workspace_id": null, "model": "m", "service_tier": null}))
        .unwrap();
        assert_eq!(nested.tokens(), 20);
        let flat: UsageRow =
            serde_json::from_value(json!({"cache_creation_5m_input_tokens": 5, "output_tokens": 1})).unwrap();
        assert_eq!(flat.tokens(), 6);
    }

    #[test]
    fn cost_amounts_are_cents_in_decimal_strings() {
        let row: CostRow = serde_json::from_value(json!({"amount": "123.45", "currency": "USD"})).unwrap();
        assert!((row.usd().unwrap() - 1.2345).abs() < 1e-12);
        let row: CostRow = serde_json::from_value(json!({"amount": 50, "currency": "EUR"})).unwrap();
        assert_eq!(row.usd(), None);
        assert!(serde_json::from_value::<CostRow>(json!({"amount": "lots"})).is_err());
    }

    #[test]
    fn error_messages_come_from_the_envelope() {
        let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Number of requests has exceeded your rate limit")
        );
        assert_eq!(error_message(b"{}"), None);
    }
}
