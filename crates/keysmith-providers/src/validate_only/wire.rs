//! The model list and error bodies of OpenAI-style inference APIs (`providers.md` §6 for Together).
//! Only what proves a key works is read: the list's shape, never its models.

use serde::Deserialize;
use serde_json::Value;

/// How a server lays out `GET /v1/models`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelsShape {
    /// A bare JSON array of models (Together).
    BareArray,
    /// OpenAI's envelope, `{"object": "list", "data": [...]}`.
    Envelope,
}

/// Checks that `body` is a model list. Either shape is accepted whatever the flavor promises: servers
/// that speak "the OpenAI API" differ in small ways, and a working key is what matters. Returns how
/// many models were listed.
pub(super) fn model_count(body: &[u8]) -> Result<usize, ModelsError> {
    let value: Value = serde_json::from_slice(body).map_err(ModelsError::Json)?;
    match value {
        Value::Array(models) => Ok(models.len()),
        Value::Object(mut fields) => match fields.remove("data") {
            Some(Value::Array(models)) => Ok(models.len()),
            _ => Err(ModelsError::Shape),
        },
        _ => Err(ModelsError::Shape),
    }
}

/// Why a body is not a model list.
#[derive(Debug)]
pub(super) enum ModelsError {
    /// Not JSON at all.
    Json(serde_json::Error),
    /// JSON, but neither a bare array nor an object with a `data` array.
    Shape,
}

/// The error bodies these servers send: OpenAI's and Together's `{"error": {"message": ...}}`, and the
/// flatter `{"message": ...}`, `{"detail": ...}` (FastAPI-based servers) or `{"error": "..."}` that
/// other OpenAI-compatible servers use.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorField>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    detail: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Detail {
        #[serde(default)]
        message: Option<String>,
    },
    Text(String),
}

/// The server's error message (unsanitized: the transport sanitizes it).
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    let body: ErrorBody = serde_json::from_slice(body).ok()?;
    let text = |value: Option<Value>| match value {
        Some(Value::String(text)) => Some(text),
        _ => None,
    };
    match body.error {
        Some(ErrorField::Detail {
            message: Some(message),
        }) => Some(message),
        Some(ErrorField::Text(message)) => Some(message),
        _ => text(body.message).or_else(|| text(body.detail)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bytes(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn togethers_bare_array_is_a_model_list() {
        let body = bytes(
            json!([{"id": "Austism/chronos-hermes-13b", "object": "model", "created": 1692896905,
            "type": "chat", "display_name": "Chronos Hermes (13B)", "context_length": 2048,
            "pricing": {"hourly": 0, "input": 0.3, "output": 0.3, "base": 0, "finetune": 0}}]),
        );
        assert_eq!(model_count(&body).unwrap(), 1);
    }

    #[test]
    fn openais_envelope_is_a_model_list() {
        let body = bytes(json!({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
            {"id": "Qwen/Qwen2.5-7B-Instruct", "object": "model", "created": 1, "owned_by": "vllm"}]}));
        assert_eq!(model_count(&body).unwrap(), 2);
        assert_eq!(model_count(&bytes(json!({"data": []}))).unwrap(), 0);
    }

    #[test]
    fn anything_else_is_not_a_model_list() {
        for body in [
            json!({"object": "list"}),
            json!({"data": {}}),
            json!("ok"),
            json!(null),
        ] {
            assert!(matches!(model_count(&bytes(body)), Err(ModelsError::Shape)));
        }
        assert!(matches!(model_count(b"<html>"), Err(ModelsError::Json(_))));
    }

    #[test]
    fn error_messages_are_read_from_every_common_layout() {
        let cases = [
            (
                json!({"error": {"message": "Invalid API key provided.", "type": "invalid_request_error",
                    "param": null, "code": "invalid_api_key"}}),
                Some("Invalid API key provided."),
            ),
            (json!({"error": "unauthorized"}), Some("unauthorized")),
            (
                json!({"object": "error", "message": "bad key", "code": 401}),
                Some("bad key"),
            ),
            (json!({"detail": "Not authenticated"}), Some("Not authenticated")),
            (json!({"detail": [{"loc": ["x"]}]}), None),
            (json!({"error": {"type": "x"}}), None),
        ];
        for (body, want) in cases {
            assert_eq!(error_message(&bytes(body.clone())).as_deref(), want, "{body}");
        }
        assert_eq!(error_message(b"<html>"), None);
    }
}
