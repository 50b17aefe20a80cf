//! Base URLs of provider APIs: checked once when a client is built, then extended segment by segment
//! so that an identifier can never escape its path segment.

use reqwest::Url;

use super::{Error, Result};

/// Parses `text` as the base URL of `what` (e.g. "the endpoint", "the inference endpoint"). Fails
/// with [`Error::Config`] unless it is an absolute `http`/`https` URL without credentials, query or
/// fragment.
pub fn parse(text: &str, what: &str) -> Result<Url> {
    // The text is not echoed while unparsed: it could embed credentials.
    let url =
        Url::parse(text.trim()).map_err(|err| Error::Config(format!("{what} is not a valid URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::Config(format!(
            "{what} {text:?} must be an http or https URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL itself holds a credential.
        return Err(Error::Config(format!("{what} must not embed credentials")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "{what} {text:?} must not have a query or fragment"
        )));
    }
    Ok(url)
}

/// `base` followed by `segments`, each percent-encoded (so `"../x"` stays one segment), without
/// doubling a trailing slash of `base`.
pub fn join(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::Config("the endpoint URL cannot take a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_without_credentials_query_or_fragment_pass() {
        for bad in [
            "not a url",
            "ftp://example.com/api",
            "/v1",
            "https://example.com/?x=1",
            "https://example.com/api?x=1",
            "https://example.com/api#frag",
        ] {
            assert!(
                matches!(parse(bad, "the endpoint"), Err(Error::Config(_))),
                "{bad}"
            );
        }
        for good in [
            "https://api.digitalocean.com",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/v1/",
            " https://x.test/v1 ",
        ] {
            parse(good, "the endpoint").unwrap();
        }
    }

    #[test]
    fn credentials_are_never_echoed_and_errors_name_what_was_parsed() {
        let err = parse("https://user:hunter2@example.com/", "the inference endpoint").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("the inference endpoint"), "{err}");
    }

    #[test]
    fn joined_segments_are_encoded_and_trailing_slashes_do_not_double() {
        let base = parse("http://127.0.0.1:1/v1/", "the endpoint").unwrap();
        assert_eq!(
            join(&base, &["models"]).unwrap().as_str(),
            "http://127.0.0.1:1/v1/models"
        );
        let base = parse("https://api.digitalocean.com", "the endpoint").unwrap();
        assert_eq!(
            join(&base, &["v2", "gen-ai", "models", "api_keys", "../x"])
                .unwrap()
                .as_str(),
            "https://api.digitalocean.com/v2/gen-ai/models/api_keys/..%2Fx"
        );
        let base = parse("https://api.example.com/root/", "the endpoint").unwrap();
        let url = join(&base, &["keys", "../admin"]).unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/root/keys/..%2Fadmin");
    }
}
