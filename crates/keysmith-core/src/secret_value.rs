//! A key value that cannot leak through `Debug`, `Display` or serialisation by accident.

use sha2::{Digest, Sha256};

/// A secret string (an API key). Its `Debug` prints a redaction marker, it implements neither
/// `Display` nor `Serialize`, and reading it takes an explicit call to [`SecretValue::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for the few places that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 16 hex characters of the value's SHA-256: tells keys apart without revealing them.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(digest)[..16].to_owned()
    }

    /// Lower-case hex of the value's whole SHA-256: what a gateway stores to recognise a key it never
    /// holds.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// A second secret derived from this one, one-way and separated by `domain`: whoever holds the
    /// derived value learns nothing of this one, and the same value always derives the same secret,
    /// so it needs no storage of its own. `prefix` starts the result (e.g. `ksg-`).
    pub fn derive(&self, domain: &str, prefix: &str) -> SecretValue {
        let mut hasher = Sha256::new();
        hasher.update(domain.as_bytes());
        hasher.update([0u8]);
        hasher.update(self.0.as_bytes());
        SecretValue(format!("{prefix}{}", hex::encode(hasher.finalize())))
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let value = SecretValue::new("sk-or-v1-abcdef");
        assert_eq!(format!("{value:?}"), "SecretValue(<redacted>)");
        assert!(!format!("{:?}", Some(&value)).contains("abcdef"));
    }

    #[test]
    fn fingerprint_is_a_short_stable_hash() {
        let a = SecretValue::new("one");
        assert_eq!(a.fingerprint().len(), 16);
        assert_eq!(a.fingerprint(), SecretValue::new("one").fingerprint());
        assert_ne!(a.fingerprint(), SecretValue::new("two").fingerprint());
    }

    #[test]
    fn a_derived_secret_is_stable_separated_by_domain_and_unlike_its_source() {
        let value = SecretValue::new("sk-provider-key");
        let issued = value.derive("gateway", "ksg-");
        assert_eq!(issued, value.derive("gateway", "ksg-"));
        assert_ne!(issued, value.derive("other", "ksg-"));
        assert!(issued.expose().starts_with("ksg-") && issued.expose().len() == 4 + 64);
        assert!(!issued.expose().contains("sk-provider-key"));
        assert_eq!(value.sha256_hex().len(), 64);
        assert!(value.sha256_hex().starts_with(&value.fingerprint()));
    }
}
