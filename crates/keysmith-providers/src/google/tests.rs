//! The Google client against the in-process simulator, over real HTTP on loopback.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::{
    http::HttpConfig,
    testing::{self, fast_config, unreachable_url},
};
use keysmith_simulators::{
    RunningSim,
    clock::Clock,
    faults::Fault,
    google::{DEFAULT_PROJECT_ID, GoogleSim, PURGE_AFTER, testdata},
};

fn fast_polling() -> OperationPolling {
    OperationPolling {
        first: Duration::from_millis(1),
        max_interval: Duration::from_millis(5),
        max_polls: 10,
    }
}

const TAG: &str = "[ks:6f1c1b1e-3d2a-4c8e-9d0f-0123456789ab/0badf00d]";

type Fixture = testing::Fixture<GoogleSim, GoogleClient>;

impl Fixture {
    async fn new() -> Self {
        Self::with_config(fast_config()).await
    }

    async fn with_config(config: HttpConfig) -> Self {
        Self::start(GoogleSim::new(Clock::new()), |running| {
            let credential = GoogleSim::service_account_json(running);
            client_for(running, &credential, settings_for(running), config)
        })
        .await
    }

    fn token_requests(&self) -> usize {
        self.requests("POST", "/token")
    }

    /// Whether the Gemini API accepts `value` right now.
    async fn works(&self, value: &SecretValue) -> bool {
        self.client.inspect_imported(value).await.is_ok()
    }
}

fn settings_for(running: &RunningSim) -> GoogleSettings {
    GoogleSettings {
        endpoint: Some(running.base_url.clone()),
        inference_endpoint: Some(format!("{}/v1beta", running.base_url)),
        token_endpoint: None,
        project: Some(DEFAULT_PROJECT_ID.to_owned()),
    }
}

fn client_for(
    running: &RunningSim,
    credential: &str,
    settings: GoogleSettings,
    config: HttpConfig,
) -> GoogleClient {
    let _ = running;
    GoogleClient::new(
        settings,
        &SecretValue::new(credential),
        Transport::new(config).unwrap(),
    )
    .unwrap()
    .with_polling(fast_polling())
}

fn named(display: &str) -> KeySettings {
    KeySettings {
        name: format!("{display} {TAG}"),
        ..Default::default()
    }
}

#[tokio::test]
async fn verify_exchanges_the_service_account_key_for_a_token_and_reads_the_project() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.verify().await.unwrap(), AccountInfo::default());
    let calls: Vec<(String, String)> = fixture
        .sim
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("POST".into(), "/token".into()),
            (
                "GET".into(),
                format!("/v2/projects/{DEFAULT_PROJECT_ID}/locations/global/keys")
            ),
        ]
    );
}

#[tokio::test]
async fn the_access_token_is_fetched_once_and_reused() {
    let fixture = Fixture::new().await;
    for _ in 0..3 {
        fixture.client.list_keys().await.unwrap();
    }
    fixture.client.verify().await.unwrap();
    assert_eq!(fixture.token_requests(), 1);
}

#[tokio::test]
async fn concurrent_calls_share_one_token_fetch() {
    let fixture = Fixture::new().await;
    let calls = (0..5).map(|_| fixture.client.list_keys());
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(fixture.token_requests(), 1);
}

