//! Finding the route of the key a request presents.
//!
//! The presented key is hashed first and the hash looked up, so the time taken depends on the hash,
//! not on how much of a real key the caller guessed; the final comparison is constant-time as well.
//! The key itself is never stored, logged or compared.

use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::routes::{Route, RouteTable};

/// The key a request presents: `Authorization: Bearer` (OpenAI style) or `x-api-key` (Anthropic).
pub fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    let bearer = headers.get(http::header::AUTHORIZATION).and_then(|auth| {
        let value = auth.as_bytes();
        value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .map(<[u8]>::trim_ascii)
    });
    if let Some(token) = bearer {
        return Some(token).filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|t| !t.is_empty())
}

/// The route of a presented key, if it is one keysmith issued.
pub fn authenticate(table: &RouteTable, presented: &[u8]) -> Option<Arc<Route>> {
    let digest: [u8; 32] = Sha256::digest(presented).into();
    let route = table.lookup(&digest)?;
    route.admits(&digest).then_some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn bearer_and_x_api_key_are_both_read() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer sk-1")])),
            Some(&b"sk-1"[..])
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "sk-2")])),
            Some(&b"sk-2"[..])
        );
        assert_eq!(presented_key(&headers(&[("authorization", "Basic abc")])), None);
        let both = headers(&[("authorization", "Basic abc"), ("x-api-key", "sk-3")]);
        assert_eq!(presented_key(&both), Some(&b"sk-3"[..]));
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
