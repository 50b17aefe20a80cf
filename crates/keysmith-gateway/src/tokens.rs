//! Input token counts before a request is sent: exact for OpenAI models when the tokenizer is enabled,
//! an upper bound otherwise.
//!
//! The bound: every byte-level BPE (OpenAI, Llama 3, Qwen, DeepSeek) and every SentencePiece model
//! with byte fallback (Llama 2, Gemma, Mistral) emits tokens of at least one byte, so a text of `n`
//! UTF-8 bytes has at most `n` tokens. To that come the chat template's tokens around each message
//! (at most [`MESSAGE_OVERHEAD_BOUND`]) and a few for priming the reply. Images and files are not text:
//! each is charged [`ATTACHMENT_ALLOWANCE`] tokens, an estimate rather than a bound (providers size
//! them by pixels and pages), and tool definitions by the length of their JSON. Provider-reported
//! counts settle the difference after the response.
//!
//! Memory: the o200k vocabulary costs about 24 MiB of resident memory once loaded (cl100k about 12;
//! measured with the `tiktoken` crate, against about 46 MiB for `tiktoken-rs`). The gateway itself
//! runs in about 10 MiB at 1,000 requests/s, and about 37 MiB with o200k loaded, over the 32 MiB
//! budget, so the exact count is opt-in ([`TokenizerMode::Exact`]). A vocabulary loads on first use,
//! on a thread of its own; requests meanwhile get the bound rather than wait ~200 ms.

use std::sync::atomic::{AtomicU8, Ordering};

/// Tokens of chat-template framing around one message in the bound.
pub const MESSAGE_OVERHEAD_BOUND: u64 = 8;
/// Tokens charged per image or file in a request.
pub const ATTACHMENT_ALLOWANCE: u64 = 4_096;
/// Tokens OpenAI adds per chat message (the count cookbook's `tokens_per_message`).
const OPENAI_PER_MESSAGE: u64 = 3;
/// Tokens OpenAI adds to prime the reply.
const OPENAI_REPLY_PRIMING: u64 = 3;

/// How input tokens are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenizerMode {
    /// The byte bound for every model: no vocabulary in memory.
    #[default]
    Bound,
    /// Exact counts for models with an OpenAI vocabulary, the bound for the rest.
    Exact,
}

/// The countable parts of a request's input, borrowed from its JSON.
#[derive(Debug, Default, PartialEq)]
pub struct InputParts<'a> {
    /// Text the model reads.
    pub texts: Vec<&'a str>,
    /// Chat messages (each adds template framing).
    pub messages: u64,
    /// Images and files.
    pub attachments: u64,
    /// Token ids given directly (`prompt: [1, 2, 3]`), one token each.
    pub token_ids: u64,
    /// JSON length of tool definitions and response formats.
    pub structured_bytes: u64,
}

/// An input count and whether it is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputCount {
    /// Tokens (exact, or at least the real count).
    pub tokens: u64,
    /// Whether `tokens` is the provider's count rather than a bound.
    pub exact: bool,
}

/// The byte bound of `parts`.
pub fn bound(parts: &InputParts<'_>) -> u64 {
    let text: u64 = parts.texts.iter().map(|t| t.len() as u64).sum();
    text + parts.messages * MESSAGE_OVERHEAD_BOUND
        + OPENAI_REPLY_PRIMING
        + parts.attachments * ATTACHMENT_ALLOWANCE
        + parts.token_ids
        + parts.structured_bytes
}

/// The vocabulary an OpenAI model (`gpt-4o`, `openai/gpt-4.1-mini`, `o3`, `gpt-3.5-turbo`, ...) uses,
/// if this build carries it.
fn encoding_of(model: &str) -> Option<(&'static str, &'static AtomicU8)> {
    let model = model.strip_prefix("openai/").unwrap_or(model);
    match tiktoken::model_to_encoding(model)? {
        "o200k_base" => Some(("o200k_base", &O200K)),
        "cl100k_base" => Some(("cl100k_base", &CL100K)),
        _ => None,
    }
}

const IDLE: u8 = 0;
const LOADING: u8 = 1;
const READY: u8 = 2;
static O200K: AtomicU8 = AtomicU8::new(IDLE);
static CL100K: AtomicU8 = AtomicU8::new(IDLE);

/// The tokenizer of an OpenAI model, loading its vocabulary now if needed (about 200 ms for o200k).
pub fn openai_tokenizer(model: &str) -> Option<&'static tiktoken::CoreBpe> {
    let (name, state) = encoding_of(model)?;
    let bpe = tiktoken::get_encoding(name);
    state.store(READY, Ordering::Release);
    bpe
}

/// The tokenizer of an OpenAI model if its vocabulary is loaded. Otherwise the first caller starts
/// loading it on a thread of its own and every caller gets `None` (and so the bound) meanwhile: a
/// request never waits for a vocabulary.
fn loaded_tokenizer(model: &str) -> Option<&'static tiktoken::CoreBpe> {
    let (name, state) = encoding_of(model)?;
    match state.load(Ordering::Acquire) {
        READY => tiktoken::get_encoding(name),
        IDLE if state
            .compare_exchange(IDLE, LOADING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok() =>
        {
            std::thread::spawn(move || {
                let _ = tiktoken::get_encoding(name);
                state.store(READY, Ordering::Release);
            });
            None
        }
        _ => None,
    }
}

