//! ApiKey and ModelHub end to end on the real control plane, with the OpenAI simulator: a key minted
//! as a project service account, its Secret, renaming in place, usage and cost in status, the hub's
//! project rate and spend limits, provider errors as conditions, imports linked by key id, deletion
//! per policy, and a crash between the provider's create and the Secret write.

use std::time::Duration;

use crate::support::{
    eventually,
    operator::{Scene, condition, expect_crash, hub_ready, is_ready, key_ready, merge},
};
use keysmith_api::{ApiKey, Enforcement};
use keysmith_providers::SecretValue;
use keysmith_simulators::{
    RunningSim,
    clock::Clock,
    faults::Fault,
    openai::{DEFAULT_PROJECT_ID, OpenAiSim, SimServiceAccount, Usage},
};
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

/// The admin key the simulator accepts.
const ADMIN_KEY: &str = "sk-admin-lifecycle-tests-000000000000000000000000000";

/// A namespace with an OpenAI simulator and the admin-key Secret.
struct OpenAi {
    scene: Scene,
    sim: OpenAiSim,
    running: RunningSim,
}

impl std::ops::Deref for OpenAi {
    type Target = Scene;
    fn deref(&self) -> &Scene {
        &self.scene
    }
}

impl OpenAi {
    async fn new(prefix: &str) -> Self {
        Self::on_clock(prefix, Clock::new()).await
    }

    /// The same, with the simulator on `clock` (start the operator on it too).
    async fn on_clock(prefix: &str, clock: Clock) -> Self {
        let scene = Scene::new(prefix).await;
        let sim = OpenAiSim::new([ADMIN_KEY.to_owned()], clock);
        let running = sim.spawn().await.unwrap();
        scene
            .apply_secret("openai-admin", json!({"key": ADMIN_KEY}))
            .await;
        Self { scene, sim, running }
    }

    async fn with_operator(prefix: &str) -> Self {
        let mut env = Self::new(prefix).await;
        env.scene.start_operator();
        env
    }

    /// Applies a ModelHub for the simulator's default project; `extra` is merged into its spec.
    async fn apply_hub(&self, name: &str, extra: Value) {
        let mut spec = json!({
            "provider": "openai",
            "endpoint": self.running.base_url,
            "inferenceEndpoint": self.running.base_url,
            "credentialsRef": {"name": "openai-admin", "key": "key"},
            "openai": {"projectId": DEFAULT_PROJECT_ID},
        });
        merge(&mut spec, extra);
        self.apply_hub_spec(name, spec).await;
    }

    async fn wait_hub_ready(&self, name: &str) {
        self.wait_hub(name, "hub Ready", |h| {
            hub_ready(h).is_some_and(|(s, _)| s == "True")
        })
        .await;
    }

    fn account(&self, id: &str) -> SimServiceAccount {
        self.sim.service_account(DEFAULT_PROJECT_ID, id).unwrap()
    }

    /// Service accounts whose name carries `uid`, deleted ones included.
    fn accounts_of(&self, uid: &str) -> Vec<SimServiceAccount> {
        self.sim
            .project(DEFAULT_PROJECT_ID)
            .unwrap()
            .service_accounts
            .into_iter()
            .filter(|a| a.name.contains(uid))
            .collect()
    }
}

fn status_key_id(key: &ApiKey) -> Option<String> {
    key.status.as_ref().and_then(|s| s.key_id.clone())
}

