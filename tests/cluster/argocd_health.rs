//! The Argo CD health checks in `examples/argocd/` run in a real Lua 5.1 interpreter the way Argo CD
//! runs them: a fresh state with only the base, table, package and os libraries (custom checks get
//! no `string` or `math`), the object as the global `obj`, and the table the chunk returns.
//!
//! Every fixture under `tests/fixtures/argocd/` names its expected health in two annotations,
//! `test.keysmith.dev/expected-health` and `test.keysmith.dev/expected-message` (a substring of the
//! message). Objects serialised from keysmith's own Rust types pin the field names the scripts read.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keysmith_api::{
    ApiKey, ApiKeySpec, ApiKeyStatus, Budget, BudgetReset, EffectiveBudget, EffectiveLimits, Enforcement,
    LimitSource, ModelHub, ModelHubSpec, ModelHubStatus, OnLimitExceeded, Usage, conditions,
};
use mlua::{Lua, LuaOptions, StdLib, Value as LuaValue};
use serde_json::{Value, json};

const EXPECTED_HEALTH: &str = "test.keysmith.dev/expected-health";
const EXPECTED_MESSAGE: &str = "test.keysmith.dev/expected-message";
const APIKEY_KEY: &str = "resource.customizations.health.keysmith.dev_ApiKey";
const MODELHUB_KEY: &str = "resource.customizations.health.keysmith.dev_ModelHub";
/// The statuses Argo CD accepts from a health script; anything else becomes `Unknown`.
const ARGO_STATUSES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn script_for(kind: &str) -> String {
    match kind {
        "ApiKey" => read("examples/argocd/apikey-health.lua"),
        "ModelHub" => read("examples/argocd/modelhub-health.lua"),
        other => panic!("no health script for kind {other}"),
    }
}

/// What a health script returned.
#[derive(Debug)]
struct Health {
    status: String,
    message: String,
}

/// Converts JSON into Lua values the way Argo CD's `decodeValue` does: numbers become Lua numbers,
/// `null` becomes `nil`, arrays become sequences starting at 1.
fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => LuaValue::Number(n.as_f64().expect("JSON number fits in f64")),
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let table = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(table)
        }
        Value::Object(map) => {
            let table = lua.create_table()?;
            for (key, item) in map {
                table.raw_set(key.as_str(), to_lua(lua, item)?)?;
            }
            LuaValue::Table(table)
        }
    })
}

/// Runs `script` against `obj` as Argo CD does and returns the health it reports.
fn run(script: &str, obj: &Value) -> Health {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::PACKAGE | StdLib::OS,
        LuaOptions::default(),
    )
    .unwrap();
    // Argo CD opens neither of these for custom checks; a script that used them would fail there.
    for missing in ["string", "math"] {
        assert!(lua.globals().get::<LuaValue>(missing).unwrap().is_nil());
    }
    lua.globals().set("obj", to_lua(&lua, obj).unwrap()).unwrap();
    let returned: LuaValue = lua
        .load(script)
        .set_name("health.lua")
        .into_function()
        .unwrap()
        .call(())
        .unwrap_or_else(|e| panic!("health script failed on {obj}: {e}"));
    let LuaValue::Table(table) = returned else {
        panic!("health script returned {returned:?}, not a table");
    };
    let status: String = table.get("status").unwrap();
    let message: Option<String> = table.get("message").unwrap();
    assert!(
        ARGO_STATUSES.contains(&status.as_str()),
        "Argo CD would turn status {status:?} into Unknown"
    );
    Health {
        status,
        message: message.unwrap_or_default(),
    }
}

