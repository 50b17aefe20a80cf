//! The aiXplain client against the in-process aiXplain simulator, over real HTTP on loopback.

use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::{
    http::HttpConfig,
    testing::{self, fast_config, named, unreachable_url},
};
use keysmith_api::{ApiKey, ApiKeySpec, BudgetReset, Limits, ModelHub, ModelHubSpec, ModelLimit, RateLimit};
use keysmith_simulators::{
    RunningSim,
    aixplain::{AixplainSim, Traffic},
    clock::Clock,
    faults::Fault,
};

const TEAM: &str = "team-key-for-client-tests-000000000000000000000000000000000000000";
const ORDINARY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

type Fixture = testing::Fixture<AixplainSim, AixplainClient>;

impl Fixture {
    async fn new() -> Self {
        Self::with_config(fast_config()).await
    }

    async fn with_config(config: HttpConfig) -> Self {
        let sim = AixplainSim::new([TEAM.to_owned()], Clock::new());
        Self::start(sim, |running| client_for(running, TEAM, config)).await
    }

    fn client_with(&self, key: &str) -> AixplainClient {
        client_for(&self.running, key, fast_config())
    }

    /// The raw body of a team-key `GET`, to check what is on the wire.
    async fn raw_get(&self, path: &str) -> String {
        self.raw_get_with(path, error_message, |get| get.header("x-api-key", TEAM))
            .await
    }
}

fn client_for(running: &RunningSim, key: &str, config: HttpConfig) -> AixplainClient {
    AixplainClient::new(
        &running.base_url,
        SecretValue::new(key),
        Transport::new(config).unwrap(),
    )
    .unwrap()
}

fn limited(name: &str) -> KeySettings {
    KeySettings {
        limit_usd: Some(25.0),
        expires_at: Some("2031-06-30T12:00:00Z".parse().unwrap()),
        limits: Limits {
            requests_per_minute: Some(60),
            requests_per_day: Some(1000),
            tokens_per_minute: Some(10_000),
            tokens_per_day: None,
        },
        model_limits: vec![ModelLimit {
            model: "6646261c6eb563165658bbb1".into(),
            requests_per_minute: Some(5),
            requests_per_day: None,
            tokens_per_minute: None,
            tokens_per_day: Some(50_000),
        }],
        ..named(name)
    }
}

#[tokio::test]
async fn verify_accepts_a_team_key() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.verify().await.unwrap(), AccountInfo::default());
}

#[tokio::test]
async fn verify_refuses_an_ordinary_key_and_an_unknown_one() {
    let fixture = Fixture::new().await;
    fixture.sim.add_key(ORDINARY);
    let err = fixture.client_with(ORDINARY).verify().await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    let err = fixture.client_with("nope-nope-nope").verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { message } if message == "Invalid API key"),
        "{err:?}"
    );
}

#[tokio::test]
async fn creating_a_key_reveals_its_value_once_with_every_limit_in_place() {
    let fixture = Fixture::new().await;
    let wanted = limited("team-a [ks:u1/01]");
    let created = fixture.client.create_key(&wanted).await.unwrap();
    let value = created.value.expose().to_owned();
    assert_eq!(value.len(), 64);
    assert!(!format!("{created:?}").contains(&value));
    assert_eq!(created.record.settings, wanted);
    let label = created.record.label.clone().unwrap();
    assert_eq!(label, format!("{}...{}", &value[..4], &value[60..]));

    let id = created.record.id.clone();
    let sim_key = fixture.sim.key(&id).unwrap();
    assert_eq!(sim_key.budget, Some(25.0));
    assert_eq!(sim_key.global_limits.unwrap().tpm, Some(10_000));
    assert_eq!(sim_key.assets_limits[0].limits.tpd, Some(50_000));

    let fetched = fixture.client.get_key(&id).await.unwrap().unwrap();
    assert_eq!(fetched.settings, wanted);
    assert_eq!(fetched.label.as_deref(), Some(label.as_str()));
    let listed = fixture.client.list_keys().await.unwrap();
    assert!(listed.iter().any(|key| key.id == id && key.settings == wanted));
    for body in [
        fixture.raw_get("/sdk/api-keys").await,
        fixture.raw_get(&format!("/sdk/api-keys/{id}")).await,
    ] {
        assert!(!body.contains(&value));
    }
}

