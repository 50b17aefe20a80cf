//! Validation of key bodies, `keyId` and `updateMask`, so each mistake gets the 400 the API gives
//! rather than a generic JSON rejection.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Why a request was rejected; becomes the 400 message.
pub(super) type Invalid = String;

/// Longest `displayName`, in characters.
pub(super) const DISPLAY_NAME_MAX: usize = 63;

/// The mutable fields of a `Key` body. The outer `Option` says whether the field was sent.
#[derive(Debug, Default, PartialEq)]
pub(super) struct KeyFields {
    pub display_name: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub restrictions: Option<Value>,
    pub etag: Option<String>,
}

impl KeyFields {
    pub fn parse(body: &[u8]) -> Result<Self, Invalid> {
        let fields: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice(body) {
                Ok(Value::Object(fields)) => fields,
                _ => return Err("Invalid JSON payload received: the body must be a JSON object.".into()),
            }
        };
        let display_name = match fields.get("displayName") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) if name.chars().count() <= DISPLAY_NAME_MAX => Some(name.clone()),
            Some(Value::String(_)) => {
                return Err(format!(
                    "display_name must be at most {DISPLAY_NAME_MAX} characters"
                ));
            }
            Some(_) => return Err("Invalid value at 'key.display_name': must be a string".into()),
        };
        let annotations = match fields.get("annotations") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(
                map.iter()
                    .map(|(k, v)| match v {
                        Value::String(v) if !k.is_empty() => Ok((k.clone(), v.clone())),
                        _ => Err(format!(
                            "Invalid value at 'key.annotations[{k}]': must be a string"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err("Invalid value at 'key.annotations': must be a map".into()),
        };
        let restrictions = match fields.get("restrictions") {
            None | Some(Value::Null) => None,
            Some(value) => Some(restrictions(value)?),
        };
        let etag = match fields.get("etag") {
            Some(Value::String(etag)) if !etag.is_empty() => Some(etag.clone()),
            _ => None,
        };
        Ok(Self {
            display_name,
            annotations,
            restrictions,
            etag,
        })
    }
}

/// Checks `restrictions`: an object whose `apiTargets` (if any) each name a service.
fn restrictions(value: &Value) -> Result<Value, Invalid> {
    let Value::Object(fields) = value else {
        return Err("Invalid value at 'key.restrictions': must be an object".into());
    };
    if let Some(targets) = fields.get("apiTargets") {
        let Value::Array(targets) = targets else {
            return Err("Invalid value at 'key.restrictions.api_targets': must be a list".into());
        };
        for target in targets {
            let service = target.get("service").and_then(Value::as_str).unwrap_or("");
            if service.is_empty() {
                return Err("api_targets.service must not be empty".into());
            }
            if let Some(methods) = target.get("methods")
                && !methods.as_array().is_some_and(|m| m.iter().all(Value::is_string))
            {
                return Err("api_targets.methods must be a list of strings".into());
            }
        }
    }
    Ok(value.clone())
}

/// The fields an `updateMask` names.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Mask {
    pub display_name: bool,
    pub annotations: bool,
    pub restrictions: bool,
}

impl Mask {
    /// Reads `updateMask`. Without one, every mutable field sent is updated; `*` replaces them all.
    pub fn parse(mask: Option<&str>, fields: &KeyFields) -> Result<Self, Invalid> {
        let Some(mask) = mask.filter(|m| !m.trim().is_empty()) else {
            return Ok(Self {
                display_name: fields.display_name.is_some(),
                annotations: fields.annotations.is_some(),
                restrictions: fields.restrictions.is_some(),
            });
        };
        let mut parsed = Self::default();
        for path in mask.split(',').map(str::trim) {
            match path {
                "*" => {
                    return Ok(Self {
                        display_name: true,
                        annotations: true,
                        restrictions: true,
                    });
                }
                "displayName" | "display_name" => parsed.display_name = true,
                "annotations" => parsed.annotations = true,
                "restrictions" => parsed.restrictions = true,
                other => return Err(format!("Invalid field mask path: {other:?} cannot be updated")),
            }
        }
        Ok(parsed)
    }
}

/// `keyId` must match `[a-z]([a-z0-9-]{0,61}[a-z0-9])?` and must not look like a UUID.
pub(super) fn check_key_id(id: &str) -> Result<(), Invalid> {
    let bytes = id.as_bytes();
    let shape = (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last().is_some_and(|b| *b != b'-');
    if !shape {
        return Err(format!(
            "key_id {id:?} must match the regular expression [a-z]([a-z0-9-]{{0,61}}[a-z0-9])?"
        ));
    }
    if looks_like_uuid(id) {
        return Err(format!("key_id {id:?} must not be a UUID-like string"));
    }
    Ok(())
}

fn looks_like_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_follow_rfc_1034_and_are_not_uuids() {
        for good in ["a", "ks-0123abcd", "key-1", &format!("a{}", "b".repeat(62))] {
            check_key_id(good).unwrap();
        }
        for bad in [
            "",
            "1abc",
            "Abc",
            "abc-",
            "a_b",
            &format!("a{}", "b".repeat(63)),
            "abcdef01-2345-4678-9abc-def012345678",
        ] {
            assert!(check_key_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names_longer_than_sixty_three_characters_are_refused() {
        let ok = format!(r#"{{"displayName":"{}"}}"#, "x".repeat(63));
        assert!(KeyFields::parse(ok.as_bytes()).is_ok());
        let long = format!(r#"{{"displayName":"{}"}}"#, "x".repeat(64));
        assert!(KeyFields::parse(long.as_bytes()).is_err());
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        assert!(KeyFields::parse(br#"{"annotations":{"a":1}}"#).is_err());
        assert!(KeyFields::parse(br#"{"restrictions":{"apiTargets":[{}]}}"#).is_err());
        assert!(KeyFields::parse(b"[]").is_err());
        let fields = KeyFields::parse(
            br#"{"displayName":"n","annotations":{"a":"b"},"restrictions":{"apiTargets":[{"service":"s"}]},"etag":"e"}"#,
        )
        .unwrap();
        assert_eq!(fields.display_name.as_deref(), Some("n"));
        assert_eq!(fields.etag.as_deref(), Some("e"));
        assert_eq!(KeyFields::parse(b"").unwrap(), KeyFields::default());
    }

    #[test]
    fn masks_name_fields_or_default_to_those_sent() {
        let fields = KeyFields::parse(br#"{"displayName":"n"}"#).unwrap();
        assert_eq!(
            Mask::parse(None, &fields).unwrap(),
            Mask {
                display_name: true,
                ..Mask::default()
            }
        );
        assert_eq!(
            Mask::parse(Some("display_name,annotations"), &fields).unwrap(),
            Mask {
                display_name: true,
                annotations: true,
                restrictions: false
            }
        );
        assert!(Mask::parse(Some("*"), &fields).unwrap().restrictions);
        assert!(Mask::parse(Some("keyString"), &fields).is_err());
    }
}
