//! The OpenRouter client against the in-process OpenRouter simulator, over real HTTP on loopback.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::*;
use crate::{
    http::HttpConfig,
    testing::{self, fast_config, named, unreachable_url},
};
use keysmith_api::BudgetReset;
use keysmith_simulators::{RunningSim, clock::Clock, faults::Fault, openrouter::OpenRouterSim, sha256_hex};

const MANAGEMENT: &str = "sk-or-v1-management-key-for-client-tests-00000000000000000000000000000";
const ORDINARY: &str = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

type Fixture = testing::Fixture<OpenRouterSim, OpenRouterClient>;

impl Fixture {
    async fn new() -> Self {
        Self::with_config(fast_config()).await
    }

    async fn with_config(config: HttpConfig) -> Self {
        let sim = OpenRouterSim::new([MANAGEMENT.to_owned()], Clock::new());
        Self::start(sim, |running| client_for(running, MANAGEMENT, config)).await
    }

    /// A client of the same simulator that authenticates with `key`.
    fn client_with(&self, key: &str) -> OpenRouterClient {
        client_for(&self.running, key, fast_config())
    }

    /// The raw body of a management `GET`, to check what is on the wire.
    async fn raw_get(&self, path: &str) -> String {
        self.raw_get_with(path, error_message, |get| get.bearer_auth(MANAGEMENT))
            .await
    }
}

fn client_for(running: &RunningSim, key: &str, config: HttpConfig) -> OpenRouterClient {
    let transport = Transport::new(config).unwrap();
    OpenRouterClient::new(&running.base_url, SecretValue::new(key), transport).unwrap()
}

#[tokio::test]
async fn verify_reports_the_account_credits_for_a_management_key() {
    let fixture = Fixture::new().await;
    let account = fixture.client.verify().await.unwrap();
    assert_eq!(account.credits_usd, Some(100.0));
    assert_eq!(account.usage_usd, Some(0.0));
}

#[tokio::test]
async fn verify_refuses_an_ordinary_key_as_not_a_management_key() {
    let fixture = Fixture::new().await;
    fixture.sim.add_ordinary_key(ORDINARY);
    let err = fixture.client_with(ORDINARY).verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden { message } if message == "credential is not a management key"),
        "{err:?}"
    );
}

#[tokio::test]
async fn verify_with_an_unknown_key_is_unauthorized() {
    let fixture = Fixture::new().await;
    let err = fixture
        .client_with("sk-or-v1-unknown")
        .verify()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn an_ordinary_key_cannot_list_keys() {
    let fixture = Fixture::new().await;
    fixture.sim.add_ordinary_key(ORDINARY);
    let err = fixture.client_with(ORDINARY).list_keys().await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn creating_a_key_reveals_its_value_once_and_reads_never_include_it() {
    let fixture = Fixture::new().await;
    let expires: Timestamp = "2031-06-30T12:00:00Z".parse().unwrap();
    let wanted = KeySettings {
        limit_usd: Some(12.5),
        limit_reset: Some(BudgetReset::Weekly),
        include_byok: true,
        expires_at: Some(expires),
        ..named("team-a [keysmith:abc]")
    };
    let created = fixture.client.create_key(&wanted).await.unwrap();
    let value = created.value.expose().to_owned();
    assert!(
        value.starts_with("sk-or-v1-") && value.len() == 9 + 64,
        "unexpected key format"
    );
    assert_eq!(created.record.id, sha256_hex(&value));
    assert_eq!(created.record.settings, wanted);
    assert_eq!(created.record.usage.remaining_usd, Some(12.5));
    assert!(!format!("{created:?}").contains(&value));

    let fetched = fixture.client.get_key(&created.record.id).await.unwrap().unwrap();
    assert_eq!(fetched, created.record);
    let listed = fixture.client.list_keys().await.unwrap();
    assert_eq!(listed, vec![created.record.clone()]);

    let key_body = fixture.raw_get(&format!("/keys/{}", created.record.id)).await;
    let list_body = fixture.raw_get("/keys?include_disabled=true").await;
    assert!(!key_body.contains(&value) && !list_body.contains(&value));
}

#[tokio::test]
async fn a_key_meant_to_start_disabled_is_disabled_at_the_provider() {
    let fixture = Fixture::new().await;
    let created = fixture
        .client
        .create_key(&KeySettings {
            disabled: true,
            ..named("off")
        })
        .await
        .unwrap();
    assert!(created.record.settings.disabled);
    assert!(fixture.sim.key(&created.record.id).unwrap().disabled);
}

#[tokio::test]
async fn listing_follows_pagination_past_one_hundred_keys_and_includes_disabled_ones() {
    let fixture = Fixture::new().await;
    for n in 0..230 {
        let value = format!("sk-or-v1-{}", sha256_hex(&n.to_string()));
        fixture.sim.add_ordinary_key_named(&value, &format!("key-{n}"));
    }
    let disabled = fixture
        .client
        .create_key(&KeySettings {
            disabled: true,
            ..named("off")
        })
        .await
        .unwrap();

    let keys = fixture.client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 231);
    assert!(
        keys.iter()
            .any(|key| key.id == disabled.record.id && key.settings.disabled)
    );
    let mut ids: Vec<&str> = keys.iter().map(|key| key.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 231);
    assert_eq!(fixture.requests("GET", "/keys"), 3);
}

#[tokio::test]
async fn updates_rename_disable_and_change_the_limit_in_place() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("before")).await.unwrap();
    let id = created.record.id.clone();

    let capped = KeySettings {
        disabled: true,
        limit_usd: Some(5.0),
        limit_reset: Some(BudgetReset::Monthly),
        include_byok: true,
        ..named("after")
    };
    let updated = fixture.client.update_key(&id, &capped).await.unwrap();
    assert_eq!(updated.id, id);
    assert_eq!(updated.name, "after");
    assert_eq!(updated.settings, capped);
    assert_eq!(updated.usage.remaining_usd, Some(5.0));

    let uncapped = KeySettings {
        limit_reset: Some(BudgetReset::Never),
        ..named("after")
    };
    let updated = fixture.client.update_key(&id, &uncapped).await.unwrap();
    assert_eq!(updated.settings.limit_usd, None);
    assert_eq!(updated.settings.limit_reset, None);
    assert_eq!(updated.usage.remaining_usd, None);
    assert!(!updated.settings.disabled);
    let sim_key = fixture.sim.key(&id).unwrap();
    assert_eq!(
        (sim_key.limit, sim_key.limit_reset, sim_key.disabled),
        (None, None, false)
    );
    assert!(sim_key.updated_at.is_some());
}

