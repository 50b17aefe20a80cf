//! DigitalOcean's JSON shapes for GenAI model API keys (`providers.md` §3) and their mapping onto the
//! provider-neutral types. Unknown fields are ignored and missing optional ones read as `None`, so
//! additions upstream do not break keysmith.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::KeyRecord;
use crate::KeySettings;

/// `PUT /v2/gen-ai/models/api_keys/{uuid}` body. The uuid is repeated in the body, as DigitalOcean's
/// own example does.
#[derive(Debug, Serialize)]
pub(super) struct RenameRequest<'a> {
    pub api_key_uuid: &'a str,
    pub name: &'a str,
}

/// `ModelAPIKeyInfo` without its `secret_key`, which only create and regenerate reveal.
#[derive(Debug, Deserialize)]
pub(super) struct WireKey {
    pub uuid: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub deleted_at: Option<String>,
}

impl WireKey {
    /// A deleted key still has a record (a delete answers with `deleted_at` set), but it no longer
    /// works, so keysmith treats it as gone. A Go-style zero time (`0001-01-01T00:00:00Z`) or an
    /// empty string means "not deleted", as `null` does.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at
            .as_deref()
            .and_then(|text| text.parse::<Timestamp>().ok())
            .is_some_and(|at| at > Timestamp::UNIX_EPOCH)
    }

    /// DigitalOcean holds nothing but the name: no hint of the value, no limits, no usage.
    pub fn into_record(self) -> KeyRecord {
        KeyRecord {
            settings: KeySettings {
                name: self.name.clone(),
                ..Default::default()
            },
            id: self.uuid,
            name: self.name,
            label: None,
            usage: Default::default(),
        }
    }
}

/// `{ "api_key_info": ModelAPIKeyInfo }`, the answer of update and delete.
#[derive(Debug, Deserialize)]
pub(super) struct Info {
    pub api_key_info: WireKey,
}

/// `{ "api_key_info": ModelAPIKeyInfo }` from regenerate, with the new value. No `Debug`:
/// `secret_key` is the plaintext.
#[derive(Deserialize)]
pub(super) struct Revealed {
    pub api_key_info: RevealedKey,
}

/// No `Debug`: `secret_key` is the plaintext.
#[derive(Deserialize)]
pub(super) struct RevealedKey {
    #[serde(flatten)]
    pub key: WireKey,
    #[serde(default)]
    pub secret_key: Option<String>,
}

/// One page of `GET /v2/gen-ai/models/api_keys`.
#[derive(Debug, Deserialize)]
pub(super) struct Page {
    /// Absent or `null` on an empty account.
    #[serde(default)]
    pub api_key_infos: Option<Vec<WireKey>>,
    #[serde(default)]
    pub links: Option<Links>,
    #[serde(default)]
    pub meta: Option<Meta>,
}

/// `links`; `pages` appears only once there is more than one page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Links {
    #[serde(default)]
    pub pages: Option<PageLinks>,
}

/// The links of `links.pages`, each present only where it makes sense.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageLinks {
    #[serde(default)]
    pub next: Option<String>,
}

/// `meta`: the item count, and (in the gen-ai schema) the page and page count.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Meta {
    #[serde(default)]
    pub total: Option<u64>,
}

impl Page {
    /// Whether DigitalOcean announces a further page.
    pub fn has_next(&self) -> bool {
        self.links
            .as_ref()
            .and_then(|links| links.pages.as_ref())
            .and_then(|pages| pages.next.as_deref())
            .is_some_and(|next| !next.is_empty())
    }

    pub fn total(&self) -> Option<u64> {
        self.meta.as_ref().and_then(|meta| meta.total)
    }
}

/// `GET {inference}/models`: `{object: "list", data: [...]}`; only the envelope is checked.
#[derive(Debug, Deserialize)]
pub(super) struct Models {
    #[allow(dead_code)] // Decoded to prove the body has the documented shape; the models are unused.
    pub data: Vec<serde_json::Value>,
}

