//! aiXplain's JSON shapes (`providers.md` §4, taken from its SDKs) and their mapping onto the
//! provider-neutral types. Responses may lack `budget`, `globalLimits`, `assetsLimits` and
//! `expiresAt` (the SDK checks for each), so all of them are optional here.

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{KeyRecord, KeySettings, KeyUsage};
use keysmith_api::{Limits, ModelLimit, ModelUsage};

/// `rpm`, `rpd`, `tpm`, `tpd`: unset dimensions are left out of a request, as the v2 SDK does, so
/// that "no limit" is never sent as a limit of 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireLimits {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "count")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "count")]
    pub tpd: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "count")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "count")]
    pub rpd: Option<u64>,
    /// `input`, `output` or `total`. keysmith's token limits count every token, so it sends `total`
    /// whenever a token limit is set; on reading it is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

impl WireLimits {
    fn new(rpm: Option<u64>, rpd: Option<u64>, tpm: Option<u64>, tpd: Option<u64>) -> Self {
        Self {
            tpm,
            tpd,
            rpm,
            rpd,
            token_type: (tpm.is_some() || tpd.is_some()).then(|| "total".to_owned()),
        }
    }

    fn is_empty(&self) -> bool {
        self.tpm.is_none() && self.tpd.is_none() && self.rpm.is_none() && self.rpd.is_none()
    }
}

/// Limits on one model. `assetId` is aiXplain's model id (the SDK resolves model paths to ids first;
/// keysmith sends `spec.modelLimits[].model` as given).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireAssetLimit {
    pub asset_id: String,
    #[serde(flatten)]
    pub limits: WireLimits,
}

/// ApiKeyPayload, the body of `POST` and `PUT`. PUT replaces the whole key, so every field is sent
/// (`null` included) and a limit left out of the spec is removed at aiXplain.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Payload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub name: &'a str,
    pub budget: Option<f64>,
    pub global_limits: Option<WireLimits>,
    pub assets_limits: Vec<WireAssetLimit>,
    /// ISO-8601 in UTC with a `Z`.
    pub expires_at: Option<String>,
}

impl<'a> Payload<'a> {
    /// The payload for `settings`; `id` is set for an update.
    pub fn new(settings: &'a KeySettings, id: Option<&'a str>) -> Self {
        let limits = &settings.limits;
        let global = WireLimits::new(
            limits.requests_per_minute,
            limits.requests_per_day,
            limits.tokens_per_minute,
            limits.tokens_per_day,
        );
        Self {
            id,
            name: &settings.name,
            budget: settings.limit_usd,
            global_limits: (!global.is_empty()).then_some(global),
            assets_limits: settings
                .model_limits
                .iter()
                .map(|m| WireAssetLimit {
                    asset_id: m.model.clone(),
                    limits: WireLimits::new(
                        m.requests_per_minute,
                        m.requests_per_day,
                        m.tokens_per_minute,
                        m.tokens_per_day,
                    ),
                })
                .collect(),
            expires_at: settings.expires_at.map(|at| at.to_string()),
        }
    }
}

/// The ApiKey object of every key response. No `Debug`: `accessKey` may be the plaintext value
/// (always in a create response; in reads too, if aiXplain does not mask them).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireKey {
    #[serde(deserialize_with = "opaque_id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub budget: Option<f64>,
    #[serde(default)]
    pub global_limits: Option<WireLimits>,
    #[serde(default)]
    pub assets_limits: Option<Vec<WireAssetLimit>>,
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub is_admin: Option<bool>,
}

impl WireKey {
    /// The record, holding only a mask of `accessKey` whatever the provider sent. aiXplain keys have
    /// no disabled flag, no budget window and no BYOK spend, so those read as off.
    pub fn into_record(self) -> KeyRecord {
        let limits = self.global_limits.unwrap_or_default();
        let model_limits = self
            .assets_limits
            .unwrap_or_default()
            .into_iter()
            .map(|asset| ModelLimit {
                model: asset.asset_id,
                requests_per_minute: asset.limits.rpm,
                requests_per_day: asset.limits.rpd,
                tokens_per_minute: asset.limits.tpm,
                tokens_per_day: asset.limits.tpd,
            })
            .collect();
        KeyRecord {
            id: self.id,
            label: self.access_key.as_deref().and_then(mask),
            settings: KeySettings {
                name: self.name.clone(),
                limit_usd: self.budget,
                expires_at: self.expires_at,
                limits: Limits {
                    requests_per_minute: limits.rpm,
                    requests_per_day: limits.rpd,
                    tokens_per_minute: limits.tpm,
                    tokens_per_day: limits.tpd,
                },
                model_limits,
                ..Default::default()
            },
            name: self.name,
            usage: KeyUsage::default(),
        }
    }