#[tokio::test]
async fn a_token_refused_with_401_is_replaced_once_and_the_call_repeated() {
    let fixture = Fixture::new().await;
    fixture.client.verify().await.unwrap();
    fixture.sim.revoke_tokens();
    fixture.client.list_keys().await.unwrap();
    let statuses: Vec<(String, u16)> = fixture
        .sim
        .requests()
        .iter()
        .skip(2)
        .map(|r| (r.path.clone(), r.status))
        .collect();
    let keys = format!("/v2/projects/{DEFAULT_PROJECT_ID}/locations/global/keys");
    assert_eq!(
        statuses,
        vec![(keys.clone(), 401), ("/token".into(), 200), (keys, 200)]
    );
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires() {
    let fixture = Fixture::new().await;
    fixture.sim.set_token_lifetime(2);
    fixture.client.verify().await.unwrap();
    // A two-second token is used for half its life, then replaced without a 401.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fixture.client.verify().await.unwrap();
    assert_eq!(fixture.token_requests(), 2);
    assert!(fixture.sim.requests().iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn a_disabled_service_account_is_unauthorized() {
    let fixture = Fixture::new().await;
    fixture
        .sim
        .set_service_account_enabled(testdata::TEST_CLIENT_EMAIL, false);
    let err = fixture.client.verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { message } if message.starts_with("invalid_grant")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_key_file_signed_by_another_key_is_unauthorized() {
    let fixture = Fixture::new().await;
    fixture
        .sim
        .add_service_account(testdata::TEST_CLIENT_EMAIL, b"not the public key");
    let err = fixture.client.verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { message } if message.contains("Signature")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_hub_token_endpoint_wins_over_the_key_files_token_uri() {
    let fixture = Fixture::new().await;
    let credential = testdata::service_account_json(testdata::TEST_CLIENT_EMAIL, "http://127.0.0.1:9/token");
    let settings = GoogleSettings {
        token_endpoint: Some(format!("{}/token", fixture.running.base_url)),
        ..settings_for(&fixture.running)
    };
    let client = client_for(&fixture.running, &credential, settings, fast_config());
    client.verify().await.unwrap();
}

#[tokio::test]
async fn the_project_comes_from_the_key_file_when_the_hub_names_none() {
    let fixture = Fixture::new().await;
    let settings = GoogleSettings {
        project: None,
        ..settings_for(&fixture.running)
    };
    let credential = GoogleSim::service_account_json(&fixture.running);
    let client = client_for(&fixture.running, &credential, settings, fast_config());
    client.verify().await.unwrap();
}

#[tokio::test]
async fn another_project_is_forbidden() {
    let fixture = Fixture::new().await;
    let settings = GoogleSettings {
        project: Some("someone-else".into()),
        ..settings_for(&fixture.running)
    };
    let credential = GoogleSim::service_account_json(&fixture.running);
    let client = client_for(&fixture.running, &credential, settings, fast_config());
    let err = client.verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden { message } if message.starts_with("PERMISSION_DENIED")),
        "{err:?}"
    );
}

#[tokio::test]
async fn creating_a_key_restricts_it_to_the_model_apis_and_returns_its_value() {
    let fixture = Fixture::new().await;
    let wanted = named("team-a/chat");
    let created = fixture.client.create_key(&wanted).await.unwrap();
    let id = created.record.id.clone();
    assert!(
        id.starts_with("projects/123456789012/locations/global/keys/ks-"),
        "{id}"
    );
    assert_eq!(created.record.name, wanted.name);
    assert_eq!(created.record.settings, wanted);
    assert_eq!(
        Some(created.value.expose().to_owned()),
        fixture.sim.key_value(&id)
    );
    assert!(created.value.expose().starts_with("AIza"));
    assert!(!format!("{created:?}").contains(created.value.expose()));

    let key = fixture.sim.key(&id).unwrap();
    assert_eq!(key.display_name, "team-a/chat");
    assert_eq!(key.annotations[wire::NAME_ANNOTATION], wanted.name);
    assert_eq!(
        key.restrictions.unwrap()["apiTargets"],
        json!([{"service": "generativelanguage.googleapis.com"}, {"service": "aiplatform.googleapis.com"}])
    );
    assert!(fixture.works(&created.value).await);

    let fetched = fixture.client.get_key(&id).await.unwrap().unwrap();
    assert_eq!(fetched, created.record);
    assert_eq!(fixture.client.list_keys().await.unwrap(), vec![created.record]);
}

#[tokio::test]
async fn a_name_too_long_for_display_keeps_its_tag_in_the_annotation() {
    let fixture = Fixture::new().await;
    let wanted = named(&"very-long-namespace/".repeat(5));
    let created = fixture.client.create_key(&wanted).await.unwrap();
    let key = fixture.sim.key(&created.record.id).unwrap();
    assert_eq!(key.display_name.chars().count(), 63);
    assert_eq!(created.record.name, wanted.name);
    let listed = fixture.client.list_keys().await.unwrap();
    assert_eq!(listed[0].name, wanted.name);
}

#[tokio::test]
async fn operations_are_polled_until_done() {
    let fixture = Fixture::new().await;
    fixture.sim.set_polls_until_done(3);
    fixture.client.create_key(&named("slow")).await.unwrap();
    assert_eq!(
        fixture.requests("GET", "/v2/operations/"),
        0,
        "paths end in the id"
    );
    let polls = fixture
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/operations/"))
        .count();
    assert_eq!(polls, 3);
}

#[tokio::test]
async fn an_operation_that_never_finishes_times_out() {
    let fixture = Fixture::new().await;
    fixture.sim.set_polls_until_done(1000);
    let err = fixture.client.create_key(&named("stuck")).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_operation_done_at_once_needs_no_poll() {
    let fixture = Fixture::new().await;
    fixture.sim.set_polls_until_done(0);
    fixture.client.create_key(&named("quick")).await.unwrap();
    let polls = fixture
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/operations/"))
        .count();
    assert_eq!(polls, 0);
}

#[tokio::test]
async fn the_value_can_be_revealed_again_and_again() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("again")).await.unwrap();
    for _ in 0..2 {
        let revealed = fixture.client.reveal_key(&created.record.id).await.unwrap();
        assert_eq!(revealed, Some(created.value.clone()));
    }
    assert_eq!(fixture.requests("GET", "/keyString"), 2);
    let unknown = format!("projects/{DEFAULT_PROJECT_ID}/locations/global/keys/nope");
    assert_eq!(fixture.client.reveal_key(&unknown).await.unwrap(), None);
}

#[tokio::test]
async fn listing_follows_page_tokens_and_shows_disabled_but_not_revoked_keys() {
    let fixture = Fixture::new().await;
    for n in 0..230 {
        fixture
            .sim
            .add_key(&format!("AIzaSyImported{n:025}"), &format!("key-{n}"));
    }
    let disabled = fixture
        .client
        .create_key(&KeySettings {
            disabled: true,
            ..named("off")
        })
        .await
        .unwrap();
    let revoked = fixture.client.create_key(&named("gone")).await.unwrap();
    fixture.client.delete_key(&revoked.record.id).await.unwrap();

    let keys = fixture.client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 231);
    assert!(
        keys.iter()
            .any(|k| k.id == disabled.record.id && k.settings.disabled)
    );
    assert!(!keys.iter().any(|k| k.id == revoked.record.id));
    let list_calls = fixture
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/keys"))
        .count();
    assert_eq!(list_calls, 3);
}

#[tokio::test]
async fn renaming_patches_the_display_name_and_keeps_the_tag() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("before")).await.unwrap();
    let id = created.record.id.clone();
    let updated = fixture.client.update_key(&id, &named("after")).await.unwrap();
    assert_eq!(updated.name, named("after").name);
    assert_eq!(fixture.sim.key(&id).unwrap().display_name, "after");
    // Nothing to change: no patch at all.
    let patches = fixture.requests("PATCH", "");
    fixture.client.update_key(&id, &named("after")).await.unwrap();
    assert_eq!(fixture.requests("PATCH", ""), patches);
}