/// DigitalOcean's error body: `{"id": "not_found", "message": "...", "request_id"?: "..."}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
}

/// `message` of a DigitalOcean error body (unsanitized: the transport sanitizes it).
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body).ok()?.message
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_documented_key_object_maps_onto_a_record_without_the_value() {
        let body = json!({"api_key_info":{"uuid":"11efb7d6-cdb5-6388-bf8f-4e013e2ddde4","name":"tenant-a",
            "created_at":"2025-05-01T12:00:00Z","created_by":"12345","deleted_at":null,"secret_key":"sk-do-secret"}});
        let info: Info = serde_json::from_value(body).unwrap();
        assert!(!format!("{info:?}").contains("sk-do-secret"));
        assert!(!info.api_key_info.is_deleted());
        let record = info.api_key_info.into_record();
        assert_eq!(record.id, "11efb7d6-cdb5-6388-bf8f-4e013e2ddde4");
        assert_eq!(record.name, "tenant-a");
        assert_eq!(record.settings.name, "tenant-a");
        assert_eq!(record.label, None);
    }

    #[test]
    fn a_regenerate_answer_carries_the_new_value() {
        let body = json!({"api_key_info":{"uuid":"u","name":"n","secret_key":"sk-do-new","something_new":1}});
        let revealed: Revealed = serde_json::from_value(body).unwrap();
        assert_eq!(revealed.api_key_info.secret_key.as_deref(), Some("sk-do-new"));
        assert_eq!(revealed.api_key_info.key.uuid, "u");
    }

    #[test]
    fn a_delete_answer_marks_the_key_deleted() {
        let body = json!({"api_key_info":{"uuid":"u","name":"n","deleted_at":"2025-05-02T00:00:00Z"}});
        let info: Info = serde_json::from_value(body).unwrap();
        assert!(info.api_key_info.is_deleted());
        for alive in [json!(null), json!(""), json!("0001-01-01T00:00:00Z")] {
            let key: WireKey = serde_json::from_value(json!({"uuid": "u", "deleted_at": alive})).unwrap();
            assert!(!key.is_deleted());
        }
    }

    #[test]
    fn pages_announce_a_next_page_only_through_links_pages_next() {
        let middle: Page = serde_json::from_value(json!({
            "api_key_infos": [{"uuid": "a", "name": "x"}],
            "links": {"pages": {"first": "https://api.digitalocean.com/v2/gen-ai/models/api_keys?page=1",
                                "next": "https://api.digitalocean.com/v2/gen-ai/models/api_keys?page=3"}},
            "meta": {"page": 2, "pages": 3, "total": 41}}))
        .unwrap();
        assert!(middle.has_next());
        assert_eq!(middle.total(), Some(41));
        let last: Page = serde_json::from_value(json!({
            "api_key_infos": [], "links": {"pages": {"prev": "x"}}, "meta": {"total": 0}}))
        .unwrap();
        assert!(!last.has_next());
        let single: Page = serde_json::from_value(json!({"api_key_infos": null, "links": {}})).unwrap();
        assert!(!single.has_next());
        assert!(single.api_key_infos.is_none());
    }

    #[test]
    fn rename_bodies_repeat_the_uuid() {
        let body = serde_json::to_value(RenameRequest {
            api_key_uuid: "u",
            name: "n",
        })
        .unwrap();
        assert_eq!(body, json!({"api_key_uuid": "u", "name": "n"}));
    }

    #[test]
    fn error_messages_come_from_message() {
        let body = br#"{"id":"not_found","message":"The resource you were accessing could not be found."}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("The resource you were accessing could not be found.")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn the_inference_model_list_needs_its_data_array() {
        let models: Models = serde_json::from_value(
            json!({"object":"list","data":[{"id":"llama3-8b-instruct","object":"model"}]}),
        )
        .unwrap();
        assert_eq!(models.data.len(), 1);
        assert!(serde_json::from_value::<Models>(json!([])).is_err());
    }
}