#[tokio::test]
async fn updating_an_unknown_key_is_not_found() {
    let fixture = Fixture::new().await;
    let err = fixture
        .client
        .update_key(&"0".repeat(64), &named("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn deleting_a_key_twice_succeeds_both_times() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("doomed")).await.unwrap();
    fixture.client.delete_key(&created.record.id).await.unwrap();
    fixture.client.delete_key(&created.record.id).await.unwrap();
    assert!(fixture.sim.key(&created.record.id).unwrap().deleted);
    assert_eq!(fixture.client.get_key(&created.record.id).await.unwrap(), None);
}

#[tokio::test]
async fn getting_an_unknown_key_returns_none() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.get_key(&"f".repeat(64)).await.unwrap(), None);
    // An identifier cannot escape its path segment.
    assert_eq!(fixture.client.get_key("../credits").await.unwrap(), None);
}

#[tokio::test]
async fn a_rate_limited_call_waits_out_retry_after_then_succeeds() {
    let fixture = Fixture::new().await;
    fixture.assert_listing_waits_out_retry_after("/keys").await;
}

#[tokio::test]
async fn retry_after_ms_is_preferred_over_retry_after_seconds() {
    let fixture = Fixture::new().await;
    fixture
        .sim
        .inject(Fault::rate_limit(1, 4).with_retry_after_ms(300));
    let start = Instant::now();
    fixture.client.verify().await.unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert_eq!(fixture.sim.early_retries(), 0);
}

#[tokio::test]
async fn a_retry_after_longer_than_a_call_may_wait_fails_fast_and_holds_back_the_whole_hub() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::rate_limit(1, 120));
    let start = Instant::now();
    let err = fixture.client.list_keys().await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(120)),
        "{err:?}"
    );
    // The next call shares the transport, so it does not even reach the provider.
    let err = fixture.client.verify().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(fixture.sim.requests().len(), 1);
    assert_eq!(fixture.sim.early_retries(), 0);
}

#[tokio::test]
async fn a_burst_of_server_errors_is_retried_until_success() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::server_error(3));
    fixture.client.verify().await.unwrap();
    let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 500, 200, 200]);
}

#[tokio::test]
async fn server_errors_beyond_the_retry_budget_surface_as_a_server_error() {
    let fixture = Fixture::with_config(HttpConfig {
        max_retries: 2,
        ..fast_config()
    })
    .await;
    fixture.sim.inject(Fault::server_error(10));
    let err = fixture.client.list_keys().await.unwrap_err();
    assert!(
        matches!(&err, Error::Server { status: 500, message } if message == "Internal Server Error"),
        "{err:?}"
    );
    assert_eq!(fixture.sim.requests().len(), 3);
}

