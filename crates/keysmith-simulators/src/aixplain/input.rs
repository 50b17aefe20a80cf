//! Validation of the ApiKeyPayload that `POST /sdk/api-keys` and `PUT /sdk/api-keys/{id}` take,
//! field by field, so each mistake gets a 400 naming the field (NestJS style) instead of a generic
//! JSON rejection.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::state::{AssetLimit, Limits, TokenType};

/// Why a body was rejected; becomes the 400 message.
pub(super) type Invalid = String;

/// A validated ApiKeyPayload. Absent and `null` fields both mean "none": PUT replaces the whole key.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Payload {
    /// `id`, when the body carries one (PUT sends it).
    pub id: Option<String>,
    pub name: String,
    pub budget: Option<f64>,
    pub global_limits: Option<Limits>,
    pub assets_limits: Vec<AssetLimit>,
    pub expires_at: Option<Timestamp>,
}

impl Payload {
    pub fn parse(body: &[u8]) -> Result<Self, Invalid> {
        let fields = match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err("the body must be a JSON object".into()),
            Err(_) => return Err("the body is not valid JSON".into()),
        };
        let name = match present(&fields, "name") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            Some(_) => return Err("name must be a non-empty string".into()),
            None => return Err("name should not be empty".into()),
        };
        let id = match present(&fields, "id") {
            None => None,
            Some(Value::String(id)) if id.is_empty() => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err("id must be a string".into()),
        };
        let budget = match present(&fields, "budget") {
            None => None,
            Some(value) => match value.as_f64() {
                Some(budget) if budget.is_finite() && budget >= 0.0 => Some(budget),
                _ => return Err("budget must be a non-negative number".into()),
            },
        };
        let global_limits = present(&fields, "globalLimits")
            .map(|value| limits("globalLimits", value))
            .transpose()?;
        let assets_limits = match present(&fields, "assetsLimits") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(n, item)| asset_limit(n, item))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("assetsLimits must be an array".into()),
        };
        let expires_at = match present(&fields, "expiresAt") {
            None => None,
            Some(Value::String(text)) => Some(
                text.parse::<Timestamp>()
                    .map_err(|_| "expiresAt must be an ISO-8601 date-time with an offset".to_owned())?,
            ),
            Some(_) => return Err("expiresAt must be an ISO-8601 string".into()),
        };
        Ok(Self {
            id,
            name,
            budget,
            global_limits,
            assets_limits,
            expires_at,
        })
    }
}

/// A field sent with a value other than `null`.
fn present<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields.get(key).filter(|value| !value.is_null())
}

fn limits(field: &str, value: &Value) -> Result<Limits, Invalid> {
    let Value::Object(fields) = value else {
        return Err(format!("{field} must be an object"));
    };
    let count = |name: &str| -> Result<Option<u64>, Invalid> {
        match present(fields, name) {
            None => Ok(None),
            Some(value) => match value.as_i64() {
                Some(n) if n < 0 => Err(format!("{field}.{name} must not be less than 0")),
                Some(n) => Ok(u64::try_from(n).ok()),
                None => Err(format!("{field}.{name} must be an integer")),
            },
        }
    };
    let token_type = match present(fields, "tokenType") {
        None => None,
        Some(Value::String(kind)) => Some(match kind.as_str() {
            "input" => TokenType::Input,
            "output" => TokenType::Output,
            "total" => TokenType::Total,
            _ => return Err(format!("{field}.tokenType must be input, output or total")),
        }),
        Some(_) => return Err(format!("{field}.tokenType must be a string")),
    };
    Ok(Limits {
        tpm: count("tpm")?,
        tpd: count("tpd")?,
        rpm: count("rpm")?,
        rpd: count("rpd")?,
        token_type,
    })
}

fn asset_limit(index: usize, value: &Value) -> Result<AssetLimit, Invalid> {
    let field = format!("assetsLimits[{index}]");
    let asset_id = match value.get("assetId") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        _ => return Err(format!("{field}.assetId must be a non-empty model id")),
    };
    Ok(AssetLimit {
        asset_id,
        limits: limits(&field, value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Payload, Invalid> {
        Payload::parse(body.as_bytes())
    }

    #[test]
    fn the_documented_payload_is_accepted() {
        let payload = parse(
            r#"{"id":"","name":"tenant-a","budget":1000,
                "globalLimits":{"tpm":100,"tpd":1000,"rpm":100,"rpd":1000,"tokenType":null},
                "assetsLimits":[{"assetId":"m1","tpm":100,"tpd":1000,"rpm":100,"rpd":1000,"tokenType":"total"}],
                "expiresAt":"2024-10-07T00:00:00.000000Z"}"#,
        )
        .unwrap();
        assert_eq!(payload.id, None);
        assert_eq!(payload.budget, Some(1000.0));
        assert_eq!(payload.global_limits.unwrap().rpd, Some(1000));
        assert_eq!(payload.assets_limits[0].asset_id, "m1");
        assert_eq!(payload.assets_limits[0].limits.token_type, Some(TokenType::Total));
        assert_eq!(payload.expires_at, Some("2024-10-07T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn a_name_is_required() {
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"name":" "}"#).is_err());
        assert!(parse(r#"{"name":"a"}"#).is_ok());
    }

    #[test]
    fn negative_or_fractional_counts_and_unknown_token_types_are_rejected() {
        let err = parse(r#"{"name":"a","globalLimits":{"rpm":-1}}"#).unwrap_err();
        assert_eq!(err, "globalLimits.rpm must not be less than 0");
        assert!(parse(r#"{"name":"a","globalLimits":{"tpm":1.5}}"#).is_err());
        assert!(parse(r#"{"name":"a","assetsLimits":[{"assetId":"m","tokenType":"all"}]}"#).is_err());
        assert!(parse(r#"{"name":"a","assetsLimits":[{"rpm":1}]}"#).is_err());
        assert!(parse(r#"{"name":"a","budget":-2}"#).is_err());
    }

    #[test]
    fn expiry_needs_an_offset() {
        assert!(parse(r#"{"name":"a","expiresAt":"2030-01-01T00:00:00"}"#).is_err());
        assert!(parse(r#"{"name":"a","expiresAt":"2030-01-01T02:00:00+02:00"}"#).is_ok());
    }
}