/// Counts `parts` for `model`. With `want_exact` (and [`TokenizerMode::Exact`]) an OpenAI model's
/// text is tokenized; otherwise the bound is returned without touching a vocabulary.
pub fn count(
    mode: TokenizerMode,
    model: Option<&str>,
    parts: &InputParts<'_>,
    want_exact: bool,
) -> InputCount {
    let upper = bound(parts);
    let tokenizer = match (mode, want_exact, model) {
        (TokenizerMode::Exact, true, Some(model)) => loaded_tokenizer(model),
        _ => None,
    };
    let Some(bpe) = tokenizer else {
        return InputCount {
            tokens: upper,
            exact: false,
        };
    };
    let text: u64 = parts.texts.iter().map(|t| bpe.count(t) as u64).sum();
    let framing = if parts.messages > 0 {
        parts.messages * OPENAI_PER_MESSAGE + OPENAI_REPLY_PRIMING
    } else {
        0
    };
    InputCount {
        tokens: text
            + framing
            + parts.token_ids
            + parts.attachments * ATTACHMENT_ALLOWANCE
            + parts.structured_bytes,
        exact: parts.attachments == 0 && parts.structured_bytes == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(texts: Vec<&str>, messages: u64) -> InputParts<'_> {
        InputParts {
            texts,
            messages,
            ..Default::default()
        }
    }

    #[test]
    fn the_bound_is_bytes_plus_framing() {
        let parts = chat(vec!["user", "héllo"], 1);
        assert_eq!(bound(&parts), 4 + 6 + MESSAGE_OVERHEAD_BOUND + 3);
    }

    #[test]
    fn the_bound_is_never_below_the_exact_count() {
        let samples = [
            "The quick brown fox jumps over the lazy dog.",
            "日本語のテキストはバイトが多い",
            "    indented code();\n\t\treturn x == y;",
            "emoji 🎉🎉🎉 and ZWJ 👩‍👩‍👧",
            "a",
        ];
        for text in samples {
            for model in ["gpt-4o", "gpt-3.5-turbo"] {
                let exact = openai_tokenizer(model).unwrap().count(text) as u64;
                assert!(exact <= text.len() as u64, "{model} {text:?}: {exact}");
            }
        }
    }

    #[test]
    fn openai_chat_is_counted_like_the_cookbook() {
        // The cookbook's formula: 3 per message, every value encoded, 3 to prime the reply.
        let parts = chat(vec!["system", "You are terse.", "user", "Say hi."], 2);
        let bpe = openai_tokenizer("gpt-4o").unwrap();
        let got = count(TokenizerMode::Exact, Some("gpt-4o"), &parts, true);
        let text: usize = parts.texts.iter().map(|t| bpe.count(t)).sum();
        assert_eq!(got.tokens, text as u64 + 2 * 3 + 3);
        assert!(got.exact);
    }

    #[test]
    fn openrouter_names_and_legacy_models_find_their_vocabulary() {
        assert!(openai_tokenizer("openai/gpt-4o-mini").is_some());
        assert!(openai_tokenizer("gpt-4-turbo").is_some());
        assert!(openai_tokenizer("claude-sonnet-4-5").is_none());
        assert!(openai_tokenizer("meta-llama/llama-3.1-8b-instruct").is_none());
    }

    #[test]
    fn a_vocabulary_not_yet_loaded_gives_the_bound_while_it_loads() {
        let parts = chat(vec!["user", "hello there"], 1);
        let first = count(TokenizerMode::Exact, Some("gpt-3.5-turbo"), &parts, true);
        if CL100K.load(Ordering::Acquire) != READY {
            assert_eq!(
                first,
                InputCount {
                    tokens: bound(&parts),
                    exact: false
                }
            );
        }
        openai_tokenizer("gpt-3.5-turbo").unwrap();
        assert!(count(TokenizerMode::Exact, Some("gpt-3.5-turbo"), &parts, true).exact);
    }

    #[test]
    fn other_models_and_bound_mode_get_the_bound() {
        let parts = chat(vec!["user", "hello there"], 1);
        let claude = count(TokenizerMode::Exact, Some("claude-sonnet-4-5"), &parts, true);
        assert_eq!(
            claude,
            InputCount {
                tokens: bound(&parts),
                exact: false
            }
        );
        let cheap = count(TokenizerMode::Bound, Some("gpt-4o"), &parts, true);
        assert_eq!(
            cheap,
            InputCount {
                tokens: bound(&parts),
                exact: false
            }
        );
    }

    #[test]
    fn attachments_are_charged_an_allowance_and_make_the_count_inexact() {
        let parts = InputParts {
            texts: vec!["user", "what is this?"],
            messages: 1,
            attachments: 2,
            ..Default::default()
        };
        let got = count(TokenizerMode::Exact, Some("gpt-4o"), &parts, true);
        assert!(!got.exact);
        assert!(got.tokens >= 2 * ATTACHMENT_ALLOWANCE);
    }
}
