//! What the gateway needs to know about a request body, and the two edits it may make to it.

use keysmith_api::gateway_route::GatewayApi;
use serde_json::{Map, Value};

use crate::tokens::InputParts;

/// The kind of call, by path under the route's base URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// OpenAI `chat/completions`.
    ChatCompletions,
    /// OpenAI legacy `completions`.
    Completions,
    /// OpenAI `responses`.
    Responses,
    /// OpenAI `embeddings` (input only).
    Embeddings,
    /// Anthropic `messages`.
    Messages,
    /// Anything else (`models`, files, ...): passed through, counted as a request.
    Other,
}

impl Endpoint {
    /// Classifies `path` (relative to the base URL, no leading slash) for a route speaking `api`.
    pub fn classify(api: GatewayApi, method: &http::Method, path: &str) -> Self {
        if method != http::Method::POST {
            return Endpoint::Other;
        }
        match (api, path.trim_end_matches('/')) {
            (GatewayApi::Openai, "chat/completions") => Endpoint::ChatCompletions,
            (GatewayApi::Openai, "completions") => Endpoint::Completions,
            (GatewayApi::Openai, "responses") => Endpoint::Responses,
            (GatewayApi::Openai, "embeddings") => Endpoint::Embeddings,
            (GatewayApi::Anthropic, "messages") => Endpoint::Messages,
            _ => Endpoint::Other,
        }
    }

    /// Whether the gateway reads the body and meters tokens.
    pub fn is_metered(self) -> bool {
        self != Endpoint::Other
    }

    /// The body fields that name the output maximum, the first being the one the gateway writes.
    fn output_fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::ChatCompletions => &["max_completion_tokens", "max_tokens"],
            Endpoint::Completions | Endpoint::Messages => &["max_tokens"],
            Endpoint::Responses => &["max_output_tokens"],
            Endpoint::Embeddings | Endpoint::Other => &[],
        }
    }

    /// Whether the endpoint produces output tokens at all.
    pub fn has_output(self) -> bool {
        !self.output_fields().is_empty()
    }
}

/// Facts read from a metered request body.
#[derive(Debug, PartialEq)]
pub struct RequestFacts<'a> {
    /// The `model` field.
    pub model: Option<&'a str>,
    /// Whether the response will be a server-sent event stream.
    pub stream: bool,
    /// The largest output maximum the request names.
    pub requested_output: Option<u64>,
    /// The input to count.
    pub input: InputParts<'a>,
}

/// Reads the facts of a parsed body.
pub fn facts(endpoint: Endpoint, body: &Value) -> RequestFacts<'_> {
    let model = body.get("model").and_then(Value::as_str);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let requested_output = endpoint
        .output_fields()
        .iter()
        .filter_map(|f| body.get(*f).and_then(Value::as_u64))
        .max();
    let mut input = InputParts::default();
    let (texts, messages, structured): (&[&str], &[&str], &[&str]) = match endpoint {
        Endpoint::ChatCompletions => (&[], &["messages"], &["tools", "functions", "response_format"]),
        Endpoint::Completions => (&["prompt", "suffix"], &[], &[]),
        Endpoint::Responses => (&["instructions"], &["input"], &["tools", "text"]),
        Endpoint::Embeddings => (&["input"], &[], &[]),
        Endpoint::Messages => (&["system"], &["messages"], &["tools"]),
        Endpoint::Other => (&[], &[], &[]),
    };
    for field in texts {
        if let Some(v) = body.get(*field) {
            walk(v, &mut input);
        }
    }
    for field in messages {
        match body.get(*field) {
            Some(Value::Array(items)) => {
                input.messages += items.len() as u64;
                for item in items {
                    walk(item, &mut input);
                }
            }
            Some(v) => walk(v, &mut input),
            None => {}
        }
    }
    for field in structured {
        if let Some(v) = body.get(*field) {
            input.structured_bytes += serde_json::to_string(v).map_or(0, |s| s.len() as u64);
        }
    }
    RequestFacts {
        model,
        stream,
        requested_output,
        input,
    }
}