    /// `accessKey` when it is a whole value rather than a mask. Whether aiXplain's list masks values
    /// is not documented (the SDK handles both), so callers still check the value works.
    pub fn full_access_key(&self) -> Option<&str> {
        self.access_key
            .as_deref()
            .filter(|value| value.len() > 8 && !value.contains("...") && !value.contains('*'))
    }

    /// Whether this is a team (admin) key.
    pub fn is_admin(&self) -> bool {
        self.is_admin.unwrap_or(false)
    }
}

/// A model as `GET /sdk/models/{id}` describes it; only its id matters here.
#[derive(Deserialize, Debug)]
pub(super) struct CatalogModel {
    pub id: String,
}

/// One entry of `usage-limits`: daily counts, for the key as a whole (no `assetId`) or one model.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageLimit {
    #[serde(default, deserialize_with = "count")]
    pub request_count: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub token_count: Option<u64>,
    #[serde(default)]
    pub asset_id: Option<String>,
}

/// Today's counts: the global entry for the key, the others per model. aiXplain reports no spend
/// here, so the USD figures stay empty.
pub(super) fn usage(entries: Vec<UsageLimit>) -> KeyUsage {
    let mut usage = KeyUsage::default();
    let mut global_seen = false;
    for entry in entries {
        match entry.asset_id {
            Some(model) => usage.models.push(ModelUsage {
                model,
                usd: None,
                requests: entry.request_count,
                tokens: entry.token_count,
            }),
            None if !global_seen => {
                global_seen = true;
                usage.requests_today = entry.request_count;
                usage.tokens_today = entry.token_count;
            }
            None => {}
        }
    }
    usage
}

/// The SDK's masked form, first and last four characters; nothing for values too short to mask.
/// Applied to values that are already masked, it gives the same mask back.
pub(super) fn mask(value: &str) -> Option<String> {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return None;
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    Some(format!("{head}...{tail}"))
}

/// The message of a NestJS error body: `message` (a string, or a list of validation messages),
/// else `error`. Unsanitized: the transport sanitizes it.
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    match body.get("message") {
        Some(Value::String(message)) => Some(message.clone()),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => body.get("error").and_then(Value::as_str).map(str::to_owned),
    }
}

/// Ids are strings in the SDK's tests and ints in one docstring: either is kept as text.
fn opaque_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(id) if !id.is_empty() => Ok(id),
        Value::Number(id) => Ok(id.to_string()),
        _ => Err(serde::de::Error::custom(
            "id must be a non-empty string or a number",
        )),
    }
}

/// A non-negative count; a whole float (`100.0`) is accepted, anything else reads as unset rather
/// than failing the whole response.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        }),
        _ => None,
    })
}

