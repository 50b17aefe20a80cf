//! The Secret keysmith delivers: its name, its data keys and whether an existing one is this ApiKey's.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use keysmith_api::{
    ApiKey,
    well_known::{
        APIKEY_LABEL, DEFAULT_API_KEY_DATA_KEY, DEFAULT_BASE_URL_DATA_KEY, FINGERPRINT_ANNOTATION,
        KEY_ID_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL,
    },
};
use keysmith_core::SecretValue;
use kube::{Resource, ResourceExt, api::ObjectMeta};

/// What the Secret delivers besides the key: where to call, and the limits clients should apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delivery {
    /// The hub's inference base URL.
    pub base_url: String,
    /// Extra data keys (e.g. per-request caps) and their values.
    pub published: BTreeMap<String, String>,
}

/// The JSON published under `spec.secret.keys.limits`: the effective limits and what happens at them.
/// Field order is fixed by the types, so an unchanged spec writes the same bytes (no Secret churn).
pub fn limits_document(key: &ApiKey, limits: &keysmith_api::EffectiveLimits) -> String {
    let doc = serde_json::json!({
        "onLimitExceeded": key.spec.on_limit_exceeded.unwrap_or_default(),
        "limits": limits,
    });
    doc.to_string()
}

/// The display name: the spec's, else `<namespace>/<name>`.
pub fn display_name(key: &ApiKey) -> String {
    key.spec
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any()))
}

/// Name of the target Secret.
pub fn secret_name(key: &ApiKey) -> String {
    key.spec
        .secret
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| key.name_any())
}

/// Data key names of the target Secret: (value, base URL).
pub fn secret_data_keys(key: &ApiKey) -> (String, String) {
    let keys = key.spec.secret.as_ref().and_then(|s| s.keys.as_ref());
    (
        keys.and_then(|k| k.api_key.clone())
            .unwrap_or_else(|| DEFAULT_API_KEY_DATA_KEY.to_owned()),
        keys.and_then(|k| k.base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL_DATA_KEY.to_owned()),
    )
}

/// Whether `secret` belongs to `key` (owned through a controller reference with the key's uid).
pub fn secret_owned_by(secret: &Secret, key: &ApiKey) -> bool {
    let uid = key.uid();
    secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == uid.as_ref() && r.kind == "ApiKey")
}

/// The key value held in an owned Secret, if any: under the data key the spec names, or, after the
/// spec renamed that data key, under the old one (the value whose fingerprint keysmith recorded on the
/// Secret). Renaming a data key must move the value, not replace the key.
pub fn secret_value(secret: &Secret, key: &ApiKey) -> Option<SecretValue> {
    let (data_key, _) = secret_data_keys(key);
    let data = secret.data.as_ref()?;
    let text = |bytes: &ByteString| {
        std::str::from_utf8(&bytes.0)
            .ok()
            .filter(|t| !t.is_empty())
            .map(SecretValue::new)
    };
    if let Some(value) = data.get(&data_key).and_then(text) {
        return Some(value);
    }
    let recorded = secret.annotations().get(FINGERPRINT_ANNOTATION)?;
    data.values()
        .filter_map(text)
        .find(|value| value.fingerprint() == *recorded)
}

/// The provider key id recorded on a Secret.
pub fn secret_key_id(secret: &Secret) -> Option<&str> {
    secret.annotations().get(KEY_ID_ANNOTATION).map(String::as_str)
}

/// The Secret keysmith wants for `key`, holding `value` of provider key `key_id`.
pub fn desired_secret(
    key: &ApiKey,
    value: &SecretValue,
    key_id: Option<&str>,
    delivery: &Delivery,
) -> Secret {
    let (value_key, url_key) = secret_data_keys(key);
    let spec = key.spec.secret.clone().unwrap_or_default();
    let mut labels = spec.labels;
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(APIKEY_LABEL.into(), key.name_any());
    let mut annotations = spec.annotations;
    annotations.insert(FINGERPRINT_ANNOTATION.into(), value.fingerprint());
    if let Some(id) = key_id {
        annotations.insert(KEY_ID_ANNOTATION.into(), id.to_owned());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(key)),
            namespace: key.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: key.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some({
            let mut data: BTreeMap<String, ByteString> = delivery
                .published
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect();
            // Inserted last: the key and URL win should a user name their data keys like a published one.
            data.insert(url_key, ByteString(delivery.base_url.as_bytes().to_vec()));
            data.insert(value_key, ByteString(value.expose().as_bytes().to_vec()));
            data
        }),
        ..Default::default()
    }
}