#[tokio::test]
async fn a_create_whose_connection_drops_is_not_retried() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::drop_after_create(1));
    let err = fixture
        .client
        .create_key(&named("dropped [keysmith:x]"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
    assert_eq!(fixture.requests("POST", "/keys"), 1);
    assert_eq!(fixture.sim.live_key_count_named_with("[keysmith:x]"), 1);
}

#[tokio::test]
async fn a_create_answered_with_429_is_retried_and_mints_one_key() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::rate_limit(1, 0).on_path("/keys"));
    fixture.sim.inject(Fault::server_error(1).on_path("/keys"));
    fixture
        .client
        .create_key(&named("retried [keysmith:y]"))
        .await
        .unwrap();
    assert_eq!(fixture.requests("POST", "/keys"), 3);
    assert_eq!(fixture.sim.live_key_count_named_with("[keysmith:y]"), 1);
}

#[tokio::test]
async fn inspecting_an_ordinary_imported_key_reports_its_usage_and_limit() {
    let fixture = Fixture::new().await;
    let hash = fixture.sim.add_ordinary_key(ORDINARY);
    let capped = KeySettings {
        limit_usd: Some(10.0),
        limit_reset: Some(BudgetReset::Daily),
        ..named("imp")
    };
    fixture.client.update_key(&hash, &capped).await.unwrap();
    assert!(fixture.sim.add_spend(&hash, 2.5, false));

    let info = fixture
        .client
        .inspect_imported(&SecretValue::new(ORDINARY))
        .await
        .unwrap();
    assert_eq!(info.limit_usd, Some(10.0));
    assert_eq!(info.usage.total_usd, Some(2.5));
    assert_eq!(info.usage.daily_usd, Some(2.5));
    assert_eq!(info.usage.remaining_usd, Some(7.5));
    let label = info.label.unwrap_or_default();
    assert!(
        label.starts_with("sk-or-v1-") && !label.contains("0123456789abcdef"),
        "{label}"
    );
}

#[tokio::test]
async fn inspecting_a_bogus_imported_key_is_unauthorized() {
    let fixture = Fixture::new().await;
    let bogus = SecretValue::new(format!("sk-or-v1-{}", "9".repeat(64)));
    let err = fixture.client.inspect_imported(&bogus).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("9999999999"));
}

#[tokio::test]
async fn inspecting_a_management_key_as_an_imported_key_is_refused() {
    let fixture = Fixture::new().await;
    let err = fixture
        .client
        .inspect_imported(&SecretValue::new(MANAGEMENT))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_unreachable() {
    let transport = Transport::new(HttpConfig {
        max_retries: 1,
        ..fast_config()
    })
    .unwrap();
    let client = OpenRouterClient::new(
        &format!("{}/api/v1", unreachable_url()),
        SecretValue::new(MANAGEMENT),
        transport,
    )
    .unwrap();
    let err = client.verify().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
    assert!(err.is_transient());
}

#[test]
fn endpoints_must_be_absolute_http_urls_without_credentials() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let key = || SecretValue::new(MANAGEMENT);
    for bad in [
        "not a url",
        "ftp://example.com/api",
        "/api/v1",
        "https://example.com/api?x=1",
    ] {
        let err = OpenRouterClient::new(bad, key(), transport.clone()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
    }
    let err =
        OpenRouterClient::new("https://user:hunter2@example.com/", key(), transport.clone()).unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
    for good in [
        DEFAULT_ENDPOINT,
        "http://127.0.0.1:8080/api/v1/",
        "https://proxy.internal",
    ] {
        OpenRouterClient::new(good, key(), transport.clone()).unwrap();
    }
}

#[test]
fn the_client_debug_output_hides_the_management_key() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = OpenRouterClient::new(DEFAULT_ENDPOINT, SecretValue::new(MANAGEMENT), transport).unwrap();
    assert!(!format!("{client:?}").contains("management-key"));
}

#[test]
fn capabilities_say_openrouter_enforces_budgets_and_keysmith_rotates() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = OpenRouterClient::new(DEFAULT_ENDPOINT, SecretValue::new(MANAGEMENT), transport).unwrap();
    let caps = client.capabilities();
    assert_eq!(caps.budget, Enforcement::Provider);
    assert_eq!(caps.rate_limits, Enforcement::Advisory);
    assert_eq!(caps.expiry, Enforcement::Provider);
    assert_eq!(caps.rotation, Enforcement::Operator);
}
