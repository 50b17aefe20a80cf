//! Validation of request bodies, field by field, so each mistake gets the 400 and the `param` OpenAI
//! gives rather than a generic JSON rejection.

use serde_json::{Map, Value};

use super::state::RATE_FIELDS;

/// Why a body was rejected: the message and the offending field.
#[derive(Debug, PartialEq)]
pub(super) struct Invalid {
    pub message: String,
    pub param: Option<String>,
}

impl Invalid {
    fn new(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }
}

type Parsed<T> = Result<T, Invalid>;

/// `POST /organization/projects`.
#[derive(Debug, PartialEq)]
pub(super) struct NewProject {
    pub name: String,
    pub residency: Option<String>,
    pub external_key_id: Option<String>,
}

impl NewProject {
    pub fn parse(body: &[u8]) -> Parsed<Self> {
        let fields = object(body)?;
        only(&fields, &["name", "residency", "external_key_id"])?;
        Ok(Self {
            name: required_name(&fields)?,
            residency: optional_string(&fields, "residency")?,
            external_key_id: optional_string(&fields, "external_key_id")?,
        })
    }
}

/// `POST /organization/projects/{id}`: the outer `Option` says whether a field was sent.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ProjectPatch {
    pub name: Option<String>,
    pub external_key_id: Option<Option<String>>,
}

impl ProjectPatch {
    pub fn parse(body: &[u8]) -> Parsed<Self> {
        let fields = object(body)?;
        only(&fields, &["name", "external_key_id"])?;
        Ok(Self {
            name: match fields.get("name") {
                None | Some(Value::Null) => None,
                Some(_) => Some(required_name(&fields)?),
            },
            external_key_id: fields
                .contains_key("external_key_id")
                .then(|| optional_string(&fields, "external_key_id"))
                .transpose()?,
        })
    }
}

/// `POST .../service_accounts`.
#[derive(Debug, PartialEq)]
pub(super) struct NewAccount {
    pub name: String,
    pub create_service_account_only: bool,
}

impl NewAccount {
    pub fn parse(body: &[u8]) -> Parsed<Self> {
        let fields = object(body)?;
        only(&fields, &["name", "create_service_account_only"])?;
        let only_account = match fields.get("create_service_account_only") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => {
                return Err(Invalid::new(
                    "create_service_account_only must be a boolean or null",
                    Some("create_service_account_only"),
                ));
            }
        };
        Ok(Self {
            name: required_name(&fields)?,
            create_service_account_only: only_account,
        })
    }
}

/// `POST .../service_accounts/{id}`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct AccountPatch {
    pub name: Option<String>,
    pub role: Option<String>,
}

impl AccountPatch {
    pub fn parse(body: &[u8]) -> Parsed<Self> {
        let fields = object(body)?;
        only(&fields, &["name", "role"])?;
        let role = match fields.get("role") {
            None | Some(Value::Null) => None,
            Some(Value::String(role)) if role == "member" || role == "owner" => Some(role.clone()),
            Some(_) => return Err(Invalid::new("role must be member or owner", Some("role"))),
        };
        Ok(Self {
            name: match fields.get("name") {
                None | Some(Value::Null) => None,
                Some(_) => Some(required_name(&fields)?),
            },
            role,
        })
    }
}

/// `POST .../rate_limits/{id}`: the fields to change, each a non-negative integer.
pub(super) fn rate_limit_patch(body: &[u8]) -> Parsed<Vec<(&'static str, u64)>> {
    let fields = object(body)?;
    let mut changes = Vec::new();
    for (name, value) in &fields {
        let Some(field) = RATE_FIELDS.iter().find(|field| **field == name) else {
            return Err(Invalid::new(
                format!("Unrecognized request argument supplied: {name}"),
                Some(name),
            ));
        };
        let Some(number) = value.as_u64() else {
            return Err(Invalid::new(
                format!("{name} must be a non-negative integer"),
                Some(name),
            ));
        };
        changes.push((*field, number));
    }
    Ok(changes)
}