#[tokio::test]
async fn a_minted_key_is_a_service_account_whose_key_lands_in_the_secret_and_follows_the_spec() {
    let env = OpenAi::with_operator("oai-mint").await;
    env.apply_hub(
        "oai",
        json!({"openai": {"projectId": DEFAULT_PROJECT_ID,
            "rateLimits": [{"model": "gpt-4o-mini", "requestsPerMinute": 100, "tokensPerMinute": 50000}],
            "spendLimitUsd": 50.0}}),
    )
    .await;
    env.wait_hub_ready("oai").await;
    // The hub's project-wide limits are applied at OpenAI.
    let project = env.sim.project(DEFAULT_PROJECT_ID).unwrap();
    let row = project
        .rate_limits
        .iter()
        .find(|r| r.model == "gpt-4o-mini")
        .unwrap();
    assert_eq!(
        (
            row.max_requests_per_1_minute,
            row.max_tokens_per_1_minute,
            row.max_requests_per_1_day
        ),
        (Some(100), Some(50_000), Some(10_000))
    );
    assert_eq!(project.spend_limit_cents, Some(5_000));

    env.apply_key(
        "bot",
        json!({"hubRef": {"name": "oai"}, "displayName": "support-bot",
               "budget": {"limitUsd": 10.0, "reset": "Monthly"},
               "modelLimits": [{"model": "gpt-4o-mini", "requestsPerMinute": 60}],
               "secret": {"name": "bot-key", "keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL"}}}),
    )
    .await;
    let key = env.wait_key("bot", "ApiKey Ready", is_ready).await;
    let uid = key.uid().unwrap();
    let status = key.status.clone().unwrap();
    let account_id = status.key_id.clone().unwrap();
    assert!(account_id.starts_with("svc_acct_"), "{account_id}");

    // The service account carries the display name and keysmith's tag; the Secret holds its key.
    let account = env.account(&account_id);
    assert!(
        account.name.starts_with(&format!("support-bot [ks:{uid}/")),
        "{}",
        account.name
    );
    assert!(!account.deleted);
    let data = env.secret_data("bot-key").await.unwrap();
    let value = SecretValue::new(data["OPENAI_API_KEY"].clone());
    assert!(value.expose().starts_with("sk-svcacct-"));
    assert_eq!(data["OPENAI_BASE_URL"], env.running.base_url);
    assert_eq!(status.fingerprint.as_deref(), Some(value.fingerprint().as_str()));
    let label = status.key_label.clone().unwrap();
    let project_key = env
        .sim
        .project(DEFAULT_PROJECT_ID)
        .unwrap()
        .api_keys
        .into_iter()
        .find(|k| Some(&k.id) == account.key_id.as_ref())
        .unwrap();
    assert_eq!(label, project_key.redacted_value);
    assert!(
        !serde_json::to_string(&key.status)
            .unwrap()
            .contains(value.expose())
    );

    // OpenAI holds no per-key limits: the budget is keysmith's to watch, model limits are published.
    let limits = status.effective_limits.unwrap();
    assert_eq!(limits.budget.unwrap().enforcement, Enforcement::Operator);
    assert_eq!(limits.model_limits[0].enforcement, Enforcement::Advisory);

    // Renaming happens in place: same service account, same value.
    env.apply_key(
        "bot",
        json!({"hubRef": {"name": "oai"}, "displayName": "support-bot v2",
               "budget": {"limitUsd": 10.0, "reset": "Monthly"},
               "modelLimits": [{"model": "gpt-4o-mini", "requestsPerMinute": 60}],
               "secret": {"name": "bot-key", "keys": {"apiKey": "OPENAI_API_KEY", "baseUrl": "OPENAI_BASE_URL"}}}),
    )
    .await;
    eventually("the service account renamed", Duration::from_secs(60), || async {
        env.account(&account_id)
            .name
            .starts_with("support-bot v2 [ks:")
            .then_some(())
    })
    .await;
    let key = env.wait_key("bot", "Ready after the rename", is_ready).await;
    assert_eq!(status_key_id(&key).as_deref(), Some(account_id.as_str()));
    assert_eq!(
        env.secret_data("bot-key").await.unwrap()["OPENAI_API_KEY"],
        value.expose()
    );
    assert_eq!(env.accounts_of(&uid).len(), 1);

    // Usage and cost per key reach status.
    let key_id = account.key_id.unwrap();
    assert!(
        env.sim.record_usage(
            Usage::new(&key_id, "gpt-4o-mini", 2.5)
                .tokens(1000, 200)
                .requests(7)
        )
    );
    assert!(
        env.sim
            .record_usage(Usage::new(&key_id, "gpt-4o", 0.5).tokens(100, 50))
    );
    let key = env
        .wait_key("bot", "usage in status", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.usage.as_ref())
                .and_then(|u| u.current_usd)
                == Some(3.0)
        })
        .await;
    let usage = key.status.unwrap().usage.unwrap();
    assert_eq!((usage.total_usd, usage.daily_usd), (Some(3.0), Some(3.0)));
    assert_eq!((usage.requests_today, usage.tokens_today), (Some(8), Some(1350)));
    assert_eq!(usage.models.len(), 2);
    assert!(usage.window_resets_at.is_some());

    // The hub reports capabilities and counts the key as managed.
    let hub = env
        .wait_hub("oai", "one managed key", |h| {
            h.status
                .as_ref()
                .and_then(|s| s.keys.as_ref())
                .is_some_and(|k| k.managed == 1)
        })
        .await;
    let caps = hub.status.unwrap().capabilities.unwrap();
    assert_eq!(
        (caps.rename, caps.budget, caps.rate_limits, caps.expiry),
        (
            Enforcement::Provider,
            Enforcement::Operator,
            Enforcement::Advisory,
            Enforcement::Operator
        )
    );
    // Applied once: every later verification found the limits as wanted.
    let writes = env
        .sim
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST" && (r.path.contains("/rate_limits/") || r.path.ends_with("/spend_limit"))
        })
        .count();
    assert_eq!(writes, 2);
}