/// `spec.rateLimit` reaches aiXplain as `rpm` (or `rpd`), is read back, and then matches what
/// keysmith wants, so the key is not updated on every look.
#[tokio::test]
async fn a_spec_rate_limit_per_minute_or_day_is_sent_as_rpm_or_rpd_and_read_back() {
    let fixture = Fixture::new().await;
    let hub = ModelHub::new(
        "hub",
        serde_json::from_value::<ModelHubSpec>(serde_json::json!({"provider": "aixplain"})).unwrap(),
    );
    for (interval, rpm, rpd) in [(60, Some(30), Some(1000)), (86_400, None, Some(30))] {
        let spec: ApiKeySpec = serde_json::from_value(serde_json::json!({
            "hubRef": {"name": "hub"},
            "limits": {"requestsPerDay": 1000},
            "rateLimit": {"requests": 30, "intervalSeconds": interval},
        }))
        .unwrap();
        let mut key = ApiKey::new("app", spec);
        key.metadata.namespace = Some("team-a".into());
        let mut limits = keysmith_limits::effective_key_limits(&key, &hub);
        let rate = keysmith_limits::effective_rate_limit(&key, &hub).unwrap().0;
        let other_rate_limit = keysmith_limits::fold_rate_limit(&mut limits, rate);
        let wanted = KeySettings {
            limits,
            other_rate_limit,
            ..named(&format!("app [ks:u1/{interval}]"))
        };

        let created = fixture.client.create_key(&wanted).await.unwrap();
        let sim_limits = fixture
            .sim
            .key(&created.record.id)
            .unwrap()
            .global_limits
            .unwrap();
        assert_eq!((sim_limits.rpm, sim_limits.rpd), (rpm, rpd), "{interval}");

        let fetched = fixture.client.get_key(&created.record.id).await.unwrap().unwrap();
        assert_eq!(
            (
                fetched.settings.limits.requests_per_minute,
                fetched.settings.limits.requests_per_day
            ),
            (rpm, rpd)
        );
        // Read back as sent, so the operator sees nothing to change on its next look.
        assert_eq!(fetched.settings.limits, wanted.limits, "{interval}");
        assert_eq!(fetched.settings.other_rate_limit, None);
    }
}

#[tokio::test]
async fn what_aixplain_cannot_hold_is_refused_before_anything_is_sent() {
    let fixture = Fixture::new().await;
    let cases = [
        KeySettings {
            disabled: true,
            ..named("off")
        },
        KeySettings {
            limit_usd: Some(5.0),
            limit_reset: Some(BudgetReset::Monthly),
            ..named("monthly")
        },
        KeySettings {
            include_byok: true,
            ..named("byok")
        },
        KeySettings {
            other_rate_limit: Some(RateLimit {
                requests: 5,
                interval_seconds: 10,
            }),
            ..named("every ten seconds")
        },
    ];
    for case in &cases {
        let err = fixture.client.create_key(case).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    }
    let created = fixture.client.create_key(&named("on")).await.unwrap();
    for case in &cases {
        let err = fixture
            .client
            .update_key(&created.record.id, case)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    }
    assert_eq!(fixture.requests("POST", "/sdk/api-keys"), 1);
    assert_eq!(fixture.requests("PUT", &created.record.id), 0);
}

#[tokio::test]
async fn the_list_holds_every_key_but_the_team_keys() {
    let fixture = Fixture::new().await;
    for n in 0..30 {
        fixture.client.create_key(&named(&format!("k{n}"))).await.unwrap();
    }
    let keys = fixture.client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 30);
    assert!(keys.iter().all(|key| key.name != "team key"));
    assert_eq!(fixture.requests("GET", "/sdk/api-keys"), 1);
}

#[tokio::test]
async fn updates_rename_and_replace_budget_limits_and_expiry_in_place() {
    let fixture = Fixture::new().await;
    assert!(fixture.client.expiry_in_place());
    let created = fixture.client.create_key(&limited("before")).await.unwrap();
    let id = created.record.id.clone();

    let changed = KeySettings {
        limit_usd: Some(5.0),
        expires_at: Some("2032-01-01T00:00:00Z".parse().unwrap()),
        limits: Limits {
            tokens_per_day: Some(7),
            ..Default::default()
        },
        ..named("after")
    };
    let updated = fixture.client.update_key(&id, &changed).await.unwrap();
    assert_eq!(updated.id, id);
    assert_eq!(updated.settings, changed);
    let sim_key = fixture.sim.key(&id).unwrap();
    assert_eq!(sim_key.name, "after");
    assert!(sim_key.assets_limits.is_empty());
    assert_eq!(
        sim_key.expires_at,
        Some("2032-01-01T00:00:00Z".parse::<Timestamp>().unwrap())
    );

    let cleared = fixture.client.update_key(&id, &named("after")).await.unwrap();
    assert_eq!(cleared.settings, named("after"));
    assert_eq!(fixture.sim.key(&id).unwrap().global_limits, None);
}

