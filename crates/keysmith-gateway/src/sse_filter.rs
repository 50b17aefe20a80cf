//! Removes the usage-only chunk the gateway asked an OpenAI-style stream for, when the client did not
//! ask for it: some clients read `choices[0]` of every chunk and would fail on its empty `choices`.
//!
//! Works line by line; only an incomplete line is held back until its end arrives, so the stream is
//! still relayed as it comes.

use bytes::{Bytes, BytesMut};

/// A line filter over an event stream.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    pending: BytesMut,
    dropping_event: bool,
}

impl UsageChunkFilter {
    /// The part of `chunk` to pass on now.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let Some(last_nl) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Bytes::new();
        };
        let complete = self.pending.split_to(last_nl + 1);
        let mut out = BytesMut::with_capacity(complete.len());
        for line in complete.split_inclusive(|b| *b == b'\n') {
            let blank = line.trim_ascii().is_empty();
            if self.dropping_event {
                // The usage event ends at its blank line, which goes with it.
                self.dropping_event = !blank;
                continue;
            }
            if is_usage_only(line) {
                self.dropping_event = true;
                continue;
            }
            out.extend_from_slice(line);
        }
        out.freeze()
    }

    /// What is left when the stream ends (a last line without a newline).
    pub fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.pending).freeze()
    }
}

fn is_usage_only(line: &[u8]) -> bool {
    let Some(data) = line.strip_prefix(b"data:") else {
        return false;
    };
    if !data.windows(7).any(|w| w == b"\"usage\"") {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(data.trim_ascii()).is_ok_and(|v| {
        v.get("choices")
            .and_then(|c| c.as_array())
            .is_some_and(Vec::is_empty)
            && v.get("usage").is_some_and(|u| !u.is_null())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn the_usage_only_event_is_removed_wherever_the_chunks_split() {
        let want = "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\ndata: [DONE]\n\n";
        for split in [1, 5, 17, 1000] {
            let mut f = UsageChunkFilter::default();
            let mut out = Vec::new();
            for piece in STREAM.as_bytes().chunks(split) {
                out.extend_from_slice(&f.feed(piece));
            }
            out.extend_from_slice(&f.finish());
            assert_eq!(String::from_utf8(out).unwrap(), want, "split {split}");
        }
    }

    #[test]
    fn complete_lines_pass_at_once_and_a_partial_line_waits() {
        let mut f = UsageChunkFilter::default();
        assert_eq!(
            &f.feed(b"data: {\"a\":1}\n\ndata: {\"b\""),
            &b"data: {\"a\":1}\n\n"[..]
        );
        assert_eq!(&f.feed(b":2}\n"), &b"data: {\"b\":2}\n"[..]);
    }
}