#[tokio::test]
async fn deleting_an_apikey_revokes_its_service_account_unless_orphaned() {
    let env = OpenAi::with_operator("oai-delete").await;
    env.apply_hub("oai", json!({})).await;
    env.apply_key("gone", json!({"hubRef": {"name": "oai"}})).await;
    env.apply_key(
        "kept",
        json!({"hubRef": {"name": "oai"}, "deletionPolicy": "Orphan"}),
    )
    .await;
    let gone = status_key_id(&env.wait_key("gone", "Ready", is_ready).await).unwrap();
    let kept = status_key_id(&env.wait_key("kept", "Ready", is_ready).await).unwrap();

    let api = env.ns.api::<ApiKey>();
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    eventually("both ApiKeys gone", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    assert!(env.account(&gone).deleted, "Delete revokes the service account");
    assert!(!env.account(&kept).deleted, "Orphan leaves it");
    let project = env.sim.project(DEFAULT_PROJECT_ID).unwrap();
    let key_of = |id: &str| {
        project
            .api_keys
            .iter()
            .find(|k| k.service_account_id.as_deref() == Some(id))
            .unwrap()
            .deleted
    };
    assert!(
        key_of(&gone) && !key_of(&kept),
        "the key goes with its service account"
    );
}

#[tokio::test]
async fn provider_errors_become_conditions_and_429_and_5xx_are_retried() {
    let env = OpenAi::with_operator("oai-errors").await;
    // A wrong admin key, and a project OpenAI does not know.
    env.apply_secret("wrong", json!({"key": "sk-admin-wrong-00000000000000000000"}))
        .await;
    env.apply_hub(
        "badkey",
        json!({"credentialsRef": {"name": "wrong", "key": "key"}}),
    )
    .await;
    env.apply_hub("noproject", json!({"openai": {"projectId": "proj_missing"}}))
        .await;
    env.wait_hub("badkey", "Unauthorized", |h| {
        hub_ready(h).is_some_and(|(s, r)| s == "False" && r == "Unauthorized")
    })
    .await;
    env.wait_hub("noproject", "NotFound", |h| {
        hub_ready(h).is_some_and(|(s, r)| s == "False" && r == "NotFound")
    })
    .await;

    env.apply_hub("oai", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "oai"}})).await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    let account = env.account(&status_key_id(&key).unwrap());

    // A 429 with Retry-After on the cost report is waited out, never retried early.
    env.sim
        .inject(Fault::rate_limit(1, 1).on_path("/organization/costs"));
    assert!(
        env.sim
            .record_usage(Usage::new(account.key_id.as_deref().unwrap(), "gpt-4o", 1.25))
    );
    env.wait_key("k", "usage after a 429", |k| {
        k.status
            .as_ref()
            .and_then(|s| s.usage.as_ref())
            .and_then(|u| u.total_usd)
            == Some(1.25)
    })
    .await;
    assert!(env.sim.requests().iter().any(|r| r.status == 429));
    assert_eq!(env.sim.early_retries(), 0);

    // Server errors beyond the retry budget surface as Synced=False (transient, retried) while the
    // delivered key stays Ready: it still works, and Argo CD should not call it unhealthy.
    env.sim.inject(Fault::server_error(1_000));
    env.wait_key("k", "Synced=False ProviderError while OpenAI fails", |k| {
        let conds = k.status.as_ref().map(|s| &s.conditions);
        condition(conds, "Synced").is_some_and(|(s, r)| s == "False" && r == "ProviderError")
            && condition(conds, "Reconciling").is_some_and(|(s, _)| s == "True")
            && is_ready(k)
    })
    .await;
    env.sim.clear_faults();
    let key = env
        .wait_key("k", "in sync again", |k| {
            is_ready(k)
                && condition(k.status.as_ref().map(|s| &s.conditions), "Synced")
                    .is_some_and(|(s, _)| s == "True")
        })
        .await;
    // Still the same key: failures never mint a second one.
    assert_eq!(status_key_id(&key), Some(account.id.clone()));
    assert_eq!(env.accounts_of(&key.uid().unwrap()).len(), 1);
}