/// Collects the text of `value`, charging images and files as attachments instead of reading their
/// data (a base64 image is megabytes of bytes but a bounded number of tokens).
fn walk<'a>(value: &'a Value, out: &mut InputParts<'a>) {
    match value {
        Value::String(s) => out.texts.push(s),
        Value::Number(_) => out.token_ids += 1,
        Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
        Value::Object(map) => {
            if is_attachment(map) {
                out.attachments += 1;
                return;
            }
            for (key, v) in map {
                // Framing values, not text the model reads as content.
                if matches!(
                    key.as_str(),
                    "type" | "cache_control" | "id" | "tool_call_id" | "tool_use_id"
                ) {
                    continue;
                }
                walk(v, out);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn is_attachment(map: &Map<String, Value>) -> bool {
    let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
    matches!(
        kind,
        "image_url"
            | "image"
            | "input_image"
            | "image_file"
            | "input_file"
            | "file"
            | "document"
            | "input_audio"
    ) || map.contains_key("image_url")
}

/// Edits the gateway makes to a body before forwarding it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// Write this output maximum (the request named none).
    pub output_cap: Option<u64>,
    /// Ask an OpenAI-style stream to end with a usage chunk.
    pub include_usage: bool,
}

impl Rewrite {
    /// Whether the body must be re-serialised.
    pub fn is_needed(&self) -> bool {
        self.output_cap.is_some() || self.include_usage
    }

    /// Applies the edits to `body`.
    pub fn apply(&self, endpoint: Endpoint, body: &mut Value) {
        let Some(map) = body.as_object_mut() else {
            return;
        };
        if let (Some(cap), Some(field)) = (self.output_cap, endpoint.output_fields().first()) {
            map.insert((*field).to_owned(), Value::from(cap));
        }
        if self.include_usage {
            let options = map
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".to_owned(), Value::Bool(true));
            }
        }
    }
}

/// Whether an OpenAI-style stream needs `stream_options.include_usage` to report usage (the
/// Responses API and Anthropic always report it).
pub fn needs_usage_option(endpoint: Endpoint, body: &Value) -> bool {
    matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
        && body.get("stream").and_then(Value::as_bool) == Some(true)
        && body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            != Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_are_classified_per_api() {
        let post = http::Method::POST;
        assert_eq!(
            Endpoint::classify(GatewayApi::Openai, &post, "chat/completions"),
            Endpoint::ChatCompletions
        );
        assert_eq!(
            Endpoint::classify(GatewayApi::Anthropic, &post, "messages"),
            Endpoint::Messages
        );
        assert_eq!(
            Endpoint::classify(GatewayApi::Openai, &post, "messages"),
            Endpoint::Other
        );
        assert_eq!(
            Endpoint::classify(GatewayApi::Openai, &http::Method::GET, "models"),
            Endpoint::Other
        );
    }

    #[test]
    fn chat_facts_collect_text_and_skip_image_data() {
        let body = json!({
            "model": "gpt-4o", "stream": true, "max_tokens": 50, "max_completion_tokens": 70,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}]
        });
        let f = facts(Endpoint::ChatCompletions, &body);
        assert_eq!(f.model, Some("gpt-4o"));
        assert!(f.stream);
        assert_eq!(f.requested_output, Some(70));
        // serde_json orders keys, so `content` comes before `role`.
        assert_eq!(
            f.input.texts,
            vec!["Be brief.", "system", "What is this?", "user"]
        );
        assert_eq!(f.input.messages, 2);
        assert_eq!(f.input.attachments, 1);
        assert!(f.input.structured_bytes > 0);
    }

    #[test]
    fn anthropic_facts_read_system_blocks_and_max_tokens() {
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 1024,
            "system": [{"type": "text", "text": "Policy.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Hi"}]
        });
        let f = facts(Endpoint::Messages, &body);
        assert_eq!(f.requested_output, Some(1024));
        assert_eq!(f.input.texts, vec!["Policy.", "Hi", "user"]);
    }

    #[test]
    fn token_id_prompts_count_one_per_id() {
        let body = json!({"model": "x", "prompt": [1, 2, 3]});
        let f = facts(Endpoint::Completions, &body);
        assert_eq!(f.input.token_ids, 3);
        assert_eq!(f.requested_output, None);
    }

    #[test]
    fn the_rewrite_injects_the_cap_and_the_usage_option() {
        let mut body = json!({"model": "m", "stream": true, "messages": []});
        assert!(needs_usage_option(Endpoint::ChatCompletions, &body));
        let rw = Rewrite {
            output_cap: Some(64),
            include_usage: true,
        };
        rw.apply(Endpoint::ChatCompletions, &mut body);
        assert_eq!(body["max_completion_tokens"], 64);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(!needs_usage_option(Endpoint::ChatCompletions, &body));
        let mut resp = json!({"model": "m", "input": "x"});
        Rewrite {
            output_cap: Some(9),
            include_usage: false,
        }
        .apply(Endpoint::Responses, &mut resp);
        assert_eq!(resp["max_output_tokens"], 9);
    }
}