/// `expiresAt` as ISO-8601; one without an offset is read as UTC, one that does not parse as unset.
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

    #[test]
    fn the_sdk_mock_key_maps_onto_a_record() {
        let body = json!({"id": "key-id", "name": "tenant-a", "budget": 1000,
            "globalLimits": {"tpm": 100, "tpd": 1000, "rpm": 100, "rpd": 1000, "tokenType": null},
            "assetsLimits": [{"assetId": "m1", "tpm": 100, "tpd": 1000, "rpm": 100, "rpd": 1000, "tokenType": "total"}],
            "expiresAt": "2024-10-07T00:00:00Z", "accessKey": "0123456789abcdef", "isAdmin": false});
        let key: WireKey = serde_json::from_value(body).unwrap();
        assert_eq!(key.full_access_key(), Some("0123456789abcdef"));
        let record = key.into_record();
        assert_eq!(record.id, "key-id");
        assert_eq!(record.label.as_deref(), Some("0123...cdef"));
        assert_eq!(record.settings.limit_usd, Some(1000.0));
        assert_eq!(record.settings.limits.requests_per_day, Some(1000));
        assert_eq!(record.settings.limits.tokens_per_minute, Some(100));
        assert_eq!(record.settings.model_limits[0].model, "m1");
        assert_eq!(
            record.settings.expires_at,
            Some("2024-10-07T00:00:00Z".parse().unwrap())
        );
        assert!(!record.settings.disabled);
    }

    #[test]
    fn a_minimal_key_with_a_numeric_id_and_a_masked_value_reads_cleanly() {
        let key: WireKey = serde_json::from_value(
            json!({"id": 42, "name": "n", "accessKey": "0123...cdef", "isAdmin": true}),
        )
        .unwrap();
        assert!(key.is_admin());
        assert_eq!(key.full_access_key(), None);
        let record = key.into_record();
        assert_eq!(record.id, "42");
        assert_eq!(record.label.as_deref(), Some("0123...cdef"));
        assert_eq!(record.settings.limits, Limits::default());
        assert!(record.settings.model_limits.is_empty());
    }

    #[test]
    fn payloads_leave_unset_dimensions_out_and_send_null_for_absent_limits() {
        let settings = KeySettings {
            name: "n [ks:u/1]".into(),
            limit_usd: Some(5.0),
            expires_at: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            limits: Limits {
                requests_per_minute: Some(10),
                ..Default::default()
            },
            model_limits: vec![ModelLimit {
                model: "m1".into(),
                requests_per_minute: None,
                requests_per_day: None,
                tokens_per_minute: Some(500),
                tokens_per_day: None,
            }],
            ..Default::default()
        };
        let body = serde_json::to_value(Payload::new(&settings, None)).unwrap();
        assert_eq!(
            body,
            json!({"name": "n [ks:u/1]", "budget": 5.0, "globalLimits": {"rpm": 10},
                   "assetsLimits": [{"assetId": "m1", "tpm": 500, "tokenType": "total"}],
                   "expiresAt": "2030-01-01T00:00:00Z"})
        );
        let bare = KeySettings {
            name: "n".into(),
            ..Default::default()
        };
        let body = serde_json::to_value(Payload::new(&bare, Some("id1"))).unwrap();
        assert_eq!(
            body,
            json!({"id": "id1", "name": "n", "budget": null, "globalLimits": null, "assetsLimits": [], "expiresAt": null})
        );
    }

    #[test]
    fn usage_limits_split_into_today_and_per_model() {
        let entries: Vec<UsageLimit> = serde_json::from_value(json!([
            {"requestCount": 3, "requestCountLimit": 100, "tokenCount": 350, "tokenCountLimit": null},
            {"assetId": "m1", "requestCount": 2, "requestCountLimit": 10, "tokenCount": 300, "tokenCountLimit": null},
        ]))
        .unwrap();
        let usage = usage(entries);
        assert_eq!((usage.requests_today, usage.tokens_today), (Some(3), Some(350)));
        assert_eq!(usage.models.len(), 1);
        assert_eq!(usage.models[0].requests, Some(2));
        assert_eq!(usage.total_usd, None);
    }

    #[test]
    fn error_messages_come_from_message_or_error() {
        assert_eq!(
            error_message(br#"{"statusCode":422,"message":"name taken","error":"Unprocessable Entity"}"#)
                .as_deref(),
            Some("name taken")
        );
        assert_eq!(
            error_message(br#"{"statusCode":400,"message":["a is bad","b is bad"]}"#).as_deref(),
            Some("a is bad; b is bad")
        );
        assert_eq!(
            error_message(br#"{"error":"Forbidden"}"#).as_deref(),
            Some("Forbidden")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn counts_tolerate_whole_floats_and_ignore_garbage() {
        let limits: WireLimits = serde_json::from_value(json!({"rpm": 5.0, "tpm": -1, "rpd": "x"})).unwrap();
        assert_eq!((limits.rpm, limits.tpm, limits.rpd), (Some(5), None, None));
    }
}