#[tokio::test]
async fn an_imported_key_is_validated_linked_by_key_id_and_reports_usage() {
    let env = OpenAi::with_operator("oai-import").await;
    let value = "sk-proj-imported-lifecycle-0123456789abcdefghijklmnop";
    let key_id = env.sim.add_user_key(DEFAULT_PROJECT_ID, value, "legacy").unwrap();
    assert!(
        env.sim
            .record_usage(Usage::new(&key_id, "gpt-4o", 1.5).tokens(40, 2))
    );
    env.apply_hub("oai", json!({})).await;
    env.apply_secret("existing", json!({"value": value})).await;
    env.apply_key(
        "imp",
        json!({"hubRef": {"name": "oai"},
               "import": {"secretRef": {"name": "existing", "key": "value"}, "keyId": key_id}}),
    )
    .await;
    let key = env.wait_key("imp", "imported key Ready", is_ready).await;
    assert_eq!(env.secret_data("imp").await.unwrap()["apiKey"], value);
    let status = key.status.unwrap();
    assert_eq!(status.key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(status.key_label.as_deref(), Some("sk-proj-imp...nop"));
    let usage = status.usage.unwrap();
    assert_eq!((usage.total_usd, usage.tokens_today), (Some(1.5), Some(42)));
    assert!(
        env.sim
            .project(DEFAULT_PROJECT_ID)
            .unwrap()
            .api_keys
            .iter()
            .any(|k| k.id == key_id && k.last_used_at.is_some()),
        "validated against /v1/models with the key itself"
    );

    // A key OpenAI rejects is reported, not copied.
    env.apply_secret("bogus", json!({"value": "sk-proj-not-a-key-000000000000"}))
        .await;
    env.apply_key(
        "bad",
        json!({"hubRef": {"name": "oai"}, "import": {"secretRef": {"name": "bogus", "key": "value"}}}),
    )
    .await;
    env.wait_key("bad", "Unauthorized import", |k| {
        key_ready(k).is_some_and(|(s, r)| s == "False" && r == "Unauthorized")
    })
    .await;
    assert!(env.secret_data("bad").await.is_none());

    // A linked import is revoked on delete (the default policy): a user's key can be deleted.
    let api = env.ns.api::<ApiKey>();
    api.delete("imp", &DeleteParams::default()).await.unwrap();
    eventually("imported ApiKey gone", Duration::from_secs(60), || {
        let api = api.clone();
        async move { api.get_opt("imp").await.unwrap().is_none().then_some(()) }
    })
    .await;
    let project = env.sim.project(DEFAULT_PROJECT_ID).unwrap();
    assert!(project.api_keys.iter().any(|k| k.id == key_id && k.deleted));
}

#[tokio::test]
async fn a_requested_rotation_mints_a_new_service_account_and_deletes_the_old_after_the_overlap() {
    let env = OpenAi::with_operator("oai-rotate").await;
    env.apply_hub("oai", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "oai"}, "rotation": {"overlap": "6s"}}),
    )
    .await;
    let first = env.wait_key("k", "Ready", is_ready).await;
    let old_id = status_key_id(&first).unwrap();
    let old_value = env.secret_data("k").await.unwrap()["apiKey"].clone();

    let patch = json!({"metadata": {"annotations": {"keysmith.dev/rotate": "t1"}}});
    env.ns
        .api::<ApiKey>()
        .patch("k", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let rotated = env
        .wait_key("k", "rotated", |k| {
            is_ready(k) && status_key_id(k).is_some_and(|id| id != old_id)
        })
        .await;
    let new_id = status_key_id(&rotated).unwrap();
    assert_ne!(env.secret_data("k").await.unwrap()["apiKey"], old_value);
    // The old key keeps working through the overlap, then its service account is deleted.
    assert!(!env.account(&old_id).deleted);
    eventually(
        "the old service account deleted",
        Duration::from_secs(60),
        || async { env.account(&old_id).deleted.then_some(()) },
    )
    .await;
    assert!(!env.account(&new_id).deleted);
    let live: Vec<_> = env
        .accounts_of(&rotated.uid().unwrap())
        .into_iter()
        .filter(|a| !a.deleted)
        .collect();
    assert_eq!(live.len(), 1);
}

