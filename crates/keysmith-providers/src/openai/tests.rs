//! The OpenAI client against the in-process OpenAI simulator, over real HTTP on loopback.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::{
    http::HttpConfig,
    testing::{self, fast_config, named},
};
use keysmith_api::OpenAiModelRateLimit;
use keysmith_simulators::{
    RunningSim,
    clock::Clock,
    faults::Fault,
    openai::{DEFAULT_PROJECT_ID, OpenAiSim, Usage},
};

const ADMIN: &str = "sk-admin-client-tests-000000000000000000000000000000";

fn hub(project: &str) -> OpenAiHub {
    OpenAiHub {
        project_id: project.into(),
        ..Default::default()
    }
}

type Fixture = testing::Fixture<OpenAiSim, OpenAiClient>;

impl Fixture {
    async fn new() -> Self {
        Self::with(hub(DEFAULT_PROJECT_ID), fast_config()).await
    }

    async fn with(hub: OpenAiHub, config: HttpConfig) -> Self {
        let sim = OpenAiSim::new([ADMIN.to_owned()], Clock::new());
        Self::start(sim, |running| client_for(running, ADMIN, Some(hub), config)).await
    }

    /// A client of the same simulator that authenticates with `key`.
    fn client_with(&self, key: &str) -> OpenAiClient {
        client_for(&self.running, key, Some(hub(DEFAULT_PROJECT_ID)), fast_config())
    }

    fn project(&self) -> keysmith_simulators::openai::SimProject {
        self.sim.project(DEFAULT_PROJECT_ID).unwrap()
    }

    /// The raw body of an admin `GET`, to check what is on the wire.
    async fn raw_get(&self, path: &str) -> String {
        self.raw_get_with(path, error_message, |get| get.bearer_auth(ADMIN))
            .await
    }
}

fn client_for(running: &RunningSim, key: &str, hub: Option<OpenAiHub>, config: HttpConfig) -> OpenAiClient {
    let transport = Transport::new(config).unwrap();
    OpenAiClient::new(
        &running.base_url,
        &running.base_url,
        SecretValue::new(key),
        hub,
        transport,
    )
    .unwrap()
}

#[tokio::test]
async fn verify_reads_the_project_and_reports_no_account_figures() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.verify().await.unwrap(), AccountInfo::default());
    assert_eq!(
        fixture.requests("GET", &format!("/projects/{DEFAULT_PROJECT_ID}")),
        1
    );
    // Nothing to apply, so nothing else is read.
    assert_eq!(fixture.sim.requests().len(), 1);
}

#[tokio::test]
async fn verify_with_an_unknown_key_or_a_project_key_is_unauthorized() {
    let fixture = Fixture::new().await;
    let err = fixture
        .client_with("sk-admin-wrong-0000000000000000")
        .verify()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let created = fixture.client.create_key(&named("worker")).await.unwrap();
    let err = fixture
        .client_with(created.value.expose())
        .verify()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { message } if message.contains("admin API key")),
        "{err:?}"
    );
    assert!(!err.to_string().contains(created.value.expose()));
}

#[tokio::test]
async fn verify_of_an_unknown_or_archived_project_fails() {
    let fixture = Fixture::with(hub("proj_missing"), fast_config()).await;
    let err = fixture.client.verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { message } if message == "The project proj_missing was not found"),
        "{err:?}"
    );
    let fixture = Fixture::new().await;
    fixture.sim.archive_project(DEFAULT_PROJECT_ID);
    let err = fixture.client.verify().await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn verify_applies_rate_limits_only_where_they_differ() {
    let wanted = OpenAiHub {
        rate_limits: vec![
            OpenAiModelRateLimit {
                model: "gpt-4o-mini".into(),
                requests_per_minute: Some(100),
                tokens_per_minute: Some(200_000),
                requests_per_day: Some(2_000),
            },
            // Already what the project holds: no write.
            OpenAiModelRateLimit {
                model: "gpt-4o".into(),
                requests_per_minute: Some(500),
                tokens_per_minute: None,
                requests_per_day: None,
            },
        ],
        ..hub(DEFAULT_PROJECT_ID)
    };
    let fixture = Fixture::with(wanted, fast_config()).await;
    fixture.client.verify().await.unwrap();
    assert_eq!(fixture.requests("POST", "/rate_limits/rl-gpt-4o-mini"), 1);
    assert_eq!(fixture.requests("POST", "/rate_limits/rl-gpt-4o"), 0);
    let row = fixture
        .project()
        .rate_limits
        .into_iter()
        .find(|r| r.model == "gpt-4o-mini")
        .unwrap();
    assert_eq!(
        (
            row.max_requests_per_1_minute,
            row.max_tokens_per_1_minute,
            row.max_requests_per_1_day
        ),
        (Some(100), Some(200_000), Some(2_000))
    );
    // A second verification finds nothing to change.
    fixture.client.verify().await.unwrap();
    assert_eq!(fixture.requests("POST", "/rate_limits/rl-gpt-4o-mini"), 1);
}