fn fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo_path("tests/fixtures/argocd"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

fn load_fixture(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn annotation<'a>(obj: &'a Value, name: &str, path: &Path) -> &'a str {
    obj["metadata"]["annotations"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no annotation {name}", path.display()))
}

/// Every number as a float, so that `25` in YAML and `25.0` from an `f64` compare equal.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn every_fixture_gets_the_health_its_annotations_expect() {
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    let paths = fixtures();
    for path in &paths {
        let obj = load_fixture(path);
        let kind = obj["kind"].as_str().unwrap();
        let want_status = annotation(&obj, EXPECTED_HEALTH, path);
        let want_message = annotation(&obj, EXPECTED_MESSAGE, path);
        let got = run(&script_for(kind), &obj);
        if got.status != want_status || !got.message.contains(want_message) {
            failures.push(format!(
                "{}: got {} {:?}, want {want_status} with a message containing {want_message:?}",
                path.file_name().unwrap().to_string_lossy(),
                got.status,
                got.message,
            ));
        }
        covered.insert(format!("{kind} {}", got.status));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    for needed in [
        "ApiKey Healthy",
        "ApiKey Progressing",
        "ApiKey Degraded",
        "ApiKey Suspended",
        "ModelHub Healthy",
        "ModelHub Progressing",
        "ModelHub Degraded",
    ] {
        assert!(covered.contains(needed), "no fixture yields {needed}");
    }
    assert!(paths.len() >= 25, "only {} fixtures", paths.len());
}

#[test]
fn every_fixture_is_a_keysmith_object_whose_fields_all_survive_a_round_trip() {
    // A misspelt field (say `observedgeneration`) would be dropped by serde and so test nothing.
    for path in fixtures() {
        let obj = load_fixture(&path);
        let round_trip = match obj["kind"].as_str().unwrap() {
            "ApiKey" => serde_json::to_value(serde_json::from_value::<ApiKey>(obj.clone()).unwrap()),
            "ModelHub" => serde_json::to_value(serde_json::from_value::<ModelHub>(obj.clone()).unwrap()),
            other => panic!("{}: unexpected kind {other}", path.display()),
        }
        .unwrap();
        assert_eq!(
            numbers_as_floats(&round_trip),
            numbers_as_floats(&obj),
            "{} has fields keysmith's types do not know",
            path.display()
        );
    }
}

#[test]
fn the_configmap_embeds_exactly_the_lua_files() {
    let cm: Value = serde_norway::from_str(&read("examples/argocd/argocd-cm.yaml")).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    assert_eq!(cm["metadata"]["namespace"], "argocd");
    for (key, file) in [
        (APIKEY_KEY, "examples/argocd/apikey-health.lua"),
        (MODELHUB_KEY, "examples/argocd/modelhub-health.lua"),
    ] {
        let embedded = cm["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("argocd-cm.yaml has no data key {key}"));
        assert!(
            embedded == read(file),
            "argocd-cm.yaml's {key} differs from {file}; paste the file in again, indented by 4 spaces"
        );
    }
    assert_eq!(cm["data"].as_object().unwrap().len(), 2);
}

#[test]
fn scripts_tolerate_objects_with_missing_or_odd_fields() {
    let odd = [
        json!({}),
        json!({"metadata": {}}),
        json!({"metadata": {"generation": 1}, "status": {}}),
        json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": "none"}}),
        json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [{}, 7]}}),
        json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "False"}]}}),
        json!({"metadata": {"generation": 2}, "status": {"observedGeneration": null}}),
        json!({"metadata": {"generation": 2}, "spec": null, "status": {"observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "LimitExceeded", "status": "True"}]}}),
    ];
    for kind in ["ApiKey", "ModelHub"] {
        let script = script_for(kind);
        for obj in &odd {
            let got = run(&script, obj);
            assert_ne!(got.message, "", "{kind} {obj} got no message");
        }
    }
    let got = run(&script_for("ApiKey"), &json!({}));
    assert_eq!(
        (got.status.as_str(), got.message.as_str()),
        ("Progressing", "Waiting for keysmith to reconcile the ApiKey")
    );
}

fn time(s: &str) -> Time {
    Time(s.parse().unwrap())
}

/// A condition as keysmith's controllers set it, for the generation `generation`.
fn set(
    conds: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: i64,
) {
    conditions::set(
        conds,
        type_,
        status,
        reason,
        message,
        Some(generation),
        &time("2026-03-01T10:00:00Z"),
    );
}

fn rust_api_key(
    generation: i64,
    edit_spec: impl FnOnce(&mut ApiKeySpec),
    edit_status: impl FnOnce(&mut ApiKeyStatus),
) -> Value {
    let spec: ApiKeySpec = serde_json::from_value(json!({"hubRef": {"name": "openrouter"}})).unwrap();
    let mut key = ApiKey::new("chat-backend", spec);
    key.metadata.namespace = Some("team-a".into());
    key.metadata.generation = Some(generation);
    key.spec.budget = Some(Budget {
        limit_usd: 25.0,
        reset: Some(BudgetReset::Monthly),
        include_byok: None,
    });
    edit_spec(&mut key.spec);
    let mut status = ApiKeyStatus {
        observed_generation: Some(generation),
        usage: Some(Usage {
            current_usd: Some(26.0),
            window_resets_at: Some("2026-04-01T00:00:00Z".into()),
            ..Default::default()
        }),
        effective_limits: Some(EffectiveLimits {
            budget: Some(EffectiveBudget {
                limit_usd: 25.0,
                reset: BudgetReset::Monthly,
                include_byok: false,
                spend_known: None,
                source: LimitSource::Spec,
                enforcement: Enforcement::Provider,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    edit_status(&mut status);
    key.status = Some(status);
    serde_json::to_value(&key).unwrap()
}

fn synced(status: &mut ApiKeyStatus, over_budget: bool, ready_reason: &str) {
    let (limit_reason, limit_message) = if over_budget {
        (
            "BudgetExceeded",
            "spend 26.000 USD reached the budget of 25.000 USD",
        )
    } else {
        ("WithinLimits", "usage is within every enforced limit")
    };
    set(
        &mut status.conditions,
        conditions::LIMIT_EXCEEDED,
        over_budget,
        limit_reason,
        limit_message,
        1,
    );
    set(
        &mut status.conditions,
        conditions::READY,
        ready_reason == "KeyReady",
        ready_reason,
        "as keysmith says",
        1,
    );
}

#[test]
fn api_keys_serialised_from_keysmiths_own_types_get_the_expected_health() {
    let script = script_for("ApiKey");
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "ready within budget",
            rust_api_key(1, |_| {}, |s| synced(s, false, "KeyReady")),
            "Healthy",
            "KeyReady",
        ),
        (
            "over budget, Reject",
            rust_api_key(
                1,
                |spec| spec.on_limit_exceeded = Some(OnLimitExceeded::Reject),
                |s| synced(s, true, "KeyReady"),
            ),
            "Degraded",
            "reached the budget of 25.000 USD; the window resets at 2026-04-01T00:00:00Z",
        ),
        (
            "over budget, onLimitExceeded left out",
            rust_api_key(1, |_| {}, |s| synced(s, true, "KeyReady")),
            "Degraded",
            "onLimitExceeded: Reject",
        ),
        (
            "one model at its limit",
            rust_api_key(
                1,
                |_| {},
                |s| {
                    synced(s, false, "KeyReady");
                    set(
                        &mut s.conditions,
                        conditions::LIMIT_EXCEEDED,
                        true,
                        "ModelLimitExceeded",
                        "modelLimits.requestsPerDay: 2 requests today on model m reached its modelLimits.requestsPerDay = 2",
                        1,
                    );
                },
            ),
            "Healthy",
            "a model is at its own limit",
        ),
        (
            "over budget, UseAnyway",
            rust_api_key(
                1,
                |spec| spec.on_limit_exceeded = Some(OnLimitExceeded::UseAnyway),
                |s| synced(s, true, "KeyReady"),
            ),
            "Healthy",
            "UseAnyway",
        ),
        (
            "over budget, advisory",
            rust_api_key(
                1,
                |_| {},
                |s| {
                    synced(s, true, "KeyReady");
                    let limits = s.effective_limits.as_mut().unwrap();
                    limits.budget.as_mut().unwrap().enforcement = Enforcement::Advisory;
                },
            ),
            "Degraded",
            "the budget is Advisory here",
        ),
        (
            "disabled",
            rust_api_key(
                1,
                |spec| spec.disabled = Some(true),
                |s| synced(s, true, "KeyDisabled"),
            ),
            "Suspended",
            "KeyDisabled",
        ),
        (
            "transient failure",
            rust_api_key(
                1,
                |_| {},
                |s| {
                    set(
                        &mut s.conditions,
                        conditions::READY,
                        false,
                        "ProviderUnreachable",
                        "provider unreachable",
                        1,
                    );
                    set(
                        &mut s.conditions,
                        conditions::RECONCILING,
                        true,
                        "ProviderUnreachable",
                        "retrying",
                        1,
                    );
                },
            ),
            "Progressing",
            "Retrying: ProviderUnreachable",
        ),
        (
            "a provider blip while the key works",
            rust_api_key(
                1,
                |_| {},
                |s| {
                    synced(s, false, "KeyReady");
                    set(
                        &mut s.conditions,
                        conditions::SYNCED,
                        false,
                        "ProviderUnreachable",
                        "provider unreachable",
                        1,
                    );
                    set(
                        &mut s.conditions,
                        conditions::RECONCILING,
                        true,
                        "ProviderUnreachable",
                        "retrying",
                        1,
                    );
                },
            ),
            "Healthy",
            "syncing with the provider fails, retrying: ProviderUnreachable",
        ),
        (
            "stalled",
            rust_api_key(
                1,
                |_| {},
                |s| {
                    let message = "import Secret \"legacy\" has no data key \"key\" (or does not exist)";
                    set(
                        &mut s.conditions,
                        conditions::READY,
                        false,
                        "ImportSecretMissing",
                        message,
                        1,
                    );
                    set(
                        &mut s.conditions,
                        conditions::STALLED,
                        true,
                        "ImportSecretMissing",
                        message,
                        1,
                    );
                },
            ),
            "Degraded",
            "ImportSecretMissing: import Secret \"legacy\"",
        ),
        (
            "spec edited since the last status",
            rust_api_key(
                2,
                |_| {},
                |s| {
                    synced(s, false, "KeyReady");
                    s.observed_generation = Some(1);
                },
            ),
            "Progressing",
            "Waiting for keysmith to observe generation 2",
        ),
    ];
    for (name, obj, want_status, want_message) in cases {
        let got = run(&script, &obj);
        assert_eq!(got.status, want_status, "{name}: {got:?}");
        assert!(got.message.contains(want_message), "{name}: {got:?}");
    }
}

fn rust_model_hub(status: ModelHubStatus) -> Value {
    let spec: ModelHubSpec = serde_json::from_value(json!({
        "provider": "openrouter",
        "credentialsRef": {"name": "openrouter-management", "key": "key"},
    }))
    .unwrap();
    let mut hub = ModelHub::new("openrouter", spec);
    hub.metadata.generation = Some(1);
    hub.status = Some(status);
    serde_json::to_value(&hub).unwrap()
}

#[test]
fn model_hubs_serialised_from_keysmiths_own_types_get_the_expected_health() {
    let script = script_for("ModelHub");
    let cases = [
        (true, "CredentialsVerified", "Healthy"),
        (false, "CredentialsMissing", "Degraded"),
        (false, "Unauthorized", "Degraded"),
        (false, "NotAuthorized", "Degraded"),
        (false, "ProviderUnreachable", "Progressing"),
        (false, "KubernetesApiError", "Progressing"),
    ];
    for (ready, reason, want_status) in cases {
        let mut status = ModelHubStatus {
            observed_generation: Some(1),
            ..Default::default()
        };
        set(
            &mut status.conditions,
            conditions::READY,
            ready,
            reason,
            "as keysmith says",
            1,
        );
        let got = run(&script, &rust_model_hub(status));
        assert_eq!(got.status, want_status, "{reason}: {got:?}");
        assert!(got.message.contains(reason), "{reason}: {got:?}");
    }
    let got = run(&script, &rust_model_hub(ModelHubStatus::default()));
    assert_eq!(got.status, "Progressing", "{got:?}");
}