#[tokio::test]
async fn an_expiry_openai_does_not_hold_is_reported_from_the_spec() {
    let env = OpenAi::with_operator("oai-expiry").await;
    env.apply_hub("oai", json!({})).await;
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(10))
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    env.apply_key("k", json!({"hubRef": {"name": "oai"}, "expiresAt": soon}))
        .await;
    let key = env.wait_key("k", "Ready before expiry", is_ready).await;
    assert_eq!(key.status.unwrap().expires_at.as_deref(), Some(soon.as_str()));
    let key = env
        .wait_key("k", "Expired", |k| {
            condition(k.status.as_ref().map(|s| &s.conditions), "Expired")
                .is_some_and(|(s, r)| s == "True" && r == "KeyExpired")
        })
        .await;
    assert_eq!(key_ready(&key), Some(("False".into(), "Expired".into())));
}

#[tokio::test]
async fn a_crash_between_the_create_and_the_secret_write_leaves_no_live_service_account_behind() {
    let env = OpenAi::new("oai-crash").await;
    env.apply_hub("oai", json!({})).await;
    let mut crashing = env.operator_command();
    crashing.env("KEYSMITH_FAILPOINT", "after-provider-create");
    let mut crashing = crashing.spawn().unwrap();
    env.apply_key("k", json!({"hubRef": {"name": "oai"}})).await;
    expect_crash(&mut crashing).await;

    let _healthy = env.operator_command().spawn().unwrap();
    let key = env.wait_key("k", "Ready after restart", is_ready).await;
    let status = key.status.clone().unwrap();
    assert!(status.pending_create.is_none());
    let made = env.accounts_of(&key.uid().unwrap());
    // The service account created before the crash had no Secret: nobody held its key, so it was
    // deleted; its replacement is the one the Secret holds.
    assert_eq!(made.len(), 2, "{made:#?}");
    let live: Vec<_> = made.iter().filter(|a| !a.deleted).collect();
    assert_eq!(live.len(), 1, "{made:#?}");
    assert_eq!(Some(&live[0].id), status.key_id.as_ref());
    let data = env.secret_data("k").await.unwrap();
    assert_eq!(
        status.fingerprint,
        Some(SecretValue::new(data["apiKey"].clone()).fingerprint())
    );
}