#[tokio::test]
async fn verify_rejects_rate_limits_for_a_model_the_project_does_not_have() {
    let wanted = OpenAiHub {
        rate_limits: vec![OpenAiModelRateLimit {
            model: "gpt-9".into(),
            requests_per_minute: Some(1),
            tokens_per_minute: None,
            requests_per_day: None,
        }],
        ..hub(DEFAULT_PROJECT_ID)
    };
    let fixture = Fixture::with(wanted, fast_config()).await;
    let err = fixture.client.verify().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config(message) if message.contains("gpt-9")),
        "{err:?}"
    );
}

#[tokio::test]
async fn verify_refuses_rate_limits_above_the_organisation_maximum_as_a_rejection() {
    let wanted = OpenAiHub {
        rate_limits: vec![OpenAiModelRateLimit {
            model: "gpt-4o".into(),
            requests_per_minute: None,
            tokens_per_minute: Some(10_000_000),
            requests_per_day: None,
        }],
        ..hub(DEFAULT_PROJECT_ID)
    };
    let fixture = Fixture::with(wanted, fast_config()).await;
    let err = fixture.client.verify().await.unwrap_err();
    assert!(matches!(err, Error::Rejected { status: 400, .. }), "{err:?}");
}

#[tokio::test]
async fn verify_sets_the_spend_limit_in_cents_only_when_it_differs() {
    let wanted = OpenAiHub {
        spend_limit_usd: Some(123.456),
        ..hub(DEFAULT_PROJECT_ID)
    };
    let fixture = Fixture::with(wanted, fast_config()).await;
    fixture.client.verify().await.unwrap();
    assert_eq!(fixture.project().spend_limit_cents, Some(12_346));
    fixture.client.verify().await.unwrap();
    assert_eq!(fixture.requests("POST", "/spend_limit"), 1);
    assert_eq!(fixture.requests("GET", "/spend_limit"), 2);
}

#[tokio::test]
async fn creating_a_key_reveals_its_value_once_and_the_tagged_name_round_trips() {
    let fixture = Fixture::new().await;
    let name = "team-a/chat [ks:0b5e2f8c-1d2a-4c3b-9e8f-7a6b5c4d3e2f/0a1b2c3d]";
    let created = fixture.client.create_key(&named(name)).await.unwrap();
    let value = created.value.expose().to_owned();
    assert!(value.starts_with("sk-svcacct-"), "unexpected key format");
    assert!(created.record.id.starts_with("svc_acct_"));
    assert_eq!(created.record.name, name);
    assert_eq!(created.record.settings, named(name));
    let label = created.record.label.clone().unwrap();
    assert!(label.starts_with("sk-svcacct-") && label.contains("...") && !label.contains(&value[11..20]));
    assert!(!format!("{created:?}").contains(&value));

    let fetched = fixture.client.get_key(&created.record.id).await.unwrap().unwrap();
    assert_eq!(
        (fetched.name.as_str(), fetched.label.as_ref()),
        (name, Some(&label))
    );
    assert_eq!(fetched.usage.total_usd, Some(0.0));
    let listed = fixture.client.list_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].name.as_str()),
        (created.record.id.as_str(), name)
    );

    // The client learnt the key's id when it created it: no listing of project keys was needed.
    assert_eq!(fixture.requests("GET", "/api_keys"), 0);
    let accounts = fixture
        .raw_get(&format!(
            "/organization/projects/{DEFAULT_PROJECT_ID}/service_accounts"
        ))
        .await;
    let keys = fixture
        .raw_get(&format!("/organization/projects/{DEFAULT_PROJECT_ID}/api_keys"))
        .await;
    assert!(!accounts.contains(&value) && !keys.contains(&value));
}

