//! Tests of the Google simulator through its HTTP surface.

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jiff::Timestamp;
use ring::{rand::SystemRandom, signature};
use serde_json::{Value, json};

use super::{GoogleSim, oauth, testdata};
use crate::{
    clock::Clock,
    faults::Fault,
    testing::{Reply, exchange, send},
};

const TOKEN: &str = "ya29.static-token-for-simulator-tests";
const KEYS: &str = "/v2/projects/keysmith-sim/locations/global/keys";

fn sim() -> GoogleSim {
    let sim = GoogleSim::new(Clock::new());
    sim.add_static_token(TOKEN);
    sim
}

async fn call(router: &Router, method: &str, uri: &str, body: Option<Value>) -> Reply {
    send(router, method, uri, Some(TOKEN), body).await
}

/// Creates a key and returns the finished operation's response.
async fn create(router: &Router, key_id: &str, body: Value) -> Value {
    let reply = call(router, "POST", &format!("{KEYS}?keyId={key_id}"), Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    finish(router, reply.body).await
}

/// Polls an operation until done; returns its response.
async fn finish(router: &Router, mut operation: Value) -> Value {
    for _ in 0..10 {
        if operation["done"] == json!(true) {
            return operation["response"].clone();
        }
        let name = operation["name"].as_str().unwrap().to_owned();
        operation = call(router, "GET", &format!("/v2/{name}"), None).await.body;
    }
    panic!("operation never finished: {operation}");
}

/// Asserts Google's error shape and returns `(status, message)`.
fn google_error(reply: &Reply, status: StatusCode) -> (String, String) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["error"]["code"], json!(status.as_u16()));
    (
        reply.body["error"]["status"].as_str().unwrap().to_owned(),
        reply.body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

/// A JWT for the test account, with `claims` merged over sensible ones.
fn assertion(claims: Value) -> String {
    let now = Timestamp::now().as_second();
    let mut all = json!({"iss": testdata::TEST_CLIENT_EMAIL, "scope": oauth::SCOPE,
        "aud": "http://sim.test/token", "iat": now, "exp": now + 3600});
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(all.to_string())
    );
    let body: String = testdata::TEST_PRIVATE_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pair = signature::RsaKeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap();
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn token_request(router: &Router, form: &str) -> Reply {
    let request = Request::builder()
        .method("POST")
        .uri("/token")
        .header("host", "sim.test")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap();
    exchange(router, request).await
}

async fn grant(router: &Router, jwt: &str) -> Reply {
    token_request(
        router,
        &format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"),
    )
    .await
}

#[tokio::test]
async fn the_token_endpoint_exchanges_a_signed_assertion_for_a_bearer_token() {
    let router = sim().router();
    let reply = grant(&router, &assertion(json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3599);
    let token = reply.body["access_token"].as_str().unwrap();
    assert!(token.starts_with("ya29."));
    let listed = send(&router, "GET", KEYS, Some(token), None).await;
    assert_eq!(listed.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_assertions_get_invalid_grant() {
    let router = sim().router();
    let now = Timestamp::now().as_second();
    let mut tampered = assertion(json!({}));
    tampered.replace_range(tampered.len() - 6.., "AAAAAA");
    for (jwt, why) in [
        (tampered, "Signature"),
        (
            assertion(json!({"exp": now - 10, "iat": now - 3610})),
            "short-lived",
        ),
        (assertion(json!({"exp": now + 7200})), "short-lived"),
        (
            assertion(json!({"aud": "https://oauth2.googleapis.com/token"})),
            "aud",
        ),
        (
            assertion(json!({"iss": "someone@else.iam.gserviceaccount.com"})),
            "account not found",
        ),
        ("not-a-jwt".to_owned(), "Invalid JWT"),
    ] {
        let reply = grant(&router, &jwt).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{why}: {:?}", reply.body);
        assert_eq!(reply.body["error"], "invalid_grant", "{why}");
        let description = reply.body["error_description"].as_str().unwrap();
        assert!(description.contains(why), "{why}: {description}");
    }
    let reply = grant(
        &router,
        &assertion(json!({"scope": "https://www.googleapis.com/auth/drive"})),
    )
    .await;
    assert_eq!(reply.body["error"], "invalid_scope");
    let reply = token_request(&router, "grant_type=password").await;
    assert_eq!(reply.body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn a_read_only_token_may_read_but_not_change_keys() {
    let router = sim().router();
    let reply = grant(&router, &assertion(json!({"scope": super::READ_ONLY_SCOPE}))).await;
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        send(&router, "GET", KEYS, Some(&token), None).await.status,
        StatusCode::OK
    );
    let reply = send(&router, "POST", KEYS, Some(&token), Some(json!({}))).await;
    let (status, _) = google_error(&reply, StatusCode::FORBIDDEN);
    assert_eq!(status, "PERMISSION_DENIED");
}

#[tokio::test]
async fn the_refresh_token_grant_accepts_registered_user_credentials_only() {
    let sim = sim();
    sim.add_refresh_credential("client-1", "secret-1", "refresh-1");
    let router = sim.router();
    let ok = token_request(
        &router,
        "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&refresh_token=refresh-1",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let bad = token_request(
        &router,
        "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&refresh_token=nope",
    )
    .await;
    assert_eq!(bad.body["error"], "invalid_grant");
    let client = token_request(
        &router,
        "grant_type=refresh_token&client_id=x&client_secret=y&refresh_token=z",
    )
    .await;
    assert_eq!(client.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_get_unauthenticated() {
    let sim = sim();
    let router = sim.router();
    for token in [None, Some("ya29.unknown")] {
        let reply = send(&router, "GET", KEYS, token, None).await;
        let (status, _) = google_error(&reply, StatusCode::UNAUTHORIZED);
        assert_eq!(status, "UNAUTHENTICATED");
    }
    let token = grant(&router, &assertion(json!({}))).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.clock().advance(std::time::Duration::from_secs(3600));
    let reply = send(&router, "GET", KEYS, Some(&token), None).await;
    google_error(&reply, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_created_key_comes_back_with_its_value_only_from_the_operation_and_key_string() {
    let router = sim().router();
    let body = json!({"displayName": "team-a", "annotations": {"keysmith.dev/name": "team-a [ks:u/n]"},
        "restrictions": {"apiTargets": [{"service": "aiplatform.googleapis.com"}]}});
    let key = create(&router, "ks-one", body).await;
    assert_eq!(key["@type"], "type.googleapis.com/google.api.apikeys.v2.Key");
    assert_eq!(key["name"], "projects/123456789012/locations/global/keys/ks-one");
    let value = key["keyString"].as_str().unwrap().to_owned();
    assert!(value.starts_with("AIza") && value.len() == 39);
    for field in ["uid", "createTime", "updateTime", "etag"] {
        assert!(key[field].is_string(), "{field}");
    }

    let got = call(&router, "GET", &format!("{KEYS}/ks-one"), None).await;
    let listed = call(&router, "GET", KEYS, None).await;
    let hooks = send(&router, "GET", "/_sim/keys", None, None).await;
    for body in [&got.body, &listed.body, &hooks.body] {
        assert!(!body.to_string().contains(&value), "the value leaked into {body}");
    }
    assert_eq!(got.body["displayName"], "team-a");
    for _ in 0..2 {
        let again = call(&router, "GET", &format!("{KEYS}/ks-one/keyString"), None).await;
        assert_eq!(again.body, json!({ "keyString": value }));
    }
}

#[tokio::test]
async fn creates_are_validated() {
    let router = sim().router();
    let cases = [
        (format!("{KEYS}?keyId=Bad_Id"), json!({}), StatusCode::BAD_REQUEST),
        (
            format!("{KEYS}?keyId=abcdef01-2345-4678-9abc-def012345678"),
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{KEYS}?keyId=long"),
            json!({"displayName": "x".repeat(64)}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v2/projects/keysmith-sim/locations/us-east1/keys".to_owned(),
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v2/projects/other/locations/global/keys".to_owned(),
            json!({}),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (uri, body, status) in cases {
        let reply = call(&router, "POST", &uri, Some(body)).await;
        google_error(&reply, status);
    }
    create(&router, "taken", json!({})).await;
    let reply = call(&router, "POST", &format!("{KEYS}?keyId=taken"), Some(json!({}))).await;
    let (status, _) = google_error(&reply, StatusCode::CONFLICT);
    assert_eq!(status, "ALREADY_EXISTS");
    // Without keyId, Google names the key by a UUID.
    let unnamed = call(&router, "POST", KEYS, Some(json!({}))).await;
    let key = finish(&router, unnamed.body).await;
    let id = key["name"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36);
}

#[tokio::test]
async fn operations_report_done_after_the_configured_polls() {
    let sim = sim();
    sim.set_polls_until_done(2);
    let router = sim.router();
    let first = call(&router, "POST", &format!("{KEYS}?keyId=slow"), Some(json!({}))).await;
    assert!(first.body.get("done").is_none());
    let name = first.body["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("operations/"));
    let poll = call(&router, "GET", &format!("/v2/{name}"), None).await;
    assert!(poll.body.get("done").is_none());
    let poll = call(&router, "GET", &format!("/v2/{name}"), None).await;
    assert_eq!(poll.body["done"], true);
    assert_eq!(
        poll.body["response"]["name"],
        "projects/123456789012/locations/global/keys/slow"
    );
    let missing = call(&router, "GET", "/v2/operations/nope", None).await;
    google_error(&missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lists_page_with_tokens_and_hide_deleted_keys_unless_asked() {
    let sim = sim();
    for n in 0..7 {
        sim.add_key(&format!("AIzaSyListed{n:027}"), &format!("k{n}"));
    }
    let router = sim.router();
    create(&router, "doomed", json!({})).await;
    finish(
        &router,
        call(&router, "DELETE", &format!("{KEYS}/doomed"), None)
            .await
            .body,
    )
    .await;

    let mut names = Vec::new();
    let mut uri = format!("{KEYS}?pageSize=3");
    loop {
        let page = call(&router, "GET", &uri, None).await;
        assert_eq!(page.status, StatusCode::OK);
        names.extend(
            page.body["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["displayName"].clone()),
        );
        match page.body["nextPageToken"].as_str() {
            Some(token) => uri = format!("{KEYS}?pageSize=3&pageToken={token}"),
            None => break,
        }
    }
    assert_eq!(names.len(), 7);
    let all = call(&router, "GET", &format!("{KEYS}?showDeleted=true"), None).await;
    let keys = all.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 8);
    assert!(keys[7]["deleteTime"].is_string());
    let bad = call(&router, "GET", &format!("{KEYS}?pageToken=garbage"), None).await;
    google_error(&bad, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patches_follow_the_update_mask_and_the_etag() {
    let router = sim().router();
    let key = create(
        &router,
        "p",
        json!({"displayName": "old", "annotations": {"a": "1"}}),
    )
    .await;
    let etag = key["etag"].as_str().unwrap().to_owned();
    let uri = format!("{KEYS}/p?updateMask=displayName");
    let reply = call(
        &router,
        "PATCH",
        &uri,
        Some(json!({"displayName": "new", "annotations": {}, "etag": etag})),
    )
    .await;
    let patched = finish(&router, reply.body).await;
    assert_eq!(patched["displayName"], "new");
    assert_eq!(patched["annotations"], json!({"a": "1"}), "not in the mask");
    assert_ne!(patched["etag"], json!(etag));
    assert!(patched.get("keyString").is_none());
    let stale = call(
        &router,
        "PATCH",
        &uri,
        Some(json!({"displayName": "x", "etag": etag})),
    )
    .await;
    let (status, _) = google_error(&stale, StatusCode::CONFLICT);
    assert_eq!(status, "ABORTED");
    let bad_mask = call(
        &router,
        "PATCH",
        &format!("{KEYS}/p?updateMask=keyString"),
        Some(json!({})),
    )
    .await;
    google_error(&bad_mask, StatusCode::BAD_REQUEST);
    let missing = call(&router, "PATCH", &format!("{KEYS}/nope"), Some(json!({}))).await;
    google_error(&missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deletes_are_soft_and_undeletable_until_purged() {
    let sim = sim();
    let router = sim.router();
    let key = create(&router, "soft", json!({})).await;
    let value = key["keyString"].as_str().unwrap().to_owned();
    let deleted = finish(
        &router,
        call(&router, "DELETE", &format!("{KEYS}/soft"), None).await.body,
    )
    .await;
    assert!(deleted["deleteTime"].is_string());
    let again = call(&router, "DELETE", &format!("{KEYS}/soft"), None).await;
    let (status, _) = google_error(&again, StatusCode::BAD_REQUEST);
    assert_eq!(status, "FAILED_PRECONDITION");
    let patch = call(
        &router,
        "PATCH",
        &format!("{KEYS}/soft"),
        Some(json!({"displayName": "x"})),
    )
    .await;
    google_error(&patch, StatusCode::BAD_REQUEST);

    let restored = finish(
        &router,
        call(&router, "POST", &format!("{KEYS}/soft:undelete"), Some(json!({})))
            .await
            .body,
    )
    .await;
    assert!(restored.get("deleteTime").is_none());
    let live = call(&router, "POST", &format!("{KEYS}/soft:undelete"), Some(json!({}))).await;
    google_error(&live, StatusCode::BAD_REQUEST);

    finish(
        &router,
        call(&router, "DELETE", &format!("{KEYS}/soft"), None).await.body,
    )
    .await;
    sim.clock()
        .advance(std::time::Duration::try_from(super::PURGE_AFTER).unwrap());
    let gone = call(&router, "GET", &format!("{KEYS}/soft"), None).await;
    google_error(&gone, StatusCode::NOT_FOUND);
    let lookup = call(
        &router,
        "GET",
        &format!("/v2/keys:lookupKey?keyString={value}"),
        None,
    )
    .await;
    assert_eq!(
        lookup.body,
        json!({"parent": "projects/123456789012"}),
        "purged: no name"
    );
}

#[tokio::test]
async fn lookup_names_the_key_that_holds_a_value() {
    let sim = sim();
    let name = sim.add_key("AIzaSyLookedUp000000000000000000000000", "by hand");
    let router = sim.router();
    let reply = call(
        &router,
        "GET",
        "/v2/keys:lookupKey?keyString=AIzaSyLookedUp000000000000000000000000",
        None,
    )
    .await;
    assert_eq!(
        reply.body,
        json!({"name": name, "parent": "projects/123456789012"})
    );
    let unknown = call(&router, "GET", "/v2/keys:lookupKey?keyString=AIzaSyNope", None).await;
    google_error(&unknown, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_gemini_api_accepts_live_keys_allowed_to_call_it() {
    let sim = sim();
    let router = sim.router();
    let key = create(&router, "g", json!({})).await;
    let value = key["keyString"].as_str().unwrap().to_owned();
    let ok = send(&router, "GET", &format!("/v1beta/models?key={value}"), None, None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body["models"].is_array());
    sim.restrict_by_hand(
        "g",
        json!({"apiTargets": [{"service": "aiplatform.googleapis.com"}]}),
    );
    let blocked = send(&router, "GET", &format!("/v1beta/models?key={value}"), None, None).await;
    google_error(&blocked, StatusCode::FORBIDDEN);
    sim.delete_by_hand("g");
    let invalid = send(&router, "GET", &format!("/v1beta/models?key={value}"), None, None).await;
    let (status, message) = google_error(&invalid, StatusCode::BAD_REQUEST);
    assert_eq!(status, "INVALID_ARGUMENT");
    assert!(message.contains("API key not valid"));
    assert_eq!(invalid.body["error"]["details"][0]["reason"], "API_KEY_INVALID");
}

#[tokio::test]
async fn faults_answer_in_googles_error_shape_with_retry_after() {
    let sim = sim();
    sim.inject(Fault::rate_limit(1, 7));
    let router = sim.router();
    let reply = call(&router, "GET", KEYS, None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers["retry-after"], "7");
    assert_eq!(reply.body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn hooks_edit_keys_like_the_console_and_serve_the_test_account() {
    let sim = sim();
    let router = sim.router();
    let added = send(
        &router,
        "POST",
        "/_sim/keys",
        None,
        Some(json!({"value": "AIzaSyHook0000000000000000000000000000", "displayName": "h"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let name = added.body["name"].as_str().unwrap().to_owned();
    let id = name.rsplit('/').next().unwrap().to_owned();
    let renamed = send(
        &router,
        "POST",
        &format!("/_sim/keys/{id}/rename"),
        None,
        Some(json!({"displayName": "h2"})),
    )
    .await;
    assert_eq!(renamed.body["key"]["displayName"], "h2");
    let deleted = send(&router, "POST", &format!("/_sim/keys/{id}/delete"), None, None).await;
    assert!(deleted.body["key"]["deleteTime"].is_string());
    assert!(!deleted.body.to_string().contains("AIzaSyHook"));
    let account = send(&router, "GET", "/_sim/service-account", None, None).await;
    assert_eq!(account.body["token_uri"], "http://sim.test/token");
    assert_eq!(account.body["client_email"], testdata::TEST_CLIENT_EMAIL);
    let ops = send(
        &router,
        "POST",
        "/_sim/operations",
        None,
        Some(json!({"pollsUntilDone": 0})),
    )
    .await;
    assert_eq!(ops.body["pollsUntilDone"], 0);
    assert!(sim.requests().is_empty(), "hooks are not API requests");
}
