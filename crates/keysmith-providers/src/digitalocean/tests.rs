//! The DigitalOcean client against the in-process DigitalOcean simulator, over real HTTP on loopback.

use std::time::Duration;

use super::*;
use crate::{
    http::HttpConfig,
    testing::{self, fast_config, named},
};
use keysmith_simulators::{RunningSim, clock::Clock, digitalocean::DigitalOceanSim, faults::Fault};

const TOKEN: &str = "dop_v1_client_test_token_00000000000000000000000000000000000000000000";

type Fixture = testing::Fixture<DigitalOceanSim, DigitalOceanClient>;

impl Fixture {
    async fn new() -> Self {
        Self::with_config(fast_config()).await
    }

    async fn with_config(config: HttpConfig) -> Self {
        let sim = DigitalOceanSim::new([TOKEN.to_owned()], Clock::new());
        Self::start(sim, |running| client_for(running, TOKEN, config)).await
    }

    fn client_with(&self, token: &str) -> DigitalOceanClient {
        client_for(&self.running, token, fast_config())
    }
}

fn client_for(running: &RunningSim, token: &str, config: HttpConfig) -> DigitalOceanClient {
    let transport = Transport::new(config).unwrap();
    let inference = format!("{}/v1", running.base_url);
    DigitalOceanClient::new(&running.base_url, &inference, SecretValue::new(token), transport).unwrap()
}

#[tokio::test]
async fn verify_accepts_the_account_token() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.verify().await.unwrap(), AccountInfo::default());
    assert_eq!(fixture.requests("GET", "/api_keys"), 1);
}

#[tokio::test]
async fn verify_with_an_unknown_token_is_unauthorized_with_digitaloceans_message() {
    let fixture = Fixture::new().await;
    let err = fixture.client_with("dop_v1_wrong").verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { message } if message == "Unable to authenticate you."),
        "{err:?}"
    );
}

#[tokio::test]
async fn minting_is_refused_without_calling_the_retired_endpoint() {
    let fixture = Fixture::new().await;
    let err = fixture.client.create_key(&named("new")).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("control panel"), "{err}");
    assert!(fixture.sim.requests().is_empty());
    assert_eq!(
        fixture.client.capabilities().provisioning,
        Enforcement::Unsupported
    );
}

#[tokio::test]
async fn listing_follows_pagination_and_leaves_deleted_keys_out() {
    let fixture = Fixture::new().await;
    let mut uuids: Vec<String> = (0..450)
        .map(|n| fixture.sim.add_key(&format!("key-{n}")).uuid)
        .collect();
    let gone = uuids.pop().unwrap();
    fixture.client.delete_key(&gone).await.unwrap();

    let keys = fixture.client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 449);
    let mut listed: Vec<String> = keys.iter().map(|key| key.id.clone()).collect();
    listed.sort_unstable();
    uuids.sort_unstable();
    assert_eq!(listed, uuids);
    assert!(
        keys.iter()
            .all(|key| key.label.is_none() && key.settings.name == key.name)
    );
    // 449 keys at 200 a page.
    assert_eq!(fixture.requests("GET", "/api_keys"), 3);
}

#[tokio::test]
async fn an_empty_account_lists_no_keys_in_one_call() {
    let fixture = Fixture::new().await;
    assert!(fixture.client.list_keys().await.unwrap().is_empty());
    assert_eq!(fixture.requests("GET", "/api_keys"), 1);
}

#[tokio::test]
async fn getting_a_key_finds_it_by_uuid_and_unknown_uuids_are_none() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("tenant-a [ks:uid/nonce]");
    let record = fixture.client.get_key(&added.uuid).await.unwrap().unwrap();
    assert_eq!(record.id, added.uuid);
    // The name round-trips keysmith's tag.
    assert_eq!(record.name, "tenant-a [ks:uid/nonce]");
    assert_eq!(fixture.client.get_key("no-such-uuid").await.unwrap(), None);
}

