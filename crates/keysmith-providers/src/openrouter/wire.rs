//! OpenRouter's JSON shapes (`providers.md` §1) and their mapping onto the provider-neutral types.
//! Unknown fields are ignored and missing optional ones read as `None`, so additions upstream do not
//! break keysmith.

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{AccountInfo, ImportedKeyInfo, KeyRecord, KeySettings, KeyUsage};
use keysmith_api::BudgetReset;

/// `limit_reset` on the wire; `null` (no reset) is the absence of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum WireReset {
    Daily,
    Weekly,
    Monthly,
}

impl WireReset {
    /// `Never` and "no reset" are both `null` at OpenRouter.
    pub fn from_budget(reset: Option<BudgetReset>) -> Option<Self> {
        match reset? {
            BudgetReset::Daily => Some(Self::Daily),
            BudgetReset::Weekly => Some(Self::Weekly),
            BudgetReset::Monthly => Some(Self::Monthly),
            BudgetReset::Never => None,
        }
    }

    pub fn to_budget(self) -> BudgetReset {
        match self {
            Self::Daily => BudgetReset::Daily,
            Self::Weekly => BudgetReset::Weekly,
            Self::Monthly => BudgetReset::Monthly,
        }
    }
}

/// `POST /keys` body. Every nullable field is sent, `null` included, so the request states the whole
/// intent rather than leaning on provider defaults.
#[derive(Debug, Serialize)]
pub(super) struct CreateRequest<'a> {
    pub name: &'a str,
    pub limit: Option<f64>,
    pub limit_reset: Option<WireReset>,
    pub include_byok_in_limit: bool,
    /// UTC, as OpenRouter requires; jiff renders timestamps with a `Z` suffix.
    pub expires_at: Option<Timestamp>,
}

impl<'a> CreateRequest<'a> {
    pub fn new(settings: &'a KeySettings) -> Self {
        Self {
            name: &settings.name,
            limit: settings.limit_usd,
            limit_reset: WireReset::from_budget(settings.limit_reset),
            include_byok_in_limit: settings.include_byok,
            expires_at: settings.expires_at,
        }
    }
}

/// `PATCH /keys/{hash}` body: everything OpenRouter can change in place. `expires_at` is absent on
/// purpose: OpenRouter rejects it, and a change of expiry re-issues the key instead.
#[derive(Debug, Serialize)]
pub(super) struct UpdateRequest<'a> {
    pub name: &'a str,
    pub disabled: bool,
    pub limit: Option<f64>,
    pub limit_reset: Option<WireReset>,
    pub include_byok_in_limit: bool,
}

impl<'a> UpdateRequest<'a> {
    pub fn new(settings: &'a KeySettings) -> Self {
        Self {
            name: &settings.name,
            disabled: settings.disabled,
            limit: settings.limit_usd,
            limit_reset: WireReset::from_budget(settings.limit_reset),
            include_byok_in_limit: settings.include_byok,
        }
    }
}

/// `{ "data": T }`, the envelope of every successful response.
#[derive(Debug, Deserialize)]
pub(super) struct Data<T> {
    pub data: T,
}

/// `POST /keys` answer. No `Debug`: `key` is the plaintext value.
#[derive(Deserialize)]
pub(super) struct Created {
    pub data: WireKey,
    #[serde(default)]
    pub key: Option<String>,
}

/// The key object of list, get, create and update responses.
#[derive(Debug, Deserialize)]
pub(super) struct WireKey {
    pub hash: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(flatten)]
    pub limits: WireLimits,
    #[serde(default, deserialize_with = "utc_timestamp")]
    pub expires_at: Option<Timestamp>,
}

/// Limit and usage fields, shared by the key object and `GET /key`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct WireLimits {
    #[serde(default)]
    pub limit: Option<f64>,
    #[serde(default)]
    pub limit_remaining: Option<f64>,
    #[serde(default)]
    pub limit_reset: Option<WireReset>,
    #[serde(default)]
    pub include_byok_in_limit: Option<bool>,
    #[serde(default)]
    pub usage: Option<f64>,
    #[serde(default)]
    pub usage_daily: Option<f64>,
    #[serde(default)]
    pub usage_weekly: Option<f64>,
    #[serde(default)]
    pub usage_monthly: Option<f64>,
    #[serde(default)]
    pub byok_usage: Option<f64>,
    #[serde(default)]
    pub byok_usage_daily: Option<f64>,
    #[serde(default)]
    pub byok_usage_weekly: Option<f64>,
    #[serde(default)]
    pub byok_usage_monthly: Option<f64>,
}

