//! Base URLs of provider APIs: checked once when a client is built, then extended segment by segment
//! so that an identifier can never escape its path segment.

use reqwest::Url;

use super::{Error, Result};

/// Parses a hub's endpoint. Fails with [`Error::Config`] unless `text` is an absolute `http`/`https`
/// URL without credentials, query or fragment. The text is not echoed while unparsed, since it could
/// embed credentials.
pub fn base_url(text: &str) -> Result<Url> {
    let base = Url::parse(text.trim())
        .map_err(|err| Error::Config(format!("the endpoint is not a valid URL: {err}")))?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() || base.host().is_none() {
        return Err(Error::Config(format!(
            "endpoint {text:?} must be an http or https URL"
        )));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(Error::Config(
            "the endpoint URL must not embed credentials".into(),
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(Error::Config(format!(
            "endpoint {text:?} must not have a query or fragment"
        )));
    }
    Ok(base)
}

/// `base` followed by `segments`, each percent-encoded.
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
    fn only_plain_http_urls_are_accepted_and_credentials_are_never_echoed() {
        for bad in [
            "not a url",
            "ftp://example.com/x",
            "/v1",
            "https://example.com/?x=1",
        ] {
            assert!(matches!(base_url(bad), Err(Error::Config(_))), "{bad}");
        }
        let err = base_url("https://user:hunter2@example.com").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(base_url("http://127.0.0.1:8080").is_ok());
    }

    #[test]
    fn identifiers_stay_inside_their_segment() {
        let base = base_url("https://api.example.com/root/").unwrap();
        let url = join(&base, &["keys", "../admin"]).unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/root/keys/..%2Fadmin");
    }
}