#[tokio::test]
async fn renaming_changes_the_name_in_place_and_keeps_the_value() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("before");
    let updated = fixture
        .client
        .update_key(&added.uuid, &named("after [ks:uid/n1]"))
        .await
        .unwrap();
    assert_eq!(updated.id, added.uuid);
    assert_eq!(updated.name, "after [ks:uid/n1]");
    assert_eq!(fixture.sim.key(&added.uuid).unwrap().name, "after [ks:uid/n1]");
    assert!(fixture.sim.accepts(&added.value));
}

#[tokio::test]
async fn renaming_an_unknown_key_is_not_found() {
    let fixture = Fixture::new().await;
    let err = fixture.client.update_key("nope", &named("x")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn deleting_a_key_twice_succeeds_both_times() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("doomed");
    fixture.client.delete_key(&added.uuid).await.unwrap();
    fixture.client.delete_key(&added.uuid).await.unwrap();
    assert!(fixture.sim.key(&added.uuid).unwrap().deleted);
    assert!(!fixture.sim.accepts(&added.value));
    assert_eq!(fixture.client.get_key(&added.uuid).await.unwrap(), None);
}

#[tokio::test]
async fn regenerating_reveals_a_new_value_once_and_the_old_one_stops_working() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("rotating");
    let regenerated = fixture.client.regenerate_key(&added.uuid).await.unwrap();
    assert_eq!(regenerated.record.id, added.uuid);
    assert_eq!(regenerated.record.name, "rotating");
    let value = regenerated.value.expose().to_owned();
    assert_ne!(value, added.value);
    assert!(!format!("{regenerated:?}").contains(&value));
    assert!(fixture.sim.accepts(&value));
    assert!(!fixture.sim.accepts(&added.value));

    let old = fixture
        .client
        .inspect_imported(&SecretValue::new(added.value.clone()))
        .await
        .unwrap_err();
    assert!(matches!(old, Error::Unauthorized { .. }), "{old:?}");
    fixture
        .client
        .inspect_imported(&SecretValue::new(value))
        .await
        .unwrap();
}

#[tokio::test]
async fn regenerating_an_unknown_key_is_not_found() {
    let fixture = Fixture::new().await;
    let err = fixture.client.regenerate_key("nope").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn inspecting_an_imported_key_calls_the_inference_service_with_that_key() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("imported");
    let info = fixture
        .client
        .inspect_imported(&SecretValue::new(added.value.clone()))
        .await
        .unwrap();
    assert_eq!(info, ImportedKeyInfo::default());
    let call = fixture.sim.requests().pop().unwrap();
    assert_eq!((call.method.as_str(), call.path.as_str()), ("GET", "/v1/models"));
    assert_eq!(
        call.credential,
        Some(keysmith_simulators::request_log::fingerprint(&added.value))
    );
}

#[tokio::test]
async fn inspecting_a_bogus_key_is_unauthorized_without_echoing_it() {
    let fixture = Fixture::new().await;
    let bogus = SecretValue::new(format!("sk-do-{}", "7".repeat(64)));
    let err = fixture.client.inspect_imported(&bogus).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("7777777777"));
}

#[tokio::test]
async fn an_import_is_linked_by_its_uuid() {
    let fixture = Fixture::new().await;
    fixture.sim.add_key("other");
    let added = fixture.sim.add_key("mine");
    let value = SecretValue::new(added.value.clone());
    let record = fixture
        .client
        .find_imported(&value, Some(&added.uuid))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.id.as_str(), record.name.as_str()),
        (added.uuid.as_str(), "mine")
    );
}

