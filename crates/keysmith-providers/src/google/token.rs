//! OAuth2 access tokens from a service-account JSON key: the JWT bearer grant (RFC 7523) signed
//! with RS256, as Google's "OAuth 2.0 for Server to Server Applications" describes. Tokens are cached
//! until shortly before they expire, and one fetch serves every caller waiting for it.

use std::time::Duration;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jiff::Timestamp;
use reqwest::Url;
use ring::{rand::SystemRandom, signature};
use serde::Deserialize;
use serde_json::json;
use tokio::{sync::Mutex, time::Instant};

use crate::Error;
use crate::Result;
use crate::SecretValue;
use crate::http::{Call, Transport, decode_error};

/// Google's token endpoint.
pub const DEFAULT_TOKEN_ENDPOINT: &str = "https://oauth2.googleapis.com/token";

/// The scope keysmith asks for: the API Keys API needs it for create, patch, delete and undelete.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The `grant_type` of the JWT bearer flow.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Lifetime of an assertion; Google accepts at most an hour.
const ASSERTION_LIFETIME_SECONDS: i64 = 3600;

/// How long before its expiry a cached token is replaced, so no call starts with a token that
/// expires in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A service account's identity and signing key, from its JSON key file.
pub(super) struct ServiceAccount {
    pub client_email: String,
    key_id: Option<String>,
    key_pair: signature::RsaKeyPair,
    pub token_uri: Option<String>,
    pub project_id: Option<String>,
}

// Never the key.
impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// The fields of a service-account JSON key keysmith reads. No `Debug`: it holds the private key.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

fn invalid(what: &str) -> Error {
    // Never quotes the credential: it is a private key.
    Error::Config(format!(
        "the credential is not a usable service-account JSON key: {what}"
    ))
}

impl ServiceAccount {
    /// Reads a service-account JSON key (`type: service_account`).
    pub fn parse(credential: &SecretValue) -> Result<Self> {
        let file: KeyFile = serde_json::from_str(credential.expose()).map_err(|err| {
            let Error::Decode(why) = decode_error(&err) else {
                return invalid("not JSON");
            };
            invalid(&why)
        })?;
        if file.kind.as_deref().is_some_and(|kind| kind != "service_account") {
            return Err(invalid("its type is not service_account"));
        }
        let client_email = file
            .client_email
            .filter(|email| !email.trim().is_empty())
            .ok_or_else(|| invalid("client_email is missing"))?;
        let pem = file
            .private_key
            .ok_or_else(|| invalid("private_key is missing"))?;
        Ok(Self {
            client_email,
            key_id: file.private_key_id.filter(|id| !id.is_empty()),
            key_pair: rsa_key_pair(&pem)?,
            token_uri: file.token_uri.filter(|uri| !uri.trim().is_empty()),
            project_id: file.project_id.filter(|id| !id.trim().is_empty()),
        })
    }

