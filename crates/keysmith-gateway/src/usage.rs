//! Reading usage out of responses: a JSON body, or a server-sent event stream read as it passes.
//!
//! OpenAI-style streams carry usage in a last chunk (when asked with `stream_options.include_usage`),
//! the Responses API in `response.completed`, Anthropic in `message_start` (input, and output so far)
//! and `message_delta` (cumulative output). OpenRouter adds `usage.cost` in USD.

use serde_json::Value;

use crate::enforce::Usage;

/// Usage in one JSON object (a whole response or one event), wherever the provider puts it.
pub fn usage_in(value: &Value) -> Option<Usage> {
    let usage = value
        .get("usage")
        .or_else(|| value.pointer("/message/usage"))
        .or_else(|| value.pointer("/response/usage"))?;
    let n = |key: &str| usage.get(key).and_then(Value::as_u64);
    // OpenAI reports cached tokens inside prompt_tokens; Anthropic reports them beside input_tokens.
    let input = n("prompt_tokens").or_else(|| {
        let base = n("input_tokens")?;
        let cache = if usage.get("input_tokens_details").is_some() {
            0 // Responses API: cached tokens are already part of input_tokens.
        } else {
            n("cache_creation_input_tokens").unwrap_or(0) + n("cache_read_input_tokens").unwrap_or(0)
        };
        Some(base + cache)
    });
    let output = n("completion_tokens").or_else(|| n("output_tokens"));
    let cost = usage.get("cost").and_then(Value::as_f64);
    if input.is_none() && output.is_none() && cost.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cost_usd: cost,
    })
}

/// Usage of a complete JSON response body.
pub fn usage_in_body(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(usage_in)
}

/// Longest SSE line kept while looking for usage; longer lines (huge content deltas) are skipped,
/// they never carry usage alone.
const MAX_LINE: usize = 1 << 20;

/// Reads usage from an event stream fed chunk by chunk, in whatever pieces the network delivers.
#[derive(Debug, Default)]
pub struct SseUsage {
    line: Vec<u8>,
    skipping: bool,
    usage: Option<Usage>,
}

impl SseUsage {
    /// Feeds the next chunk.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(nl) = chunk.iter().position(|b| *b == b'\n') {
            if !self.skipping {
                self.line.extend_from_slice(&chunk[..nl]);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
            }
            self.line.clear();
            self.skipping = false;
            chunk = &chunk[nl + 1..];
        }
        if !self.skipping {
            self.line.extend_from_slice(chunk);
            if self.line.len() > MAX_LINE {
                self.line = Vec::new();
                self.skipping = true;
            }
        }
    }

    /// The usage seen so far (the stream's final figures once it has ended).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn line_done(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        // Parsing every delta would cost more than the proxying; only events naming usage are read.
        if !contains(data, b"\"usage\"") {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return;
        };
        if let Some(seen) = usage_in(&event) {
            // Anthropic repeats figures cumulatively; keep the largest of each and the latest cost.
            let prev = self.usage.unwrap_or_default();
            self.usage = Some(Usage {
                input: prev.input.max(seen.input),
                output: prev.output.max(seen.output),
                cost_usd: seen.cost_usd.or(prev.cost_usd),
            });
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_and_openrouter_bodies() {
        let u = usage_in_body(
            br#"{"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"cost":0.0012}}"#,
        );
        assert_eq!(
            u,
            Some(Usage {
                input: 12,
                output: 5,
                cost_usd: Some(0.0012)
            })
        );
        let emb = usage_in_body(br#"{"usage":{"prompt_tokens":8,"total_tokens":8}}"#).unwrap();
        assert_eq!((emb.input, emb.output), (8, 0));
        assert_eq!(usage_in_body(br#"{"id":"x"}"#), None);
        assert_eq!(usage_in_body(b"not json"), None);
    }

    #[test]
    fn anthropic_bodies_add_cache_tokens_and_responses_bodies_do_not() {
        let a = usage_in_body(
            br#"{"usage":{"input_tokens":10,"cache_read_input_tokens":90,"cache_creation_input_tokens":5,"output_tokens":3}}"#,
        );
        assert_eq!(a.map(|u| (u.input, u.output)), Some((105, 3)));
        let r = usage_in_body(
            br#"{"usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":80},"output_tokens":7}}"#,
        );
        assert_eq!(r.map(|u| (u.input, u.output)), Some((100, 7)));
    }

    #[test]
    fn an_openai_stream_reports_the_final_usage_chunk_split_anywhere() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"cost\":0.5}}\n\n",
            "data: [DONE]\n\n"
        )
        .as_bytes();
        for split in [1, 7, 13, 64] {
            let mut sse = SseUsage::default();
            for piece in stream.chunks(split) {
                sse.feed(piece);
            }
            assert_eq!(
                sse.usage(),
                Some(Usage {
                    input: 9,
                    output: 2,
                    cost_usd: Some(0.5)
                }),
                "split {split}"
            );
        }
    }

    #[test]
    fn an_anthropic_stream_combines_message_start_and_delta() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"usage\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
        );
        let mut sse = SseUsage::default();
        sse.feed(stream.as_bytes());
        assert_eq!(sse.usage().map(|u| (u.input, u.output)), Some((25, 15)));
    }

    #[test]
    fn a_responses_stream_reports_response_completed() {
        let mut sse = SseUsage::default();
        sse.feed(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":6}}}\n");
        assert_eq!(sse.usage().map(|u| (u.input, u.output)), Some((4, 6)));
    }

    #[test]
    fn an_oversized_line_is_skipped_without_growing_memory() {
        let mut sse = SseUsage::default();
        sse.feed(b"data: ");
        sse.feed(&vec![b'x'; MAX_LINE + 10]);
        assert!(sse.line.is_empty());
        sse.feed(b"more\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n");
        assert_eq!(sse.usage().map(|u| u.input), Some(1));
    }
}