impl WireLimits {
    /// The spend that counts against the key's limit: OpenRouter's own credits, plus the BYOK spend
    /// (billed by the upstream provider) when `include_byok_in_limit` says it counts. Otherwise status
    /// would show a key under its budget that OpenRouter already refuses. `remaining_usd` is
    /// OpenRouter's own figure, which accounts for it either way.
    fn usage(&self) -> KeyUsage {
        let byok = self.include_byok_in_limit.unwrap_or(false);
        let counted = |credits: Option<f64>, byok_usd: Option<f64>| match (credits, byok_usd) {
            (Some(c), Some(b)) if byok => Some(c + b),
            (c, _) => c,
        };
        KeyUsage {
            total_usd: counted(self.usage, self.byok_usage),
            daily_usd: counted(self.usage_daily, self.byok_usage_daily),
            weekly_usd: counted(self.usage_weekly, self.byok_usage_weekly),
            monthly_usd: counted(self.usage_monthly, self.byok_usage_monthly),
            remaining_usd: self.limit_remaining,
            ..Default::default()
        }
    }
}

impl WireKey {
    /// A `null` reset reads as `None` (never resets), never as `Some(BudgetReset::Never)`.
    pub fn into_record(self) -> KeyRecord {
        let usage = self.limits.usage();
        KeyRecord {
            id: self.hash,
            label: self.label,
            settings: KeySettings {
                name: self.name.clone(),
                disabled: self.disabled,
                limit_usd: self.limits.limit,
                limit_reset: self.limits.limit_reset.map(WireReset::to_budget),
                include_byok: self.limits.include_byok_in_limit.unwrap_or(false),
                expires_at: self.expires_at,
                ..Default::default()
            },
            name: self.name,
            usage,
        }
    }
}

/// `GET /key`: the key that made the call.
#[derive(Debug, Deserialize)]
pub(super) struct CurrentKey {
    /// The spec's `CurrentKey` has no label, but OpenRouter (and the simulator) may send one.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub is_management_key: Option<bool>,
    /// Deprecated alias of `is_management_key`, still honoured for older accounts.
    #[serde(default)]
    pub is_provisioning_key: Option<bool>,
    #[serde(flatten)]
    pub limits: WireLimits,
}

impl CurrentKey {
    pub fn is_management(&self) -> bool {
        self.is_management_key.unwrap_or(false) || self.is_provisioning_key.unwrap_or(false)
    }

    pub fn into_imported(self) -> ImportedKeyInfo {
        ImportedKeyInfo {
            usage: self.limits.usage(),
            limit_usd: self.limits.limit,
            label: self.label,
        }
    }
}

/// `GET /credits`.
#[derive(Debug, Deserialize)]
pub(super) struct Credits {
    #[serde(default)]
    pub total_credits: Option<f64>,
    #[serde(default)]
    pub total_usage: Option<f64>,
}

impl From<Credits> for AccountInfo {
    fn from(credits: Credits) -> Self {
        Self {
            credits_usd: credits.total_credits,
            usage_usd: credits.total_usage,
        }
    }
}

/// The error body shared by every status: `{"error":{"code":..,"message":".."}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// `error.message` of an OpenRouter error body (unsanitized: the transport sanitizes it).
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body).ok()?.error.message
}

