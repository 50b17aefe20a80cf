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
}
