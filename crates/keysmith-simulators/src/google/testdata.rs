//! The test-only service account the simulator trusts out of the box (see `testdata/README.md`): its
//! key is published on purpose and guards nothing, so tests and demos can sign token requests.

use serde_json::json;

/// The test key, PKCS#8 PEM. Test-only: never use it for anything real.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("testdata/test-service-account.key.pem");

/// Its public key as a PKCS#1 `RSAPublicKey` in DER, the form the token endpoint verifies with.
pub const TEST_PUBLIC_KEY_DER: &[u8] = include_bytes!("testdata/test-service-account.pub.der");

/// The test service account's email.
pub const TEST_CLIENT_EMAIL: &str = "keysmith-test@keysmith-sim.iam.gserviceaccount.com";

/// `private_key_id` of the test key.
pub const TEST_KEY_ID: &str = "test-key-1";

/// A service-account JSON key file for the test key, as `email`, whose `token_uri` is `token_uri`.
pub fn service_account_json(email: &str, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": super::DEFAULT_PROJECT_ID,
        "private_key_id": TEST_KEY_ID,
        "private_key": TEST_PRIVATE_KEY_PEM,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}
