//! The API Keys API's JSON shapes (`providers.md` §7) and their mapping onto the provider-neutral
//! types. Unknown fields are ignored, and restriction kinds keysmith does not manage are carried
//! through untouched so that a patch never drops them.
//!
//! keysmith's name for a key does not fit in `displayName` (at most 63 characters; the tag alone
//! takes 51), so the whole name lives in the annotation [`NAME_ANNOTATION`] and `displayName` holds
//! the readable part. The annotation is what lets a restarted controller find the keys it made.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::KeyRecord;
use crate::KeySettings;

/// Annotation holding keysmith's full name of the key, tag included.
pub(super) const NAME_ANNOTATION: &str = "keysmith.dev/name";

/// Annotation marking a key that keysmith soft-deleted to disable it, as opposed to one it revoked.
pub(super) const DISABLED_ANNOTATION: &str = "keysmith.dev/disabled";

/// Annotation marking a key keysmith minted. Only those get their `apiTargets` managed: an imported
/// key keeps whatever restrictions its owner gave it.
pub(super) const MINTED_ANNOTATION: &str = "keysmith.dev/minted";

/// The API's limit on `displayName`, in characters.
pub(super) const DISPLAY_NAME_MAX: usize = 63;

/// The `Key` resource. `keyString` is deliberately absent: it only travels in [`KeyString`] and
/// [`CreatedKey`], which have no `Debug`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireKey {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<Restrictions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_time: Option<String>,
}

/// `restrictions`: keysmith manages `apiTargets`; browser, server, Android and iOS restrictions
/// someone set by hand are kept as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Restrictions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_targets: Vec<ApiTarget>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One allowed service (all of its methods unless `methods` narrows them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiTarget {
    pub service: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

impl WireKey {
    /// A key to create: keysmith's name, its markers and the restriction to `services`.
    pub fn new(settings: &KeySettings, services: &[&str]) -> Self {
        let mut key = Self::default();
        key.annotations
            .insert(MINTED_ANNOTATION.to_owned(), "true".to_owned());
        key.apply(settings, services);
        key
    }

    /// Sets what keysmith manages to match `settings`: the display name and keysmith's annotations,
    /// plus `apiTargets` (to `services`) on a key it minted. Everything else stays as it is.
    pub fn apply(&mut self, settings: &KeySettings, services: &[&str]) {
        self.display_name = display_name_for(&settings.name);
        self.annotations
            .insert(NAME_ANNOTATION.to_owned(), settings.name.clone());
        if settings.disabled {
            self.annotations
                .insert(DISABLED_ANNOTATION.to_owned(), "true".to_owned());
        } else {
            self.annotations.remove(DISABLED_ANNOTATION);
        }
        if self.annotations.contains_key(MINTED_ANNOTATION) {
            let restrictions = self.restrictions.get_or_insert_with(Default::default);
            restrictions.api_targets = api_targets(services);
        }
    }

    /// Whether the fields keysmith manages differ between `self` and `other`.
    pub fn differs_from(&self, other: &Self) -> bool {
        let targets = |key: &Self| {
            let mut targets = key
                .restrictions
                .as_ref()
                .map(|r| r.api_targets.clone())
                .unwrap_or_default();
            targets.sort();
            targets
        };
        self.display_name != other.display_name
            || self.annotations != other.annotations
            || targets(self) != targets(other)
    }

    pub fn is_deleted(&self) -> bool {
        self.delete_time.as_deref().is_some_and(|t| !t.is_empty())
    }

    /// Carries keysmith's disabled marker (it counts only once the key is also deleted).
    pub fn is_marked_disabled(&self) -> bool {
        self.annotations.contains_key(DISABLED_ANNOTATION)
    }

    /// Deleted to disable it, so it can come back with `:undelete`.
    pub fn is_disabled(&self) -> bool {
        self.is_deleted() && self.is_marked_disabled()
    }