#[tokio::test]
async fn an_import_naming_an_unknown_or_deleted_uuid_is_not_found() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("gone");
    fixture.client.delete_key(&added.uuid).await.unwrap();
    let value = SecretValue::new(added.value.clone());
    for id in [added.uuid.as_str(), "no-such-uuid"] {
        let err = fixture.client.find_imported(&value, Some(id)).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { message } if message.contains("spec.import.keyId")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_import_without_a_uuid_is_only_validated() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("unlinked");
    let found = fixture
        .client
        .find_imported(&SecretValue::new(added.value.clone()), None)
        .await
        .unwrap();
    assert_eq!(found, None);
    // DigitalOcean shows no hint of a value, so there was nothing to look up.
    assert!(fixture.sim.requests().is_empty());
}

#[tokio::test]
async fn a_rate_limited_call_waits_out_retry_after_then_succeeds() {
    let fixture = Fixture::new().await;
    fixture.assert_listing_waits_out_retry_after("/api_keys").await;
}

#[tokio::test]
async fn a_retry_after_longer_than_a_call_may_wait_fails_fast_as_rate_limited() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::rate_limit(1, 120));
    let err = fixture.client.verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::RateLimited { retry_after: Some(wait), message }
            if *wait == Duration::from_secs(120) && message == "API Rate limit exceeded."),
        "{err:?}"
    );
    assert_eq!(fixture.sim.requests().len(), 1);
    assert_eq!(fixture.sim.early_retries(), 0);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let fixture = Fixture::new().await;
    let added = fixture.sim.add_key("k");
    fixture.sim.inject(Fault::server_error(2).on_path("/regenerate"));
    let regenerated = fixture.client.regenerate_key(&added.uuid).await.unwrap();
    assert!(fixture.sim.accepts(regenerated.value.expose()));
    let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
}

#[tokio::test]
async fn server_errors_beyond_the_retry_budget_surface_as_a_server_error() {
    let fixture = Fixture::with_config(HttpConfig {
        max_retries: 1,
        ..fast_config()
    })
    .await;
    fixture.sim.inject(Fault::server_error(5));
    let err = fixture.client.list_keys().await.unwrap_err();
    assert!(matches!(&err, Error::Server { status: 500, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(fixture.sim.requests().len(), 2);
}

#[test]
fn endpoints_must_be_absolute_http_urls_without_credentials() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let token = || SecretValue::new(TOKEN);
    for (api, inference) in [
        ("not a url", DEFAULT_INFERENCE_ENDPOINT),
        (DEFAULT_ENDPOINT, "ftp://inference"),
        (DEFAULT_ENDPOINT, "https://user:hunter2@inference.test/v1"),
    ] {
        let err = DigitalOceanClient::new(api, inference, token(), transport.clone()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(!err.to_string().contains("hunter2"));
    }
    DigitalOceanClient::new(DEFAULT_ENDPOINT, DEFAULT_INFERENCE_ENDPOINT, token(), transport).unwrap();
}

#[test]
fn the_client_debug_output_hides_the_token() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = DigitalOceanClient::new(
        DEFAULT_ENDPOINT,
        DEFAULT_INFERENCE_ENDPOINT,
        SecretValue::new(TOKEN),
        transport,
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("client_test_token"));
}

#[test]
fn capabilities_say_digitalocean_renames_and_regenerates_and_nothing_else() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = DigitalOceanClient::new(
        DEFAULT_ENDPOINT,
        DEFAULT_INFERENCE_ENDPOINT,
        SecretValue::new(TOKEN),
        transport,
    )
    .unwrap();
    let caps = client.capabilities();
    assert_eq!(caps.rename, Enforcement::Provider);
    assert_eq!(caps.rotation, Enforcement::Provider);
    for unsupported in [caps.expiry, caps.disable, caps.usage, caps.provisioning] {
        assert_eq!(unsupported, Enforcement::Unsupported);
    }
    for advisory in [
        caps.budget,
        caps.rate_limits,
        caps.model_limits,
        caps.request_limits,
    ] {
        assert_eq!(advisory, Enforcement::Advisory);
    }
    assert!(!client.expiry_in_place());
}