/// OpenAI keys cannot be disabled: `disabled: true` and a budget reached under `Reject` revoke the
/// key (its service account), and a key that may work again is a new key with a new value.
#[tokio::test]
async fn a_key_openai_cannot_disable_is_revoked_and_a_new_one_is_issued_when_it_may_work_again() {
    let env = OpenAi::with_operator("oai-suspend").await;
    env.apply_hub("oai", json!({})).await;
    let spec = |disabled: bool, budget: f64| {
        json!({"hubRef": {"name": "oai"}, "disabled": disabled, "onLimitExceeded": "Reject",
               "budget": {"limitUsd": budget, "reset": "Monthly"}})
    };
    env.apply_key("k", spec(false, 1.0)).await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    let uid = key.uid().unwrap();
    let first = status_key_id(&key).unwrap();
    let first_value = env.secret_data("k").await.unwrap()["apiKey"].clone();

    // Disabled: the service account is deleted, the Secret kept, status says why.
    env.apply_key("k", spec(true, 1.0)).await;
    let key = env
        .wait_key("k", "disabled by revocation", |k| {
            key_ready(k) == Some(("False".into(), "KeyDisabled".into()))
                && k.status.as_ref().is_some_and(|s| s.key_id.is_none())
        })
        .await;
    assert!(env.account(&first).deleted, "the disabled key is revoked");
    let suspended = key.status.unwrap().suspended.unwrap();
    assert_eq!(suspended.reason.as_str(), "Disabled");
    assert_eq!(suspended.revoked_key_id.as_deref(), Some(first.as_str()));
    assert_eq!(env.secret_data("k").await.unwrap()["apiKey"], first_value);

    // Enabled again: a new service account, a new value in the Secret, Ready.
    env.apply_key("k", spec(false, 1.0)).await;
    let key = env
        .wait_key("k", "Ready with a new key", |k| {
            is_ready(k) && status_key_id(k).is_some_and(|id| id != first)
        })
        .await;
    let second = status_key_id(&key).unwrap();
    assert!(key.status.as_ref().unwrap().suspended.is_none());
    let second_value = env.secret_data("k").await.unwrap()["apiKey"].clone();
    assert_ne!(second_value, first_value);
    assert!(!env.account(&second).deleted);

    // Over budget under Reject: revoked again, LimitExceeded.
    let project_key = env.account(&second).key_id.unwrap();
    assert!(env.sim.record_usage(Usage::new(&project_key, "gpt-4o-mini", 2.0)));
    let key = env
        .wait_key("k", "revoked over budget", |k| {
            key_ready(k) == Some(("False".into(), "LimitExceeded".into()))
        })
        .await;
    assert!(env.account(&second).deleted, "the key over budget is revoked");
    let status = key.status.unwrap();
    assert_eq!(status.suspended.unwrap().reason.as_str(), "LimitExceeded");
    assert_eq!(
        condition(Some(&status.conditions), "LimitExceeded"),
        Some(("True".into(), "BudgetExceeded".into()))
    );

    // A larger budget lets it work again: one more new key, exactly one live service account.
    env.apply_key("k", spec(false, 5.0)).await;
    let key = env
        .wait_key("k", "Ready with a third key", |k| {
            is_ready(k) && status_key_id(k).is_some_and(|id| id != first && id != second)
        })
        .await;
    assert!(key.status.unwrap().suspended.is_none());
    let live: Vec<_> = env.accounts_of(&uid).into_iter().filter(|a| !a.deleted).collect();
    assert_eq!(live.len(), 1, "one live service account: {live:?}");
}