    /// A signed JWT asking `audience` (the token endpoint) for a token with [`SCOPE`], valid from
    /// `now` for an hour.
    pub fn assertion(&self, audience: &str, now: Timestamp) -> Result<SecretValue> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let iat = now.as_second();
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": audience,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECONDS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::Config("signing the token request failed".into()))?;
        Ok(SecretValue::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// The RSA key of a PEM block: PKCS#8 (`PRIVATE KEY`, what Google issues) or PKCS#1 (`RSA PRIVATE
/// KEY`).
fn rsa_key_pair(pem: &str) -> Result<signature::RsaKeyPair> {
    let (label, der) = pem_body(pem).ok_or_else(|| invalid("private_key is not a PEM block"))?;
    let parsed = match label {
        "PRIVATE KEY" => signature::RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => signature::RsaKeyPair::from_der(&der),
        _ => return Err(invalid("private_key is not an RSA private key")),
    };
    // ring's rejection names only the kind of problem, never key material.
    parsed.map_err(|rejected| invalid(&format!("private_key was rejected ({rejected})")))
}

/// The label and decoded body of the first PEM block in `text`.
fn pem_body(text: &str) -> Option<(&str, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body_and_end = &rest[label_end + "-----".len()..];
    let end = body_and_end.find(&format!("-----END {label}-----"))?;
    let body: String = body_and_end[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).ok().map(|der| (label, der))
}

/// A token endpoint's answer. No `Debug`: it holds the token.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// An OAuth2 error body: `{"error":"invalid_grant","error_description":"..."}`.
#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `error: error_description` of an OAuth2 error body (unsanitized: the transport sanitizes it).
pub(super) fn oauth_error_message(body: &[u8]) -> Option<String> {
    let body = serde_json::from_slice::<OAuthError>(body).ok()?;
    match (body.error, body.error_description) {
        (Some(error), Some(description)) => Some(format!("{error}: {description}")),
        (error, description) => error.or(description),
    }
}

struct Cached {
    token: SecretValue,
    refresh_at: Instant,
}

/// Access tokens for one service account at one token endpoint.
pub(super) struct TokenSource {
    account: ServiceAccount,
    endpoint: Url,
    transport: Transport,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(account: ServiceAccount, endpoint: Url, transport: Transport) -> Self {
        Self {
            account,
            endpoint,
            transport,
            cache: Mutex::new(None),
        }
    }

    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    /// A token that stays valid for at least [`REFRESH_MARGIN`]. The lock is held across a fetch so
    /// that callers arriving meanwhile reuse its result instead of fetching their own.
    pub async fn token(&self) -> Result<SecretValue> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        *cache = None;
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Drops `stale` from the cache after the API refused it (revoked, or expired early), unless a
    /// newer token has replaced it already.
    pub async fn invalidate(&self, stale: &SecretValue) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|cached| cached.token == *stale) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<Cached> {
        let asked_at = Instant::now();
        let assertion = self.account.assertion(self.endpoint.as_str(), Timestamp::now())?;
        let form = [("grant_type", JWT_BEARER), ("assertion", assertion.expose())];
        let endpoint = self.endpoint.clone();
        // Exchanging the same assertion twice is harmless, so every transient failure is retried.
        let response = self
            .transport
            .send(Call::idempotent(oauth_error_message), |client| {
                client.post(endpoint.clone()).form(&form)
            })
            .await
            .map_err(|err| match err {
                // `invalid_grant` and friends: the key is wrong, disabled or deleted.
                Error::Rejected { message, .. } => Error::Unauthorized { message },
                other => other,
            })?;
        let body: TokenResponse = response.json()?;
        if body.access_token.is_empty() {
            return Err(Error::Decode("the token response holds no access_token".into()));
        }
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        // A very short-lived token is still used for half its life rather than never.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(Cached {
            token: SecretValue::new(body.access_token),
            refresh_at: asked_at + lifetime - margin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keysmith_simulators::google::testdata::{
        TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_DER, service_account_json,
    };

    fn account() -> ServiceAccount {
        ServiceAccount::parse(&SecretValue::new(service_account_json(
            "keysmith@proj.iam.gserviceaccount.com",
            "https://oauth2.googleapis.com/token",
        )))
        .unwrap()
    }

    #[test]
    fn assertions_are_rs256_jwts_that_verify_with_the_public_key() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let jwt = account()
            .assertion("https://oauth2.googleapis.com/token", now)
            .unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], "test-key-1");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "keysmith@proj.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["iat"], now.as_second());
        assert_eq!(claims["exp"], now.as_second() + 3600);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public =
            signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, TEST_PUBLIC_KEY_DER);
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn the_checked_in_public_key_belongs_to_the_test_private_key() {
        let (_, der) = pem_body(TEST_PRIVATE_KEY_PEM).unwrap();
        let pair = signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        assert_eq!(pair.public().as_ref(), TEST_PUBLIC_KEY_DER);
    }

    #[test]
    fn malformed_credentials_are_config_errors_that_never_quote_the_credential() {
        for bad in [
            "sk-not-json-secret".to_owned(),
            r#"{"type":"authorized_user","client_email":"a@b"}"#.to_owned(),
            r#"{"type":"service_account","private_key":"x"}"#.to_owned(),
            r#"{"client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"}"#
                .to_owned(),
            r#"{"client_email":"a@b","private_key":"secret-but-not-pem"}"#.to_owned(),
        ] {
            let err = ServiceAccount::parse(&SecretValue::new(bad.clone())).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
            let text = err.to_string();
            assert!(!text.contains("secret") && !text.contains("c2VjcmV0"), "{text}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let text = format!("{:?}", account());
        assert!(
            text.contains("keysmith@proj") && !text.contains("PRIVATE"),
            "{text}"
        );
    }

    #[test]
    fn oauth_errors_read_as_error_and_description() {
        assert_eq!(
            oauth_error_message(br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#)
                .as_deref(),
            Some("invalid_grant: Invalid JWT Signature.")
        );
        assert_eq!(
            oauth_error_message(br#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
    }
}