/// `POST .../spend_limit`: the cap in US cents.
pub(super) fn spend_limit(body: &[u8]) -> Parsed<i64> {
    let fields = object(body)?;
    only(&fields, &["threshold_amount", "currency", "interval"])?;
    let cents = match fields.get("threshold_amount").and_then(Value::as_i64) {
        Some(cents) if cents >= 1 => cents,
        _ => {
            return Err(Invalid::new(
                "threshold_amount must be an integer number of cents, at least 1",
                Some("threshold_amount"),
            ));
        }
    };
    if fields.get("currency").and_then(Value::as_str) != Some("USD") {
        return Err(Invalid::new("currency must be USD", Some("currency")));
    }
    if fields.get("interval").and_then(Value::as_str) != Some("month") {
        return Err(Invalid::new("interval must be month", Some("interval")));
    }
    Ok(cents)
}

fn object(body: &[u8]) -> Parsed<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Invalid::new("The request body must be a JSON object.", None)),
        Err(_) => Err(Invalid::new(
            "We could not parse the JSON body of your request.",
            None,
        )),
    }
}

fn only(fields: &Map<String, Value>, allowed: &[&str]) -> Parsed<()> {
    match fields.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(Invalid::new(
            format!("Unrecognized request argument supplied: {key}"),
            Some(key),
        )),
        None => Ok(()),
    }
}

fn required_name(fields: &Map<String, Value>) -> Parsed<String> {
    match fields.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => Ok(name.clone()),
        None => Err(Invalid::new("Missing required parameter: 'name'.", Some("name"))),
        Some(_) => Err(Invalid::new("name must be a non-empty string", Some("name"))),
    }
}

fn optional_string(fields: &Map<String, Value>, key: &str) -> Parsed<Option<String>> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(Invalid::new(format!("{key} must be a string or null"), Some(key))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_needs_a_name_and_nothing_unknown() {
        assert_eq!(
            NewAccount::parse(br#"{"name":"bot [ks:1/2]"}"#).unwrap(),
            NewAccount {
                name: "bot [ks:1/2]".into(),
                create_service_account_only: false
            }
        );
        assert!(
            NewAccount::parse(br#"{"name":"a","create_service_account_only":true}"#)
                .unwrap()
                .create_service_account_only
        );
        let missing = NewAccount::parse(b"{}").unwrap_err();
        assert_eq!(missing.param.as_deref(), Some("name"));
        assert!(NewAccount::parse(br#"{"name":""}"#).is_err());
        assert!(NewAccount::parse(br#"{"name":"a","role":"owner"}"#).is_err());
        assert!(NewAccount::parse(b"[1]").is_err());
    }

    #[test]
    fn service_account_updates_take_a_name_and_a_known_role() {
        let patch = AccountPatch::parse(br#"{"name":"renamed","role":"owner"}"#).unwrap();
        assert_eq!(patch.name.as_deref(), Some("renamed"));
        assert_eq!(patch.role.as_deref(), Some("owner"));
        assert!(AccountPatch::parse(br#"{"role":"none"}"#).is_err());
        assert_eq!(AccountPatch::parse(b"{}").unwrap(), AccountPatch::default());
    }

    #[test]
    fn rate_limit_patches_accept_documented_fields_with_integer_values_only() {
        assert_eq!(
            rate_limit_patch(br#"{"max_requests_per_1_minute":10}"#).unwrap(),
            vec![("max_requests_per_1_minute", 10)]
        );
        let unknown = rate_limit_patch(br#"{"max_requests_per_1_hour":10}"#).unwrap_err();
        assert_eq!(unknown.param.as_deref(), Some("max_requests_per_1_hour"));
        assert!(rate_limit_patch(br#"{"max_tokens_per_1_minute":-1}"#).is_err());
        assert!(rate_limit_patch(br#"{"max_tokens_per_1_minute":1.5}"#).is_err());
    }

    #[test]
    fn spend_limits_are_whole_cents_in_usd_per_month() {
        assert_eq!(
            spend_limit(br#"{"threshold_amount":500,"currency":"USD","interval":"month"}"#).unwrap(),
            500
        );
        assert!(spend_limit(br#"{"threshold_amount":0,"currency":"USD","interval":"month"}"#).is_err());
        assert!(spend_limit(br#"{"threshold_amount":5.5,"currency":"USD","interval":"month"}"#).is_err());
        assert!(spend_limit(br#"{"threshold_amount":500,"currency":"EUR","interval":"month"}"#).is_err());
        assert!(spend_limit(br#"{"threshold_amount":500,"currency":"USD","interval":"week"}"#).is_err());
    }
}