#[tokio::test]
async fn a_restarted_client_finds_a_service_accounts_key_with_one_listing() {
    let fixture = Fixture::new().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            fixture
                .client
                .create_key(&named(&format!("k{n}")))
                .await
                .unwrap()
                .record
                .id,
        );
    }
    let fresh = fixture.client_with(ADMIN);
    for id in &ids {
        let record = fresh.get_key(id).await.unwrap().unwrap();
        assert!(record.label.is_some());
    }
    assert_eq!(fixture.requests("GET", "/api_keys"), 1);
}

#[tokio::test]
async fn listing_follows_cursor_pagination_across_pages() {
    let fixture = Fixture::new().await;
    for n in 0..230 {
        fixture
            .client
            .create_key(&named(&format!("key-{n}")))
            .await
            .unwrap();
    }
    let keys = fixture.client.list_keys().await.unwrap();
    assert_eq!(keys.len(), 230);
    let mut ids: Vec<&str> = keys.iter().map(|key| key.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 230);
    assert_eq!(fixture.requests("GET", "/service_accounts"), 3);
}

#[tokio::test]
async fn renaming_updates_the_service_account_in_place() {
    let fixture = Fixture::new().await;
    let created = fixture
        .client
        .create_key(&named("before [ks:u/1]"))
        .await
        .unwrap();
    let id = created.record.id.clone();
    let updated = fixture
        .client
        .update_key(&id, &named("after [ks:u/1]"))
        .await
        .unwrap();
    assert_eq!(
        (updated.id.as_str(), updated.name.as_str()),
        (id.as_str(), "after [ks:u/1]")
    );
    assert_eq!(updated.label, created.record.label);
    assert_eq!(updated.usage.daily_usd, Some(0.0));
    assert_eq!(
        fixture.sim.service_account(DEFAULT_PROJECT_ID, &id).unwrap().name,
        "after [ks:u/1]"
    );
    let err = fixture
        .client
        .update_key("svc_acct_missing", &named("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn deleting_a_key_deletes_its_service_account_and_succeeds_twice() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("doomed")).await.unwrap();
    let id = created.record.id.clone();
    fixture.client.delete_key(&id).await.unwrap();
    fixture.client.delete_key(&id).await.unwrap();
    let account = fixture.sim.service_account(DEFAULT_PROJECT_ID, &id).unwrap();
    assert!(account.deleted);
    assert!(fixture.project().api_keys.iter().all(|key| key.deleted));
    assert_eq!(fixture.client.get_key(&id).await.unwrap(), None);
    // The revoked key no longer works.
    let err = fixture
        .client_with(ADMIN)
        .inspect_imported(&created.value)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn getting_an_unknown_key_returns_none_and_ids_cannot_escape_their_segment() {
    let fixture = Fixture::new().await;
    assert_eq!(fixture.client.get_key("svc_acct_nope").await.unwrap(), None);
    assert_eq!(fixture.client.get_key("key_nope").await.unwrap(), None);
    assert_eq!(fixture.client.get_key("../../projects").await.unwrap(), None);
}

#[tokio::test]
async fn usage_adds_up_costs_and_completions_of_the_key_alone() {
    let fixture = Fixture::new().await;
    // Created 80 days ago, so that the costs report spans more than the current month.
    let now = Timestamp::now();
    fixture.sim.clock().set(now - SignedDuration::from_hours(80 * 24));
    let created = fixture.client.create_key(&named("spender")).await.unwrap();
    fixture.sim.clock().set(now);
    let other = fixture.client.create_key(&named("bystander")).await.unwrap();
    let key_of = |id: &str| {
        fixture
            .sim
            .service_account(DEFAULT_PROJECT_ID, id)
            .unwrap()
            .key_id
            .unwrap()
    };
    let (mine, theirs) = (key_of(&created.record.id), key_of(&other.record.id));
    let windows = Windows::at(now);
    let record = |usage: Usage| assert!(fixture.sim.record_usage(usage));
    record(
        Usage::new(&mine, "gpt-4o", 2.0)
            .tokens(100, 20)
            .requests(4)
            .at(windows.day),
    );
    record(
        Usage::new(&mine, "gpt-4o-mini", 0.5)
            .tokens(10, 5)
            .at(windows.day),
    );
    record(Usage::new(&mine, "gpt-4o", 8.0).at(windows.month - SignedDuration::from_hours(24 * 20)));
    record(
        Usage::new(&theirs, "gpt-4o", 100.0)
            .tokens(1000, 1000)
            .at(windows.day),
    );

    let usage = fixture
        .client
        .get_key(&created.record.id)
        .await
        .unwrap()
        .unwrap()
        .usage;
    assert_eq!(usage.total_usd, Some(10.5));
    assert_eq!(usage.daily_usd, Some(2.5));
    assert_eq!(usage.weekly_usd, Some(2.5));
    assert_eq!(usage.monthly_usd, Some(2.5));
    assert_eq!(usage.requests_today, Some(5));
    assert_eq!(usage.tokens_today, Some(135));
    let models: Vec<(&str, Option<u64>, Option<u64>)> = usage
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.requests, m.tokens))
        .collect();
    assert_eq!(
        models,
        vec![("gpt-4o", Some(4), Some(120)), ("gpt-4o-mini", Some(1), Some(15))]
    );
    assert_eq!(usage.remaining_usd, None);
    // One costs and one completions report per read.
    assert_eq!(fixture.requests("GET", "/organization/costs"), 1);
    assert_eq!(fixture.requests("GET", "/usage/completions"), 1);
}

/// Usage recorded on a day the simulator's clock was moved to is today's for a client on that clock,
/// while one on real time asks for other windows and sees none of it.
#[tokio::test]
async fn usage_windows_follow_the_clock_the_client_is_given() {
    let fixture = Fixture::new().await;
    let clock = fixture.sim.clock();
    clock.set("2024-03-15T12:00:00Z".parse().unwrap());
    let on_clock = fixture.client_with(ADMIN).with_clock(clock.clone());
    let created = on_clock.create_key(&named("dated")).await.unwrap();
    let key = fixture
        .sim
        .service_account(DEFAULT_PROJECT_ID, &created.record.id)
        .unwrap()
        .key_id
        .unwrap();
    let windows = Windows::at(clock.now());
    assert!(
        fixture
            .sim
            .record_usage(Usage::new(&key, "gpt-4o", 3.0).requests(2).at(windows.day))
    );
    let usage = on_clock.get_key(&created.record.id).await.unwrap().unwrap().usage;
    assert_eq!((usage.daily_usd, usage.requests_today), (Some(3.0), Some(2)));
    // On real time the client asks for windows the simulator has not reached (it refuses them).
    let on_real_time = fixture.client.get_key(&created.record.id).await;
    assert!(
        !matches!(&on_real_time, Ok(Some(record)) if record.usage.daily_usd == Some(3.0)),
        "{on_real_time:?}"
    );
}

#[tokio::test]
async fn the_costs_report_of_an_old_key_is_read_across_pages() {
    let fixture = Fixture::new().await;
    let now = Timestamp::now();
    fixture
        .sim
        .clock()
        .set(now - SignedDuration::from_hours(400 * 24));
    let created = fixture.client.create_key(&named("veteran")).await.unwrap();
    fixture.sim.clock().set(now);
    let key = fixture
        .sim
        .service_account(DEFAULT_PROJECT_ID, &created.record.id)
        .unwrap()
        .key_id
        .unwrap();
    for days in [399, 200, 10] {
        let at = now - SignedDuration::from_hours(days * 24);
        assert!(fixture.sim.record_usage(Usage::new(&key, "gpt-4o", 1.0).at(at)));
    }
    let usage = fixture
        .client
        .get_key(&created.record.id)
        .await
        .unwrap()
        .unwrap()
        .usage;
    assert_eq!(usage.total_usd, Some(3.0));
    // 401 daily buckets at 180 per page.
    assert_eq!(fixture.requests("GET", "/organization/costs"), 3);
}

#[tokio::test]
async fn a_rate_limited_usage_report_waits_out_retry_after_then_succeeds() {
    let fixture = Fixture::new().await;
    let created = fixture.client.create_key(&named("k")).await.unwrap();
    fixture
        .sim
        .inject(Fault::rate_limit(1, 1).on_path("/organization/costs"));
    let start = Instant::now();
    let record = fixture.client.get_key(&created.record.id).await.unwrap().unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
    assert_eq!(record.usage.total_usd, Some(0.0));
    assert_eq!(fixture.sim.early_retries(), 0);
    assert_eq!(fixture.requests("GET", "/organization/costs"), 2);
}

#[tokio::test]
async fn a_retry_after_longer_than_a_call_may_wait_fails_fast_as_rate_limited() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::rate_limit(1, 120));
    let start = Instant::now();
    let err = fixture.client.list_keys().await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(fixture.sim.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success_or_the_retry_budget() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::server_error(3));
    fixture.client.verify().await.unwrap();
    let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 500, 200]);

    let fixture = Fixture::with(
        hub(DEFAULT_PROJECT_ID),
        HttpConfig {
            max_retries: 2,
            ..fast_config()
        },
    )
    .await;
    fixture.sim.inject(Fault::server_error(10));
    let err = fixture.client.list_keys().await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err:?}");
    assert_eq!(fixture.sim.requests().len(), 3);
}