#[tokio::test]
async fn a_rename_in_the_console_shows_as_a_difference_and_is_undone() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("mine")).await.unwrap();
    let id = created.record.id.clone();
    fixture.sim.rename_by_hand(&id, "renamed by hand");
    let seen = fixture.client.get_key(&id).await.unwrap().unwrap();
    assert_eq!(seen.name, format!("renamed by hand {TAG}"));
    fixture.client.update_key(&id, &named("mine")).await.unwrap();
    assert_eq!(fixture.sim.key(&id).unwrap().display_name, "mine");
}

#[tokio::test]
async fn an_update_puts_back_the_model_api_restriction_and_keeps_other_restrictions() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("drift")).await.unwrap();
    let id = created.record.id.clone();
    fixture.sim.restrict_by_hand(
        &id,
        json!({"apiTargets": [{"service": "translate.googleapis.com"}],
               "serverKeyRestrictions": {"allowedIps": ["10.0.0.0/8"]}}),
    );
    fixture.client.update_key(&id, &named("drift")).await.unwrap();
    let restrictions = fixture.sim.key(&id).unwrap().restrictions.unwrap();
    assert_eq!(
        restrictions["apiTargets"],
        json!([{"service": "generativelanguage.googleapis.com"}, {"service": "aiplatform.googleapis.com"}])
    );
    assert_eq!(
        restrictions["serverKeyRestrictions"]["allowedIps"],
        json!(["10.0.0.0/8"])
    );
}