/// A key revoked over a daily budget comes back as one new key at UTC midnight, though the operator
/// is down when the window resets.
#[tokio::test]
async fn a_key_revoked_over_its_daily_budget_is_reissued_once_at_midnight_across_a_restart() {
    let clock = Clock::starting_at("2026-11-23T23:50:00Z".parse().unwrap());
    let mut env = OpenAi::on_clock("oai-reset", clock.clone()).await;
    env.scene.start_operator_with_clock(clock.clone());
    env.apply_hub("oai", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "oai"}, "onLimitExceeded": "Reject",
               "budget": {"limitUsd": 1.0, "reset": "Daily"}}),
    )
    .await;
    let key = env.wait_key("k", "Ready", is_ready).await;
    let uid = key.uid().unwrap();
    let first = status_key_id(&key).unwrap();
    let project_key = env.account(&first).key_id.unwrap();
    assert!(env.sim.record_usage(Usage::new(&project_key, "gpt-4o-mini", 1.5)));
    let key = env
        .wait_key("k", "revoked over the daily budget", |k| {
            key_ready(k) == Some(("False".into(), "LimitExceeded".into()))
                && k.status.as_ref().is_some_and(|s| s.suspended.is_some())
        })
        .await;
    assert!(env.account(&first).deleted);
    assert_eq!(
        key.status.unwrap().usage.unwrap().window_resets_at.as_deref(),
        Some("2026-11-24T00:00:00Z")
    );

    // Still refused a minute before midnight, on a running operator.
    clock.set("2026-11-23T23:59:00Z".parse().unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let key = env.ns.api::<ApiKey>().get("k").await.unwrap();
    assert!(status_key_id(&key).is_none(), "no new key before the reset");

    // Down across the reset; on its return, one new key.
    env.scene.stop_operator();
    clock.set("2026-11-24T00:00:30Z".parse().unwrap());
    env.scene.start_operator_with_clock(clock.clone());
    let key = env
        .wait_key("k", "Ready with a new key after midnight", |k| {
            is_ready(k) && status_key_id(k).is_some_and(|id| id != first)
        })
        .await;
    assert!(key.status.unwrap().suspended.is_none());
    // The new key's own spend, polled from OpenAI: a new day, a new key, nothing spent.
    env.wait_key("k", "the new key's spend", |k| {
        k.status
            .as_ref()
            .and_then(|s| s.usage.as_ref())
            .and_then(|u| u.current_usd)
            == Some(0.0)
    })
    .await;
    // Settled: exactly one restore, one live service account of two ever made.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let accounts = env.accounts_of(&uid);
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    assert_eq!(accounts.iter().filter(|a| !a.deleted).count(), 1);
    let events = env
        .ns
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let restored = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("KeyRestored"))
        .count();
    assert_eq!(restored, 1, "restored exactly once");
}

/// `limits.requestsPerDay` under `Reject`: OpenAI holds no per-key request cap, but it reports each
/// key's requests of the day, so keysmith enforces it (`Operator`): the key is revoked once the count
/// reaches the cap and one new key comes at 00:00 UTC, as for a daily budget.
#[tokio::test]
async fn a_daily_request_cap_is_enforced_by_keysmith_and_lifts_at_midnight() {
    let clock = Clock::starting_at("2026-11-23T23:40:00Z".parse().unwrap());
    let mut env = OpenAi::on_clock("oai-rpd", clock.clone()).await;
    env.scene.start_operator_with_clock(clock.clone());
    env.apply_hub("oai", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "oai"}, "onLimitExceeded": "Reject", "limits": {"requestsPerDay": 3}}),
    )
    .await;
    // Once OpenAI's usage report has been read, the cap is keysmith's to hold.
    env.wait_key("k", "requestsPerDay held by keysmith", |k| {
        is_ready(k)
            && k.status
                .as_ref()
                .and_then(|s| s.effective_limits.as_ref())
                .and_then(|l| l.requests_per_day.as_ref())
                .is_some_and(|v| v.value == 3 && v.enforcement == Enforcement::Operator)
    })
    .await;
    let first = status_key_id(&env.ns.api::<ApiKey>().get("k").await.unwrap()).unwrap();
    let project_key = env.account(&first).key_id.unwrap();
    let mut used = Usage::new(&project_key, "gpt-4o-mini", 0.01);
    used.requests = 3;
    assert!(env.sim.record_usage(used));
    let key = env
        .wait_key("k", "stopped at the daily request cap", |k| {
            key_ready(k) == Some(("False".into(), "LimitExceeded".into()))
                && k.status.as_ref().is_some_and(|s| s.suspended.is_some())
        })
        .await;
    let (status, reason) = condition(key.status.as_ref().map(|s| &s.conditions), "LimitExceeded").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "RateLimitExceeded"));
    assert!(env.account(&first).deleted);

    // 00:00 UTC: the count starts again, and one new key is issued.
    clock.set("2026-11-24T00:00:30Z".parse().unwrap());
    let key = env
        .wait_key("k", "Ready with a new key after midnight", |k| {
            is_ready(k) && status_key_id(k).is_some_and(|id| id != first)
        })
        .await;
    assert!(key.status.unwrap().suspended.is_none());
}