#[tokio::test]
async fn a_create_whose_connection_drops_is_not_retried() {
    let fixture = Fixture::new().await;
    fixture.sim.inject(Fault::drop_after_create(1));
    let err = fixture
        .client
        .create_key(&named("dropped [ks:x/1]"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
    assert_eq!(fixture.requests("POST", "/service_accounts"), 1);
    // The service account exists and carries the tag, so crash recovery can find and revoke it.
    assert_eq!(fixture.sim.live_service_accounts_named_with("[ks:x/1]"), 1);
    let listed = fixture.client.list_keys().await.unwrap();
    assert!(listed.iter().any(|key| key.name == "dropped [ks:x/1]"));
}

#[tokio::test]
async fn a_create_answered_with_429_or_500_is_retried_and_mints_one_key() {
    let fixture = Fixture::new().await;
    fixture
        .sim
        .inject(Fault::rate_limit(1, 0).on_path("/service_accounts"));
    fixture
        .sim
        .inject(Fault::server_error(1).on_path("/service_accounts"));
    fixture
        .client
        .create_key(&named("retried [ks:y/1]"))
        .await
        .unwrap();
    assert_eq!(fixture.requests("POST", "/service_accounts"), 3);
    assert_eq!(fixture.sim.live_service_accounts_named_with("[ks:y/1]"), 1);
}

#[tokio::test]
async fn inspecting_imported_keys_calls_models_with_the_key_itself() {
    let fixture = Fixture::new().await;
    let value = "sk-proj-imported-0123456789abcdefghij";
    fixture
        .sim
        .add_user_key(DEFAULT_PROJECT_ID, value, "legacy")
        .unwrap();
    let info = fixture
        .client
        .inspect_imported(&SecretValue::new(value))
        .await
        .unwrap();
    assert_eq!(info, ImportedKeyInfo::default());
    assert_eq!(fixture.requests("GET", "/v1/models"), 1);

    let err = fixture
        .client
        .inspect_imported(&SecretValue::new("sk-proj-bogus-99999999999999999999"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("99999999999999"));

    let err = fixture
        .client
        .inspect_imported(&SecretValue::new(ADMIN))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert_eq!(fixture.requests("GET", "/v1/models"), 2);
}

#[tokio::test]
async fn an_imported_key_is_found_by_its_id_or_by_an_unambiguous_mask() {
    let fixture = Fixture::new().await;
    let value = SecretValue::new("sk-proj-imported-0123456789abcdefghij");
    let id = fixture
        .sim
        .add_user_key(DEFAULT_PROJECT_ID, value.expose(), "legacy")
        .unwrap();
    assert!(fixture.sim.record_usage(Usage::new(&id, "gpt-4o", 1.25)));

    let by_id = fixture
        .client
        .find_imported(&value, Some(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((by_id.id.as_str(), by_id.name.as_str()), (id.as_str(), "legacy"));
    assert_eq!(by_id.usage.total_usd, Some(1.25));
    let by_mask = fixture.client.find_imported(&value, None).await.unwrap().unwrap();
    assert_eq!(by_mask.id, id);
    assert_eq!(fixture.client.get_key(&id).await.unwrap().unwrap().id, id);

    let err = fixture
        .client
        .find_imported(&value, Some("key_missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // A second key with the same visible head and tail makes the mask ambiguous.
    fixture
        .sim
        .add_user_key(DEFAULT_PROJECT_ID, "sk-proj-impXXXXXXXXXXXXXXhij", "twin")
        .unwrap();
    assert_eq!(fixture.client.find_imported(&value, None).await.unwrap(), None);
    // A key owned by someone else cannot be renamed through keysmith.
    let err = fixture.client.update_key(&id, &named("x")).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn revoking_an_imported_key_deletes_a_users_key_but_never_a_service_accounts() {
    let fixture = Fixture::new().await;
    let id = fixture
        .sim
        .add_user_key(
            DEFAULT_PROJECT_ID,
            "sk-proj-imported-0123456789abcdefghij",
            "legacy",
        )
        .unwrap();
    fixture.client.delete_key(&id).await.unwrap();
    fixture.client.delete_key(&id).await.unwrap();
    assert!(fixture.project().api_keys.iter().any(|k| k.id == id && k.deleted));

    let created = fixture.client.create_key(&named("bot")).await.unwrap();
    let key = fixture
        .sim
        .service_account(DEFAULT_PROJECT_ID, &created.record.id)
        .unwrap()
        .key_id
        .unwrap();
    let err = fixture.client.delete_key(&key).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(
        !fixture
            .sim
            .service_account(DEFAULT_PROJECT_ID, &created.record.id)
            .unwrap()
            .deleted
    );
    assert_eq!(fixture.requests("DELETE", &format!("/api_keys/{key}")), 0);
}

#[tokio::test]
async fn without_a_project_only_imports_can_be_checked() {
    let sim = OpenAiSim::new([ADMIN.to_owned()], Clock::new());
    let running = sim.spawn().await.unwrap();
    let client = client_for(&running, ADMIN, None, fast_config());
    assert!(matches!(client.verify().await, Err(Error::Config(_))));
    assert!(matches!(
        client.create_key(&named("x")).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(client.list_keys().await, Err(Error::Config(_))));
    let value = SecretValue::new("sk-proj-imported-0123456789abcdefghij");
    sim.add_user_key(DEFAULT_PROJECT_ID, value.expose(), "legacy")
        .unwrap();
    client.inspect_imported(&value).await.unwrap();
    assert_eq!(client.find_imported(&value, None).await.unwrap(), None);
    assert!(sim.requests().iter().all(|r| r.path == "/v1/models"));
}

#[test]
fn endpoints_must_be_absolute_http_urls_without_credentials() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let build = |url: &str| {
        OpenAiClient::new(
            url,
            DEFAULT_INFERENCE_ENDPOINT,
            SecretValue::new(ADMIN),
            None,
            transport.clone(),
        )
    };
    for bad in [
        "not a url",
        "ftp://example.com/v1",
        "/v1",
        "https://example.com/v1?x=1",
    ] {
        assert!(matches!(build(bad), Err(Error::Config(_))), "{bad}");
    }
    let err = build("https://user:hunter2@example.com/").unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
    for good in [
        DEFAULT_ENDPOINT,
        "http://127.0.0.1:8080/v1/",
        "https://proxy.internal",
    ] {
        build(good).unwrap();
    }
}

#[test]
fn the_client_debug_output_hides_the_admin_key() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = OpenAiClient::new(
        DEFAULT_ENDPOINT,
        DEFAULT_INFERENCE_ENDPOINT,
        SecretValue::new(ADMIN),
        Some(hub("proj_x")),
        transport,
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("client-tests"));
}

#[test]
fn capabilities_say_what_openai_holds_and_what_keysmith_does() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = OpenAiClient::new(
        DEFAULT_ENDPOINT,
        DEFAULT_INFERENCE_ENDPOINT,
        SecretValue::new(ADMIN),
        None,
        transport,
    )
    .unwrap();
    let caps = client.capabilities();
    use Enforcement::*;
    assert_eq!(
        (caps.rename, caps.usage, caps.provisioning),
        (Provider, Provider, Provider)
    );
    assert_eq!(
        (caps.budget, caps.expiry, caps.disable, caps.rotation),
        (Operator, Operator, Operator, Operator)
    );
    assert_eq!(
        (caps.rate_limits, caps.model_limits, caps.request_limits),
        (Advisory, Advisory, Advisory)
    );
    assert!(!client.expiry_in_place());
}

#[test]
fn masks_match_only_values_with_the_same_head_and_tail() {
    assert!(mask_matches("sk-proj-abc...xyz", "sk-proj-abcdefghixyz"));
    assert!(!mask_matches("sk-proj-abc...xyz", "sk-proj-abddefghixyz"));
    assert!(!mask_matches("sk-...", "sk-anything"));
    assert!(!mask_matches("no mask", "no mask"));
    assert!(!mask_matches("sk-abc...xyz", "sk-abcxyz"));
}