    /// Deleted without keysmith's marker: revoked, as far as keysmith is concerned.
    pub fn is_revoked(&self) -> bool {
        self.is_deleted() && !self.is_marked_disabled()
    }

    /// The name keysmith compares with the desired one: the annotation when `displayName` still
    /// agrees with it; when someone renamed the key in the console, `displayName` plus the tag, so
    /// that the rename shows as a difference (and is undone) while the tag still identifies the key.
    pub fn keysmith_name(&self) -> String {
        match self.annotations.get(NAME_ANNOTATION) {
            Some(full) if display_name_for(full) == self.display_name => full.clone(),
            Some(full) => format!("{}{}", self.display_name, tag_suffix(full).unwrap_or_default()),
            None => self.display_name.clone(),
        }
    }

    /// The record keysmith sees; `None` for a revoked key. Google API keys hold no limits, expiry or
    /// usage, and show no masked form of the value.
    pub fn into_record(self) -> Option<KeyRecord> {
        if self.is_revoked() {
            return None;
        }
        let name = self.keysmith_name();
        Some(KeyRecord {
            settings: KeySettings {
                name: name.clone(),
                disabled: self.is_disabled(),
                ..Default::default()
            },
            id: self.name,
            name,
            label: None,
            usage: Default::default(),
        })
    }
}

/// `apiTargets` allowing every method of each service.
pub(super) fn api_targets(services: &[&str]) -> Vec<ApiTarget> {
    services
        .iter()
        .map(|service| ApiTarget {
            service: (*service).to_owned(),
            methods: Vec::new(),
        })
        .collect()
}

/// The readable part of keysmith's name (its trailing ` [tag]` removed), cut to the API's limit.
pub(super) fn display_name_for(full: &str) -> String {
    let readable = match tag_suffix(full) {
        Some(suffix) if suffix.len() < full.len() => &full[..full.len() - suffix.len()],
        _ => full,
    };
    readable.trim().chars().take(DISPLAY_NAME_MAX).collect()
}

/// The trailing ` [tag]` of a name, if it has one.
fn tag_suffix(full: &str) -> Option<&str> {
    if !full.ends_with(']') {
        return None;
    }
    full.rfind(" [").map(|start| &full[start..])
}

/// A long-running operation. No `Debug`: a finished create's `response` holds the key value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Operation {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub error: Option<Status>,
    #[serde(default)]
    pub response: Option<Value>,
}

/// `google.rpc.Status`, as an operation's `error`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Status {
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub message: String,
}

impl Status {
    /// The error an operation that failed with this status stands for, by `google.rpc.Code`.
    pub fn into_error(self) -> Error {
        let message = crate::http::sanitize(&self.message);
        match self.code {
            16 => Error::Unauthorized { message },
            7 => Error::Forbidden { message },
            5 => Error::NotFound { message },
            // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
            3 | 9 | 11 => Error::Rejected { status: 400, message },
            // ALREADY_EXISTS, ABORTED
            6 | 10 => Error::Rejected { status: 409, message },
            8 => Error::RateLimited {
                retry_after: None,
                message,
            },
            14 => Error::Server { status: 503, message },
            _ => Error::Server { status: 500, message },
        }
    }
}

/// A finished create's `response`: the key, with its value. No `Debug`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreatedKey {
    #[serde(flatten)]
    pub key: WireKey,
    #[serde(default)]
    pub key_string: Option<String>,
}

/// `GET .../keyString`. No `Debug`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyString {
    #[serde(default)]
    pub key_string: Option<String>,
}

/// `GET .../keys`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyList {
    #[serde(default)]
    pub keys: Vec<WireKey>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `GET v2/keys:lookupKey`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LookupKey {
    /// Empty once the key has been purged.
    #[serde(default)]
    pub name: String,
}