/// `onLimitExceeded: UseAnyway` with a daily request cap keysmith could hold: the key keeps working
/// past the cap (nothing revoked), `LimitExceeded` reports the overrun and `Ready` stays True.
#[tokio::test]
async fn use_anyway_keeps_a_key_past_its_daily_cap_working_and_reports_the_overrun() {
    let env = OpenAi::with_operator("oai-anyway").await;
    env.apply_hub("oai", json!({})).await;
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "oai"}, "onLimitExceeded": "UseAnyway", "limits": {"requestsPerDay": 3}}),
    )
    .await;
    let key = env.wait_key("k", "ApiKey Ready", is_ready).await;
    let first = status_key_id(&key).unwrap();
    let project_key = env.account(&first).key_id.unwrap();
    let mut used = Usage::new(&project_key, "gpt-4o-mini", 0.01);
    used.requests = 5;
    assert!(env.sim.record_usage(used));
    let key = env
        .wait_key("k", "LimitExceeded reported", |k| {
            condition(k.status.as_ref().map(|s| &s.conditions), "LimitExceeded")
                .is_some_and(|(s, r)| s == "True" && r == "RateLimitExceeded")
        })
        .await;
    assert_eq!(key_ready(&key), Some(("True".into(), "KeyReady".into())));
    let status = key.status.unwrap();
    assert!(status.suspended.is_none());
    assert_eq!(
        status_key_id(&env.ns.api::<ApiKey>().get("k").await.unwrap()),
        Some(first.clone())
    );
    assert!(!env.account(&first).deleted, "UseAnyway never revokes the key");
    assert_eq!(status.usage.unwrap().requests_today, Some(5));
}

/// Nothing set on the ApiKey or its hub: OpenAI's documented entry tier (Tier 1) fills the effective
/// limits, labelled as the whole account's (`appliesTo: Account`), enforced by OpenAI, and not counted
/// as a limit nobody enforces.
#[tokio::test]
async fn the_entry_tier_fills_effective_limits_as_the_accounts_own() {
    let env = OpenAi::with_operator("oai-tier").await;
    env.apply_hub("oai", json!({})).await;
    env.apply_key("k", json!({"hubRef": {"name": "oai"}})).await;
    let key = env.wait_key("k", "ApiKey Ready", is_ready).await;
    let status = key.status.unwrap();
    let limits = status.effective_limits.clone().unwrap();
    let account = Some(keysmith_api::LimitScope::Account);
    let rpm = limits.requests_per_minute.unwrap();
    assert_eq!(
        (rpm.value, rpm.source, rpm.enforcement, rpm.applies_to),
        (
            500,
            keysmith_api::LimitSource::ProviderDefault,
            Enforcement::Provider,
            account
        )
    );
    assert_eq!(limits.tokens_per_minute.unwrap().value, 30_000);
    let rate = limits.rate_limit.unwrap();
    assert_eq!(
        (rate.requests, rate.interval_seconds, rate.applies_to),
        (500, 60, account)
    );
    let note = limits.provider_defaults.unwrap();
    assert!(
        note.contains("OpenAI's entry tier") && note.contains("whole account"),
        "{note}"
    );
    let enforced = condition(Some(&status.conditions), "LimitsEnforced");
    assert_eq!(
        enforced,
        Some(("True".into(), "AllLimitsEnforced".into())),
        "the tier is the provider's, not a limit of the spec left to nobody"
    );
    // A limit the spec sets replaces the tier's figure and is the key's own.
    env.apply_key(
        "k",
        json!({"hubRef": {"name": "oai"}, "limits": {"requestsPerMinute": 40}}),
    )
    .await;
    let key = env
        .wait_key("k", "spec rpm in force", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.effective_limits.as_ref())
                .and_then(|l| l.requests_per_minute.as_ref())
                .is_some_and(|v| v.value == 40)
        })
        .await;
    let rpm = key
        .status
        .unwrap()
        .effective_limits
        .unwrap()
        .requests_per_minute
        .unwrap();
    assert_eq!(
        (rpm.source, rpm.applies_to),
        (keysmith_api::LimitSource::Spec, None)
    );
}