#[tokio::test]
async fn updating_or_reading_an_unknown_key_is_not_found_or_none() {
    let fixture = Fixture::new().await;
    let err = fixture
        .client
        .update_key("000000000000000000000000", &named("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(
        fixture.client.get_key("000000000000000000000000").await.unwrap(),
        None
    );
    // An identifier cannot escape its path segment.
    assert_eq!(fixture.client.get_key("../api-keys").await.unwrap(), None);
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
async fn a_key_reports_todays_requests_and_tokens_overall_and_per_model() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&limited("busy")).await.unwrap();
    let id = created.record.id;
    let model = "6646261c6eb563165658bbb1";
    fixture.sim.add_usage(
        &id,
        Traffic {
            requests: 3,
            tokens: 1200,
            asset_id: Some(model.into()),
        },
    );
    fixture.sim.add_usage(
        &id,
        Traffic {
            requests: 1,
            tokens: 10,
            asset_id: None,
        },
    );
    let usage = fixture.client.get_key(&id).await.unwrap().unwrap().usage;
    assert_eq!((usage.requests_today, usage.tokens_today), (Some(4), Some(1210)));
    assert_eq!(usage.models.len(), 1);
    assert_eq!(usage.models[0].model, model);
    assert_eq!(
        (usage.models[0].requests, usage.models[0].tokens),
        (Some(3), Some(1200))
    );
    assert_eq!(usage.total_usd, None);

    // The counts are daily.
    fixture.sim.clock().advance(Duration::from_secs(24 * 3600));
    let usage = fixture.client.get_key(&id).await.unwrap().unwrap().usage;
    assert_eq!(usage.requests_today, Some(0));
}