#[tokio::test]
async fn disabling_soft_deletes_the_key_and_enabling_brings_the_same_value_back() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("toggle")).await.unwrap();
    let id = created.record.id.clone();

    let off = KeySettings {
        disabled: true,
        ..named("toggle")
    };
    let updated = fixture.client.update_key(&id, &off).await.unwrap();
    assert!(updated.settings.disabled);
    assert!(fixture.sim.key(&id).unwrap().is_deleted());
    assert!(!fixture.works(&created.value).await);
    assert_eq!(fixture.client.get_key(&id).await.unwrap(), Some(updated.clone()));
    // Disabled and renamed at once: undeleted for the patch, then deleted again.
    let renamed_off = KeySettings {
        disabled: true,
        ..named("toggled")
    };
    let updated = fixture.client.update_key(&id, &renamed_off).await.unwrap();
    assert!(updated.settings.disabled);
    assert_eq!(fixture.sim.key(&id).unwrap().display_name, "toggled");

    let on = fixture.client.update_key(&id, &named("toggled")).await.unwrap();
    assert!(!on.settings.disabled);
    assert!(fixture.works(&created.value).await);
    assert_eq!(fixture.client.reveal_key(&id).await.unwrap(), Some(created.value));
    assert!(
        !fixture
            .sim
            .key(&id)
            .unwrap()
            .annotations
            .contains_key(wire::DISABLED_ANNOTATION)
    );
}

#[tokio::test]
async fn a_key_meant_to_start_disabled_is_created_disabled() {
    let fixture = Fixture::new().await;
    let created = fixture
        .client
        .create_key(&KeySettings {
            disabled: true,
            ..named("born-off")
        })
        .await
        .unwrap();
    assert!(created.record.settings.disabled);
    assert!(!fixture.works(&created.value).await);
    assert!(fixture.sim.key(&created.record.id).unwrap().is_deleted());
}

#[tokio::test]
async fn deleting_revokes_the_key_and_a_second_delete_succeeds() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("doomed")).await.unwrap();
    let id = created.record.id.clone();
    fixture.client.delete_key(&id).await.unwrap();
    fixture.client.delete_key(&id).await.unwrap();
    assert!(fixture.sim.key(&id).unwrap().is_deleted());
    assert_eq!(fixture.client.get_key(&id).await.unwrap(), None);
    assert!(fixture.client.list_keys().await.unwrap().is_empty());
    assert!(!fixture.works(&created.value).await);
    let err = fixture
        .client
        .update_key(&id, &named("doomed"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn deleting_a_disabled_key_leaves_it_revoked_not_disabled() {
    let fixture = Fixture::new().await;
    let created = fixture
        .client
        .create_key(&KeySettings {
            disabled: true,
            ..named("off-then-gone")
        })
        .await
        .unwrap();
    let id = created.record.id.clone();
    fixture.client.delete_key(&id).await.unwrap();
    let key = fixture.sim.key(&id).unwrap();
    assert!(key.is_deleted());
    assert!(!key.annotations.contains_key(wire::DISABLED_ANNOTATION));
    assert_eq!(fixture.client.get_key(&id).await.unwrap(), None);
    assert!(!fixture.works(&created.value).await);
}

#[tokio::test]
async fn a_key_deleted_in_the_console_is_gone_for_keysmith() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("by-hand")).await.unwrap();
    fixture.sim.delete_by_hand(&created.record.id);
    assert_eq!(fixture.client.get_key(&created.record.id).await.unwrap(), None);
}

#[tokio::test]
async fn a_disabled_key_is_purged_thirty_days_after_its_delete() {
    let fixture = Fixture::new().await;
    let created = fixture
        .client
        .create_key(&KeySettings {
            disabled: true,
            ..named("forgotten")
        })
        .await
        .unwrap();
    fixture
        .sim
        .clock()
        .advance(Duration::try_from(PURGE_AFTER).unwrap());
    // The token expires with the jump too: the client fetches a new one after the 401.
    assert_eq!(fixture.client.get_key(&created.record.id).await.unwrap(), None);
    assert!(fixture.sim.key(&created.record.id).is_none());
}

