//! Validation of `POST /keys` and `PATCH /keys/{hash}` bodies, field by field, so each mistake gets
//! the 400 OpenRouter gives rather than a generic JSON rejection.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::state::{DEFAULT_WORKSPACE, LimitReset};

/// Why a request body was rejected; becomes the 400 message.
pub(super) type Invalid = String;

/// The fields of a `POST /keys` body.
#[derive(Debug, PartialEq)]
pub(super) struct NewKey {
    pub name: String,
    pub limit: Option<f64>,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    pub expires_at: Option<Timestamp>,
    pub creator_user_id: Option<String>,
    pub workspace_id: String,
}

impl NewKey {
    pub fn parse(body: &[u8]) -> Result<Self, Invalid> {
        let fields = object(body)?;
        let name = match fields.get("name") {
            Some(value) => name(value)?,
            None => return Err("name is required".into()),
        };
        Ok(Self {
            name,
            limit: present(&fields, "limit").map(limit).transpose()?.flatten(),
            limit_reset: present(&fields, "limit_reset")
                .map(limit_reset)
                .transpose()?
                .flatten(),
            include_byok_in_limit: match present(&fields, "include_byok_in_limit") {
                Some(value) => boolean("include_byok_in_limit", value)?,
                None => false,
            },
            expires_at: present(&fields, "expires_at")
                .map(expires_at)
                .transpose()?
                .flatten(),
            creator_user_id: match present(&fields, "creator_user_id") {
                Some(Value::String(id)) => Some(id.clone()),
                Some(_) => return Err("creator_user_id must be a string or null".into()),
                None => None,
            },
            workspace_id: match present(&fields, "workspace_id") {
                Some(Value::String(id)) if is_uuid(id) => id.clone(),
                Some(_) => return Err("workspace_id must be a UUID".into()),
                None => DEFAULT_WORKSPACE.to_owned(),
            },
        })
    }
}

/// The fields of a `PATCH /keys/{hash}` body. The outer `Option` says whether a field was sent; the
/// inner one (for nullable fields) whether it was sent as `null`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct KeyPatch {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub limit: Option<Option<f64>>,
    pub limit_reset: Option<Option<LimitReset>>,
    pub include_byok_in_limit: Option<bool>,
}

impl KeyPatch {
    pub fn parse(body: &[u8]) -> Result<Self, Invalid> {
        let fields = object(body)?;
        if fields.contains_key("expires_at") {
            return Err("expires_at cannot be updated".into());
        }
        Ok(Self {
            name: fields.get("name").map(name).transpose()?,
            disabled: fields
                .get("disabled")
                .map(|value| boolean("disabled", value))
                .transpose()?,
            limit: fields.get("limit").map(limit).transpose()?,
            limit_reset: fields.get("limit_reset").map(limit_reset).transpose()?,
            include_byok_in_limit: fields
                .get("include_byok_in_limit")
                .map(|value| boolean("include_byok_in_limit", value))
                .transpose()?,
        })
    }
}

fn object(body: &[u8]) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(_) => Err("the body is not valid JSON".into()),
    }
}

/// A field that was sent with a value other than `null`; in a create body `null` means "default".
fn present<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields.get(key).filter(|value| !value.is_null())
}

fn name(value: &Value) -> Result<String, Invalid> {
    match value {
        Value::String(name) if !name.trim().is_empty() => Ok(name.clone()),
        _ => Err("name must be a non-empty string".into()),
    }
}

fn boolean(field: &str, value: &Value) -> Result<bool, Invalid> {
    value
        .as_bool()
        .ok_or_else(|| format!("{field} must be a boolean"))
}

fn limit(value: &Value) -> Result<Option<f64>, Invalid> {
    match value {
        Value::Null => Ok(None),
        Value::Number(number) => match number.as_f64() {
            Some(usd) if usd.is_finite() && usd >= 0.0 => Ok(Some(usd)),
            _ => Err("limit must be a non-negative number".into()),
        },
        _ => Err("limit must be a number or null".into()),
    }
}

fn limit_reset(value: &Value) -> Result<Option<LimitReset>, Invalid> {
    match value {
        Value::Null => Ok(None),
        Value::String(reset) => LimitReset::parse(reset)
            .map(Some)
            .ok_or_else(|| "limit_reset must be daily, weekly, monthly or null".into()),
        _ => Err("limit_reset must be daily, weekly, monthly or null".into()),
    }
}

/// OpenRouter takes only UTC expiry times; another offset is a 400 even when it names a valid instant.
fn expires_at(value: &Value) -> Result<Option<Timestamp>, Invalid> {
    let Value::String(text) = value else {
        return Err("expires_at must be an ISO-8601 string or null".into());
    };
    if !(text.ends_with('Z') || text.ends_with('z') || text.ends_with("+00:00")) {
        return Err("expires_at must be in UTC".into());
    }
    text.parse::<Timestamp>()
        .map(Some)
        .map_err(|_| "expires_at must be an ISO-8601 date-time".into())
}

/// `8-4-4-4-12` hex digits.
pub(super) fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: &str) -> Result<NewKey, Invalid> {
        NewKey::parse(body.as_bytes())
    }

    #[test]
    fn a_minimal_create_body_gets_the_defaults() {
        let key = create(r#"{"name":"tenant-a"}"#).unwrap();
        assert_eq!(key.name, "tenant-a");
        assert_eq!(key.limit, None);
        assert_eq!(key.limit_reset, None);
        assert!(!key.include_byok_in_limit);
        assert_eq!(key.workspace_id, DEFAULT_WORKSPACE);
    }

    #[test]
    fn a_full_create_body_is_accepted() {
        let key = create(
            r#"{"name":"a","limit":12.5,"limit_reset":"weekly","include_byok_in_limit":true,
                "expires_at":"2030-01-01T00:00:00+00:00","creator_user_id":"user_1",
                "workspace_id":"11111111-2222-3333-4444-555555555555"}"#,
        )
        .unwrap();
        assert_eq!(key.limit, Some(12.5));
        assert_eq!(key.limit_reset, Some(LimitReset::Weekly));
        assert!(key.include_byok_in_limit);
        assert_eq!(key.expires_at, Some("2030-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(key.creator_user_id.as_deref(), Some("user_1"));
    }

    #[test]
    fn expiry_times_outside_utc_or_iso_8601_are_rejected() {
        assert!(create(r#"{"name":"a","expires_at":"2030-01-01T02:00:00+02:00"}"#).is_err());
        assert!(create(r#"{"name":"a","expires_at":"2030-01-01T00:00:00"}"#).is_err());
        assert!(create(r#"{"name":"a","expires_at":"next tuesday Z"}"#).is_err());
        assert!(create(r#"{"name":"a","expires_at":12}"#).is_err());
    }

    #[test]
    fn patches_tell_absent_fields_from_null_ones() {
        let patch = KeyPatch::parse(br#"{"limit":null}"#).unwrap();
        assert_eq!(patch.limit, Some(None));
        assert_eq!(patch.limit_reset, None);
        assert_eq!(KeyPatch::parse(b"{}").unwrap(), KeyPatch::default());
        assert!(KeyPatch::parse(br#"{"disabled":null}"#).is_err());
        assert!(KeyPatch::parse(br#"{"name":""}"#).is_err());
    }

    #[test]
    fn uuids_need_five_hex_groups() {
        assert!(is_uuid(DEFAULT_WORKSPACE));
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("0df9e665-3c1f-4a5e-9b7d-2f6a8c1e4b1g"));
    }
}