/// Timestamps are specified as UTC ISO-8601; one without an offset is read as UTC rather than
/// rejected, since a whole list should not fail over one field's formatting.
fn utc_timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(Some(at));
    }
    text.parse::<DateTime>()
        .ok()
        .and_then(|civil| civil.to_zoned(TimeZone::UTC).ok())
        .map(|zoned| Some(zoned.timestamp()))
        .ok_or_else(|| serde::de::Error::custom("expires_at is not an ISO-8601 date-time"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn byok_spend_counts_in_the_windows_only_when_it_counts_against_the_limit() {
        let key = |include: bool| {
            let body = json!({"data":{"hash":"b1","name":"n","label":"l","disabled":false,
                "limit":10,"limit_remaining":0,"limit_reset":"daily","include_byok_in_limit":include,
                "usage":4,"usage_daily":1,"usage_weekly":2,"usage_monthly":3,
                "byok_usage":20,"byok_usage_daily":9,"byok_usage_weekly":10,"byok_usage_monthly":11,
                "created_at":"2025-08-24T10:30:00Z"}});
            serde_json::from_value::<Data<WireKey>>(body)
                .unwrap()
                .data
                .into_record()
                .usage
        };
        let counted = key(true);
        assert_eq!(
            (
                counted.total_usd,
                counted.daily_usd,
                counted.weekly_usd,
                counted.monthly_usd
            ),
            (Some(24.0), Some(10.0), Some(12.0), Some(14.0))
        );
        let own = key(false);
        assert_eq!((own.total_usd, own.daily_usd), (Some(4.0), Some(1.0)));
    }

    #[test]
    fn a_documented_key_object_maps_onto_a_record() {
        let body = json!({"data":{"hash":"f01d","name":"tenant-a","label":"sk-or-v1-0e6...1c96","disabled":false,
            "limit":50,"limit_remaining":42.5,"limit_reset":"monthly","include_byok_in_limit":true,
            "usage":7.5,"usage_daily":1,"usage_weekly":2,"usage_monthly":7.5,
            "byok_usage":0,"byok_usage_daily":0,"byok_usage_weekly":0,"byok_usage_monthly":0,
            "created_at":"2025-08-24T10:30:00Z","updated_at":null,"expires_at":"2030-01-01T00:00:00Z",
            "creator_user_id":"user_2d","workspace_id":"0df9e665","something_new":{"x":1}}});
        let key: Data<WireKey> = serde_json::from_value(body).unwrap();
        let record = key.data.into_record();
        assert_eq!(record.id, "f01d");
        assert_eq!(record.name, "tenant-a");
        assert_eq!(record.settings.limit_usd, Some(50.0));
        assert_eq!(record.settings.limit_reset, Some(BudgetReset::Monthly));
        assert!(record.settings.include_byok);
        assert_eq!(
            record.settings.expires_at,
            Some("2030-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(record.usage.total_usd, Some(7.5));
        assert_eq!(record.usage.daily_usd, Some(1.0));
        assert_eq!(record.usage.remaining_usd, Some(42.5));
    }

    #[test]
    fn missing_optional_fields_read_as_none() {
        let key: WireKey = serde_json::from_value(json!({"hash":"h"})).unwrap();
        let record = key.into_record();
        assert_eq!(record.settings.limit_usd, None);
        assert_eq!(record.settings.limit_reset, None);
        assert_eq!(record.settings.expires_at, None);
        assert_eq!(record.usage, KeyUsage::default());
    }

    #[test]
    fn expiry_without_an_offset_is_read_as_utc() {
        let key: WireKey =
            serde_json::from_value(json!({"hash":"h","expires_at":"2030-01-01T00:00:00"})).unwrap();
        assert_eq!(key.expires_at, Some("2030-01-01T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn create_bodies_send_resets_in_lowercase_never_as_null_and_expiry_in_utc() {
        let mut settings = KeySettings {
            name: "n".into(),
            disabled: false,
            limit_usd: Some(5.0),
            limit_reset: Some(BudgetReset::Weekly),
            include_byok: false,
            expires_at: Some("2030-01-01T00:00:00+00:00".parse().unwrap()),
            ..Default::default()
        };
        let body = serde_json::to_value(CreateRequest::new(&settings)).unwrap();
        assert_eq!(body["limit_reset"], "weekly");
        assert_eq!(body["expires_at"], "2030-01-01T00:00:00Z");
        settings.limit_reset = Some(BudgetReset::Never);
        let body = serde_json::to_value(CreateRequest::new(&settings)).unwrap();
        assert!(body["limit_reset"].is_null());
    }

    #[test]
    fn update_bodies_never_carry_expiry() {
        let settings = KeySettings {
            name: "n".into(),
            disabled: true,
            limit_usd: None,
            limit_reset: None,
            include_byok: false,
            expires_at: Some(Timestamp::UNIX_EPOCH),
            ..Default::default()
        };
        let body = serde_json::to_value(UpdateRequest::new(&settings)).unwrap();
        assert!(body.get("expires_at").is_none());
        assert!(body["limit"].is_null() && body.get("limit").is_some());
    }

    #[test]
    fn the_deprecated_provisioning_flag_still_marks_a_management_key() {
        let current: CurrentKey = serde_json::from_value(json!({"is_provisioning_key": true})).unwrap();
        assert!(current.is_management());
        let current: CurrentKey =
            serde_json::from_value(json!({"is_management_key": false, "is_free_tier": true})).unwrap();
        assert!(!current.is_management());
    }

    #[test]
    fn error_messages_come_from_error_message() {
        let body = br#"{"error":{"code":403,"message":"Only management keys can perform this operation"}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Only management keys can perform this operation")
        );
        assert_eq!(error_message(b"<html>oops</html>"), None);
    }
}
