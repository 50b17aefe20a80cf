//! The tag keysmith puts in a provider-side key name, `name [ks:<apikey uid>/<nonce>]`: it finds every
//! key an ApiKey ever made, even one whose create answer a crash lost.

/// Prefix of the tag keysmith puts in provider-side key names.
pub const TAG_PREFIX: &str = "ks:";

/// The tag for one create attempt: `ks:<apikey uid>/<nonce>`. The uid finds every key an ApiKey ever
/// made (even after a crash lost the provider's answer); the nonce tells attempts apart.
pub fn attempt_tag(uid: &str, nonce: &str) -> String {
    format!("{TAG_PREFIX}{uid}/{nonce}")
}

/// The uid part of a provider-side name carrying keysmith's tag, if any.
pub fn tagged_uid(provider_name: &str) -> Option<&str> {
    let start = provider_name.rfind(&format!("[{TAG_PREFIX}"))? + 1 + TAG_PREFIX.len();
    let rest = &provider_name[start..];
    let end = rest.find('/')?;
    rest.ends_with(']').then(|| &rest[..end])
}

/// Name at the provider: the display name followed by the attempt tag.
pub fn provider_key_name(display_name: &str, tag: &str) -> String {
    format!("{display_name} [{tag}]")
}

/// The tag inside a provider-side name, if any.
pub fn name_tag(provider_name: &str) -> Option<&str> {
    let start = provider_name.rfind(&format!("[{TAG_PREFIX}"))? + 1;
    provider_name[start..].strip_suffix(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_through_provider_names() {
        let tag = attempt_tag("0b5c-uid", "n1");
        let name = provider_key_name("team-a/app", &tag);
        assert_eq!(name, "team-a/app [ks:0b5c-uid/n1]");
        assert_eq!(tagged_uid(&name), Some("0b5c-uid"));
        assert_eq!(name_tag(&name), Some("ks:0b5c-uid/n1"));
        assert_eq!(tagged_uid("someone else's key"), None);
        assert_eq!(tagged_uid("[ks:broken"), None);
    }
}