#[tokio::test]
async fn unknown_and_malformed_ids_read_as_absent() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.get_key("ks-nothing").await.unwrap(), None);
    assert_eq!(fixture.client.get_key("../../operations/x").await.unwrap(), None);
    assert_eq!(
        fixture
            .client
            .get_key("projects/p/locations/global/keys/..")
            .await
            .unwrap(),
        None
    );
    fixture.client.delete_key("ks-nothing").await.unwrap();
    let err = fixture
        .client
        .update_key("ks-nothing", &named("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_create_whose_connection_drops_is_sent_again_and_adopts_the_one_key_made() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::drop_after_create(1));
    let wanted = named("dropped");
    let created = fixture.client.create_key(&wanted).await.unwrap();
    assert_eq!(fixture.requests("POST", "/keys"), 2);
    assert_eq!(fixture.sim.live_key_count_named_with(TAG), 1);
    assert_eq!(created.record.name, wanted.name);
    assert_eq!(
        Some(created.value.expose().to_owned()),
        fixture.sim.key_value(&created.record.id)
    );
}

#[tokio::test]
async fn a_rate_limited_call_waits_out_retry_after_then_succeeds() {
    let fixture = Fixture::new().await;
    fixture.client.verify().await.unwrap();
    fixture.sim.inject(Fault::rate_limit(1, 1));
    let start = Instant::now();
    fixture.client.list_keys().await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
    assert_eq!(fixture.sim.early_retries(), 0);
    let limited = fixture.sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 1);
}

#[tokio::test]
async fn a_rate_limited_create_is_retried_and_mints_one_key() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::rate_limit(1, 0).on_path("/keys"));
    fixture.sim.inject(Fault::server_error(1).on_path("/keys"));
    fixture.client.create_key(&named("retried")).await.unwrap();
    assert_eq!(fixture.requests("POST", "/keys"), 3);
    assert_eq!(fixture.sim.live_key_count_named_with(TAG), 1);
}

#[tokio::test]
async fn the_token_endpoint_is_retried_after_a_server_error() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::server_error(2).on_path("/token"));
    fixture.client.verify().await.unwrap();
    let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200, 200]);
}

#[tokio::test]
async fn server_errors_beyond_the_retry_budget_surface_as_a_server_error() {
    let fixture = Fixture::with_config(HttpConfig {
        max_retries: 2,
        ..fast_config()
    })
    .await;
    fixture.client.verify().await.unwrap();
    fixture.sim.inject(Fault::server_error(10));
    let err = fixture.client.list_keys().await.unwrap_err();
    assert!(
        matches!(&err, Error::Server { status: 500, message } if message.starts_with("INTERNAL")),
        "{err:?}"
    );
}