#[tokio::test]
async fn a_taken_tagged_name_is_refused_with_the_duplicate_named_when_the_value_cannot_be_read() {
    let fixture = Fixture::new().await;
    let name = "team-a [ks:u1/lost]";
    let lost = fixture.sim.add_key_named(ORDINARY, name);
    let err = fixture.client.create_key(&named(name)).await.unwrap_err();
    match &err {
        Error::Rejected { status: 422, message } => {
            assert!(
                message.contains(&lost) && message.contains("cannot be read back"),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.to_string().contains(ORDINARY));
    assert_eq!(fixture.sim.live_key_count_named_with("[ks:u1/lost]"), 1);
}

#[tokio::test]
async fn a_taken_tagged_name_is_adopted_when_the_listing_shows_a_working_value() {
    let fixture = Fixture::new().await;
    fixture.sim.set_list_reveals_keys(true);
    let name = "team-a [ks:u1/lost]";
    let lost = fixture.sim.add_key_named(ORDINARY, name);
    let adopted = fixture.client.create_key(&named(name)).await.unwrap();
    assert_eq!(adopted.record.id, lost);
    assert_eq!(adopted.value.expose(), ORDINARY);
    assert_eq!(adopted.record.label.as_deref(), Some("0123...cdef"));
    assert_eq!(fixture.sim.live_key_count_named_with("[ks:u1/lost]"), 1);
}

#[tokio::test]
async fn a_taken_name_without_keysmiths_tag_is_a_conflict_naming_the_other_key() {
    let fixture = Fixture::new().await;
    fixture.sim.set_list_reveals_keys(true);
    let theirs = fixture.sim.add_key_named(ORDINARY, "shared name");
    let err = fixture
        .client
        .create_key(&named("shared name"))
        .await
        .unwrap_err();
    match err {
        Error::Rejected { status: 422, message } => {
            assert!(
                message.contains(&theirs) && message.contains("did not make"),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn reveal_reads_a_value_back_only_where_the_listing_shows_it_whole() {
    let fixture = Fixture::new().await;
    let masked = fixture.client.create_key(&named("masked")).await.unwrap();
    assert!(
        fixture
            .client
            .reveal_key(&masked.record.id)
            .await
            .unwrap()
            .is_none()
    );
    fixture.sim.set_list_reveals_keys(true);
    let shown = fixture.client.create_key(&named("shown")).await.unwrap();
    let value = fixture
        .client
        .reveal_key(&shown.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, shown.value);
    assert!(fixture.client.reveal_key("unknown").await.unwrap().is_none());
}

#[tokio::test]
async fn inspecting_an_imported_key_reports_todays_counts_and_a_mask() {
    let fixture = Fixture::new().await;
    let id = fixture.sim.add_key(ORDINARY);
    fixture.sim.add_usage(
        &id,
        Traffic {
            requests: 2,
            tokens: 40,
            asset_id: None,
        },
    );
    let info = fixture
        .client
        .inspect_imported(&SecretValue::new(ORDINARY))
        .await
        .unwrap();
    assert_eq!(info.label.as_deref(), Some("0123...cdef"));
    assert_eq!(
        (info.usage.requests_today, info.usage.tokens_today),
        (Some(2), Some(40))
    );

    let err = fixture
        .client
        .inspect_imported(&SecretValue::new("f".repeat(64)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("ffffffff"));
}

#[tokio::test]
async fn a_rate_limited_call_waits_out_retry_after_then_succeeds() {
    let fixture = Fixture::new().await;
    fixture
        .assert_listing_waits_out_retry_after("/sdk/api-keys")
        .await;
}

#[tokio::test]
async fn a_retry_after_longer_than_a_call_may_wait_fails_fast() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::rate_limit(1, 120));
    let err = fixture.client.verify().await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(fixture.sim.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success_or_the_retry_budget_ends() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::server_error(3));
    fixture.client.verify().await.unwrap();
    let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 500, 200]);

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
        .create_key(&named("dropped [ks:u/x]"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
    assert_eq!(fixture.requests("POST", "/sdk/api-keys"), 1);
    assert_eq!(fixture.sim.live_key_count_named_with("[ks:u/x]"), 1);
}

#[tokio::test]
async fn a_create_answered_with_429_or_500_is_retried_and_mints_one_key() {
    let fixture = Fixture::new().await;
    fixture
        .sim
        .inject(Fault::rate_limit(1, 0).on_path("/sdk/api-keys"));
    fixture
        .sim
        .inject(Fault::server_error(1).on_path("/sdk/api-keys"));
    fixture
        .client
        .create_key(&named("retried [ks:u/y]"))
        .await
        .unwrap();
    assert_eq!(fixture.requests("POST", "/sdk/api-keys"), 3);
    assert_eq!(fixture.sim.live_key_count_named_with("[ks:u/y]"), 1);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_unreachable() {
    let transport = Transport::new(HttpConfig {
        max_retries: 1,
        ..fast_config()
    })
    .unwrap();
    let client = AixplainClient::new(&unreachable_url(), SecretValue::new(TEAM), transport).unwrap();
    let err = client.verify().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
}

#[test]
fn the_client_debug_output_hides_the_team_key() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = AixplainClient::new(DEFAULT_ENDPOINT, SecretValue::new(TEAM), transport).unwrap();
    assert!(!format!("{client:?}").contains("team-key"));
}

#[test]
fn capabilities_say_aixplain_enforces_limits_and_expiry_and_keysmith_disables_by_revoking() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = AixplainClient::new(DEFAULT_ENDPOINT, SecretValue::new(TEAM), transport).unwrap();
    let caps = client.capabilities();
    assert_eq!(
        (caps.budget, caps.rate_limits, caps.model_limits, caps.expiry),
        (
            Enforcement::Provider,
            Enforcement::Provider,
            Enforcement::Provider,
            Enforcement::Provider
        )
    );
    assert_eq!(caps.disable, Enforcement::Operator);
    assert_eq!(caps.request_limits, Enforcement::Advisory);
    assert_eq!(caps.rotation, Enforcement::Operator);
}

#[tokio::test]
async fn a_model_limit_on_a_model_outside_the_catalog_is_refused_naming_it_before_anything_is_created() {
    let fixture = Fixture::new().await;
    let mut settings = limited("unknown model [ks:u/m]");
    settings.model_limits[0].model = "000000000000000000000000".into();
    let err = fixture.client.create_key(&settings).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownModel(m) if m.contains("modelLimits[0].model \"000000000000000000000000\"")),
        "{err}"
    );
    assert_eq!(err.reason(), "UnknownModel");
    assert!(!err.is_transient());
    assert_eq!(fixture.requests("POST", "/sdk/api-keys"), 0);

    // A path is answered with the id the limit must name.
    settings.model_limits[0].model = "openai/gpt-4o/openai".into();
    let err = fixture.client.create_key(&settings).await.unwrap_err();
    assert!(
        err.to_string().contains("its id \"6646261c6eb563165658bbb1\""),
        "{err}"
    );

    // Once added to the catalog the model is accepted, and a known model is looked up once per client.
    fixture
        .sim
        .add_model(keysmith_simulators::aixplain::CatalogModel::new(
            "000000000000000000000000",
            "New",
            "x/new/x",
        ));
    settings.model_limits[0].model = "000000000000000000000000".into();
    let created = fixture.client.create_key(&settings).await.unwrap();
    fixture
        .client
        .update_key(&created.record.id, &settings)
        .await
        .unwrap();
    assert_eq!(
        fixture.requests("GET", "/sdk/models/000000000000000000000000"),
        2,
        "one 404 before the model was added, one look after"
    );
}