/// Google's error body: `{"error":{"code":404,"message":"...","status":"NOT_FOUND"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// `STATUS: message` of a Google error body (unsanitized: the transport sanitizes it).
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    let detail = serde_json::from_slice::<ErrorBody>(body).ok()?.error;
    match (detail.status, detail.message) {
        (Some(status), Some(message)) => Some(format!("{status}: {message}")),
        (None, message) => message,
        (status, None) => status,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SERVICES: [&str; 2] = ["generativelanguage.googleapis.com", "aiplatform.googleapis.com"];
    const TAGGED: &str = "team-a/chat [ks:6f1c1b1e-3d2a-4c8e-9d0f-0123456789ab/0badf00d]";

    #[test]
    fn a_documented_key_maps_onto_a_record_named_by_the_annotation() {
        let key: WireKey = serde_json::from_value(json!({
            "name": "projects/123/locations/global/keys/ks-1",
            "uid": "b7ff1f9f-8275-410a-94dd-3855ee9b5dd2",
            "displayName": "team-a/chat",
            "annotations": {NAME_ANNOTATION: TAGGED, "owner": "ml"},
            "restrictions": {"apiTargets": [{"service": "aiplatform.googleapis.com"}],
                             "serverKeyRestrictions": {"allowedIps": ["10.0.0.0/8"]}},
            "etag": "W/\"abc\"", "createTime": "2024-06-03T10:00:00.123Z",
            "updateTime": "2024-06-03T10:00:00.123Z", "somethingNew": true,
        }))
        .unwrap();
        assert!(!key.is_deleted());
        let record = key.into_record().unwrap();
        assert_eq!(record.id, "projects/123/locations/global/keys/ks-1");
        assert_eq!(record.name, TAGGED);
        assert_eq!(record.settings.name, TAGGED);
        assert!(!record.settings.disabled);
        assert_eq!(record.label, None);
    }

    #[test]
    fn the_display_name_drops_the_tag_and_fits_sixty_three_characters() {
        assert_eq!(display_name_for(TAGGED), "team-a/chat");
        let long = format!("{} [ks:uid/nonce]", "x".repeat(100));
        assert_eq!(display_name_for(&long).chars().count(), DISPLAY_NAME_MAX);
        assert_eq!(display_name_for("plain name"), "plain name");
        assert_eq!(display_name_for("ünïcödé ".repeat(20).trim()).chars().count(), 63);
    }

    #[test]
    fn a_console_rename_shows_as_a_different_name_that_keeps_the_tag() {
        let mut key = WireKey::new(
            &KeySettings {
                name: TAGGED.into(),
                ..Default::default()
            },
            &SERVICES,
        );
        assert_eq!(key.keysmith_name(), TAGGED);
        key.display_name = "renamed by hand".into();
        assert_eq!(
            key.keysmith_name(),
            "renamed by hand [ks:6f1c1b1e-3d2a-4c8e-9d0f-0123456789ab/0badf00d]"
        );
        key.annotations.clear();
        assert_eq!(key.keysmith_name(), "renamed by hand");
    }

    #[test]
    fn deleted_keys_are_disabled_with_the_marker_and_revoked_without_it() {
        let mut key = WireKey::new(
            &KeySettings {
                name: TAGGED.into(),
                disabled: true,
                ..Default::default()
            },
            &SERVICES,
        );
        assert!(key.is_marked_disabled());
        // Marked but live: a disable that has not finished yet still works, so it is not disabled.
        assert!(!key.clone().into_record().unwrap().settings.disabled);
        key.delete_time = Some("2024-06-03T10:00:00Z".into());
        assert!(key.clone().into_record().unwrap().settings.disabled);
        key.annotations.remove(DISABLED_ANNOTATION);
        assert!(key.is_revoked());
        assert_eq!(key.into_record(), None);
    }

    #[test]
    fn applying_settings_keeps_foreign_annotations_and_restrictions() {
        let mut key: WireKey = serde_json::from_value(json!({
            "displayName": "old",
            "annotations": {"owner": "ml", DISABLED_ANNOTATION: "true", MINTED_ANNOTATION: "true"},
            "restrictions": {"apiTargets": [{"service": "translate.googleapis.com"}],
                             "browserKeyRestrictions": {"allowedReferrers": ["*.example.com"]}},
        }))
        .unwrap();
        let before = key.clone();
        key.apply(
            &KeySettings {
                name: TAGGED.into(),
                ..Default::default()
            },
            &SERVICES,
        );
        assert!(key.differs_from(&before));
        let body = serde_json::to_value(&key).unwrap();
        assert_eq!(body["displayName"], "team-a/chat");
        assert_eq!(body["annotations"]["owner"], "ml");
        assert_eq!(body["annotations"][NAME_ANNOTATION], TAGGED);
        assert!(body["annotations"].get(DISABLED_ANNOTATION).is_none());
        assert_eq!(
            body["restrictions"]["apiTargets"],
            json!([{"service": "generativelanguage.googleapis.com"}, {"service": "aiplatform.googleapis.com"}])
        );
        assert_eq!(
            body["restrictions"]["browserKeyRestrictions"]["allowedReferrers"],
            json!(["*.example.com"])
        );
        let again = key.clone();
        key.apply(
            &KeySettings {
                name: TAGGED.into(),
                ..Default::default()
            },
            &["aiplatform.googleapis.com", "generativelanguage.googleapis.com"],
        );
        assert!(!key.differs_from(&again), "target order must not matter");
    }

    #[test]
    fn an_imported_key_keeps_its_own_restrictions() {
        let mut key: WireKey = serde_json::from_value(json!({
            "displayName": "console key",
            "restrictions": {"apiTargets": [{"service": "translate.googleapis.com"}]},
        }))
        .unwrap();
        key.apply(
            &KeySettings {
                name: "renamed".into(),
                ..Default::default()
            },
            &SERVICES,
        );
        assert_eq!(key.display_name, "renamed");
        assert_eq!(
            key.restrictions.unwrap().api_targets,
            api_targets(&["translate.googleapis.com"])
        );
    }

    #[test]
    fn operation_errors_map_by_rpc_code() {
        let status = |code| Status {
            code,
            message: "m".into(),
        };
        assert!(matches!(status(16).into_error(), Error::Unauthorized { .. }));
        assert!(matches!(status(7).into_error(), Error::Forbidden { .. }));
        assert!(matches!(status(5).into_error(), Error::NotFound { .. }));
        assert!(matches!(
            status(6).into_error(),
            Error::Rejected { status: 409, .. }
        ));
        assert!(matches!(
            status(3).into_error(),
            Error::Rejected { status: 400, .. }
        ));
        assert!(matches!(status(8).into_error(), Error::RateLimited { .. }));
        assert!(matches!(
            status(13).into_error(),
            Error::Server { status: 500, .. }
        ));
    }

    #[test]
    fn a_finished_create_carries_the_key_and_its_value() {
        let op: Operation = serde_json::from_value(json!({
            "name": "operations/akmf.p7-1", "done": true,
            "response": {"@type": "type.googleapis.com/google.api.apikeys.v2.Key",
                         "name": "projects/p/locations/global/keys/k", "keyString": "AIzaSyTest"},
        }))
        .unwrap();
        assert!(op.done && op.error.is_none());
        let created: CreatedKey = serde_json::from_value(op.response.unwrap()).unwrap();
        assert_eq!(created.key.name, "projects/p/locations/global/keys/k");
        assert_eq!(created.key_string.as_deref(), Some("AIzaSyTest"));
    }

    #[test]
    fn error_messages_carry_the_rpc_status() {
        let body = br#"{"error":{"code":404,"message":"Key not found.","status":"NOT_FOUND","details":[]}}"#;
        assert_eq!(error_message(body).as_deref(), Some("NOT_FOUND: Key not found."));
        assert_eq!(error_message(b"<html>"), None);
    }
}