#[tokio::test]
async fn errors_never_carry_the_key_values_or_tokens_a_careless_upstream_echoes() {
    let fixture = Fixture::with_config(HttpConfig {
        max_retries: 1,
        ..fast_config()
    })
    .await;
    fixture.sim.inject(Fault::echo_secrets(10).on_path("/keys"));
    let err = fixture.client.create_key(&named("echoed")).await.unwrap_err();
    let text = format!("{err} {err:?}");
    let made = &fixture.sim.keys()[0];
    let value = fixture.sim.key_value(&made.name).unwrap();
    assert!(!text.contains(&value), "{text}");
    assert!(!text.contains("ya29.sim-"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[tokio::test]
async fn an_imported_key_is_checked_against_the_gemini_api() {
    let fixture = Fixture::new().await;
    let value = "AIzaSyImportedFromTheConsole0000000000";
    let name = fixture.sim.add_key(value, "made by hand");
    fixture
        .client
        .inspect_imported(&SecretValue::new(value))
        .await
        .unwrap();
    let err = fixture
        .client
        .inspect_imported(&SecretValue::new("AIzaSyBogus00000000000000000000000000000"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("Bogus"));
    fixture.sim.restrict_by_hand(
        &name,
        json!({"apiTargets": [{"service": "aiplatform.googleapis.com"}]}),
    );
    let err = fixture
        .client
        .inspect_imported(&SecretValue::new(value))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn an_imported_key_is_found_by_its_value() {
    let fixture = Fixture::new().await;
    let value = SecretValue::new("AIzaSyImportedFromTheConsole1111111111");
    let name = fixture.sim.add_key(value.expose(), "made by hand");
    let record = fixture.client.find_imported(&value, None).await.unwrap().unwrap();
    assert_eq!(record.id, name);
    assert_eq!(record.name, "made by hand");
    let key_id = name.rsplit('/').next().unwrap();
    // Renamed through its record; its (absent) restrictions are the owner's business.
    fixture
        .client
        .update_key(
            &record.id,
            &KeySettings {
                name: "made by hand".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fixture.sim.key(&name).unwrap().restrictions, None);
    let by_id = fixture.client.find_imported(&value, Some(key_id)).await.unwrap();
    assert_eq!(by_id, Some(record.clone()));
    let by_name = fixture.client.find_imported(&value, Some(&name)).await.unwrap();
    assert_eq!(by_name, Some(record));
    let err = fixture
        .client
        .find_imported(&value, Some("another-key"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    let unknown = SecretValue::new("AIzaSyNobodyMadeThis00000000000000000000");
    let err = fixture.client.find_imported(&unknown, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn an_import_only_hub_validates_keys_without_a_credential() {
    let fixture = Fixture::new().await;
    let value = SecretValue::new("AIzaSyImportedFromTheConsole2222222222");
    fixture.sim.add_key(value.expose(), "made by hand");
    let client = client_for(
        &fixture.running,
        "",
        settings_for(&fixture.running),
        fast_config(),
    );
    client.inspect_imported(&value).await.unwrap();
    assert_eq!(client.find_imported(&value, None).await.unwrap(), None);
    let err = client.list_keys().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(fixture.token_requests(), 0);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_unreachable() {
    let base = unreachable_url();
    let settings = GoogleSettings {
        endpoint: Some(base.clone()),
        project: Some("p".into()),
        ..GoogleSettings::default()
    };
    let credential = testdata::service_account_json(testdata::TEST_CLIENT_EMAIL, &format!("{base}/token"));
    let client = GoogleClient::new(
        settings,
        &SecretValue::new(credential),
        Transport::new(HttpConfig {
            max_retries: 1,
            ..fast_config()
        })
        .unwrap(),
    )
    .unwrap();
    let err = client.verify().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
}

fn test_credential() -> String {
    testdata::service_account_json(testdata::TEST_CLIENT_EMAIL, DEFAULT_TOKEN_ENDPOINT)
}

#[test]
fn endpoints_must_be_absolute_http_urls_without_credentials() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let credential = SecretValue::new(test_credential());
    for bad in [
        "not a url",
        "ftp://example.com",
        "/v2",
        "https://example.com/?x=1",
    ] {
        let settings = GoogleSettings {
            endpoint: Some(bad.into()),
            ..GoogleSettings::default()
        };
        let err = GoogleClient::new(settings, &credential, transport.clone()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
    }
    let settings = GoogleSettings {
        token_endpoint: Some("https://user:hunter2@example.com/token".into()),
        ..GoogleSettings::default()
    };
    let err = GoogleClient::new(settings, &credential, transport.clone()).unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
    GoogleClient::new(GoogleSettings::default(), &credential, transport).unwrap();
}

#[test]
fn a_project_that_could_escape_its_path_segment_is_refused() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let settings = GoogleSettings {
        project: Some("../other".into()),
        ..GoogleSettings::default()
    };
    let err = GoogleClient::new(settings, &SecretValue::new(test_credential()), transport).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[test]
fn the_client_debug_output_hides_the_private_key() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = GoogleClient::new(
        GoogleSettings::default(),
        &SecretValue::new(test_credential()),
        transport,
    )
    .unwrap();
    let text = format!("{client:?}");
    assert!(!text.contains("PRIVATE KEY") && !text.contains("MII"), "{text}");
    assert_eq!(client.client_email(), Some(testdata::TEST_CLIENT_EMAIL));
}

#[test]
fn create_key_ids_are_valid_fixed_per_name_and_differ_between_names() {
    let a = key_id_for(&named("a").name);
    assert_eq!(a, key_id_for(&named("a").name));
    assert_ne!(a, key_id_for(&named("b").name));
    assert_eq!(a.len(), 35);
    assert!(
        a.starts_with("ks-")
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
}

#[test]
fn capabilities_say_what_google_holds_and_what_it_cannot() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = GoogleClient::new(GoogleSettings::default(), &SecretValue::new(""), transport).unwrap();
    let caps = client.capabilities();
    assert_eq!(caps.budget, Enforcement::Unsupported);
    assert_eq!(caps.usage, Enforcement::Unsupported);
    assert_eq!(caps.rate_limits, Enforcement::Advisory);
    assert_eq!(caps.disable, Enforcement::Provider);
    assert_eq!(caps.rename, Enforcement::Provider);
    assert_eq!(caps.expiry, Enforcement::Operator);
    assert!(!client.expiry_in_place());
}
