//! DESIGN §2.7: malformed objects are rejected at admission by the CRD schema and CEL rules, with
//! a message naming the field. Runs against the real apiserver with the CRDs from `crds/`.

use crate::support::TestNamespace;
use keysmith_api::{ApiKey, ClusterModelHub, ModelHub};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "keysmith.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn api(ns: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    match kind {
        "ApiKey" => Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::erase::<ApiKey>(&())),
        // Cluster-scoped; every case of it is refused, so nothing is left behind.
        "ClusterModelHub" => Api::all_with(ns.client.clone(), &ApiResource::erase::<ClusterModelHub>(&())),
        _ => Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::erase::<ModelHub>(&())),
    }
}

/// Creates the object and returns the apiserver's rejection message.
async fn rejection(ns: &TestNamespace, kind: &str, name: &str, spec: Value) -> String {
    match api(ns, kind)
        .create(&PostParams::default(), &object(kind, name, spec))
        .await
    {
        Ok(_) => panic!("{kind} {name} was accepted but must be rejected"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            status.message
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn key(extra: Value) -> Value {
    let mut spec = json!({"hubRef": {"name": "hub"}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

#[tokio::test]
async fn malformed_manifests_are_rejected_with_messages_naming_the_field() {
    let ns = TestNamespace::new("admission").await;
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "ApiKey",
            json!({"displayName": "x"}),
            &["spec.hubRef", "Required value"],
        ),
        ("ApiKey", key(json!({"displayName": ""})), &["spec.displayName"]),
        (
            "ApiKey",
            key(json!({"budget": {"limitUsd": -1}})),
            &["spec.budget.limitUsd", "greater than or equal to 0"],
        ),
        (
            "ApiKey",
            key(json!({"budget": {"reset": "Daily"}})),
            &["spec.budget.limitUsd", "Required value"],
        ),
        (
            "ApiKey",
            key(json!({"budget": {"limitUsd": 5, "reset": "Yearly"}})),
            &["spec.budget.reset", "Unsupported value"],
        ),
        (
            "ApiKey",
            key(json!({"rateLimit": {"requests": 10, "intervalSeconds": 0}})),
            &["spec.rateLimit.intervalSeconds"],
        ),
        (
            "ApiKey",
            key(json!({"rateLimit": {"requests": -5, "intervalSeconds": 60}})),
            &["spec.rateLimit.requests"],
        ),
        (
            "ApiKey",
            key(json!({"limits": {"requestsPerMinute": -1}})),
            &["spec.limits.requestsPerMinute"],
        ),
        (
            "ApiKey",
            key(json!({"limits": {"tokensPerDay": -10}})),
            &["spec.limits.tokensPerDay"],
        ),
        (
            "ApiKey",
            key(json!({"modelLimits": [{"model": "m", "tokensPerMinute": -1}]})),
            &["spec.modelLimits[0].tokensPerMinute"],
        ),
        (
            "ApiKey",
            key(json!({"modelLimits": [{"requestsPerDay": 5}]})),
            &["spec.modelLimits[0].model", "Required value"],
        ),
        (
            "ApiKey",
            key(json!({"modelLimits": [{"model": "m"}, {"model": "m"}]})),
            &["spec.modelLimits[1]", "Duplicate value"],
        ),
        (
            "ApiKey",
            key(json!({"requestLimits": {"maxInputTokens": -1}})),
            &["spec.requestLimits.maxInputTokens"],
        ),
        (
            "ApiKey",
            key(json!({"expiresAt": "2027-01-31T00:00:00+02:00"})),
            &["spec.expiresAt", "UTC"],
        ),
        (
            "ApiKey",
            key(json!({"expiresAt": "next tuesday"})),
            &["spec.expiresAt", "RFC 3339"],
        ),
        (
            "ApiKey",
            key(json!({"onLimitExceeded": "Ignore"})),
            &["spec.onLimitExceeded", "Unsupported value"],
        ),
        (
            "ApiKey",
            key(json!({"deletionPolicy": "Keep"})),
            &["spec.deletionPolicy", "Unsupported value"],
        ),
        (
            "ApiKey",
            key(json!({"rotation": {"every": "24h", "overlap": "24h"}})),
            &["spec.rotation", "overlap must be shorter"],
        ),
        (
            "ApiKey",
            key(json!({"rotation": {"every": "30d"}})),
            &["spec.rotation.every"],
        ),
        (
            "ApiKey",
            key(json!({"rotation": {"every": "10m"}})),
            &["spec.rotation.every", "at least 1h"],
        ),
        (
            "ApiKey",
            key(json!({"rotation": {"restartTargets": [{"kind": "Pod", "name": "web"}]}})),
            &["spec.rotation.restartTargets[0].kind", "Unsupported value"],
        ),
        (
            "ApiKey",
            key(json!({"secret": {"name": "Bad_Name"}})),
            &["spec.secret.name", "Secret name"],
        ),
        (
            "ApiKey",
            key(json!({"secret": {"keys": {"apiKey": "has space"}}})),
            &["spec.secret.keys.apiKey", "data key"],
        ),
        (
            "ApiKey",
            key(json!({"secret": {"keys": {"apiKey": "K", "baseUrl": "K"}}})),
            &["spec.secret.keys", "must be different"],
        ),
        (
            "ApiKey",
            key(json!({"import": {"secretRef": {"name": "s", "key": "a/b"}}})),
            &["spec.import.secretRef.key"],
        ),
        (
            "ApiKey",
            key(json!({"import": {"secretRef": {"name": "s"}}})),
            &["spec.import.secretRef.key", "Required value"],
        ),
        (
            "ModelHub",
            json!({"provider": "azure"}),
            &["spec.provider", "Unsupported value"],
        ),
        (
            "ModelHub",
            json!({"provider": "openrouter", "endpoint": "ftp://example.test"}),
            &["spec.endpoint", "http"],
        ),
        (
            "ModelHub",
            json!({"provider": "openrouter", "usageRefreshInterval": "10s"}),
            &["spec.usageRefreshInterval", "at least 30s"],
        ),
        (
            "ModelHub",
            json!({"provider": "openrouter", "usageRefreshInterval": "5 minutes"}),
            &["spec.usageRefreshInterval"],
        ),
        (
            "ModelHub",
            json!({"provider": "openrouter", "credentialsRef": {"name": "UPPER", "key": "k"}}),
            &["spec.credentialsRef.name"],
        ),
        (
            "ModelHub",
            json!({"provider": "openrouter", "apiRateLimit": {"requestsPerSecond": 0}}),
            &["spec.apiRateLimit.requestsPerSecond"],
        ),
        (
            "ModelHub",
            json!({"provider": "openai", "openai": {}}),
            &["spec.openai.projectId", "Required value"],
        ),
        (
            "ApiKey",
            key(json!({"secret": {"keys": {"limits": "apiKey"}}})),
            &["spec.secret.keys", "limits must be a data key of its own"],
        ),
        // Accepted before, yet could never work or would leak a credential into logs and status.
        (
            "ApiKey",
            json!({"hubRef": {"name": "My_Hub"}}),
            &["spec.hubRef.name", "Kubernetes object name"],
        ),
        (
            "ApiKey",
            key(json!({"rotation": {"restartTargets": [{"kind": "Deployment", "name": "Web_App"}]}})),
            &["spec.rotation.restartTargets[0].name", "Kubernetes object name"],
        ),
        (
            "ModelHub",
            json!({"provider": "openrouter", "openai": {"projectId": "proj_1"}}),
            &["spec.openai", "provider openai only"],
        ),
        (
            "ModelHub",
            json!({"provider": "openai", "google": {"project": "p"}}),
            &["spec.google", "provider google only"],
        ),
        (
            "ModelHub",
            json!({"provider": "openrouter", "endpoint": "https://user:pass@openrouter.example/api/v1"}),
            &["spec.endpoint", "user or password"],
        ),
        (
            "ModelHub",
            json!({"provider": "openaiCompatible", "inferenceEndpoint": "http://token@llm.example:8000/v1"}),
            &["spec.inferenceEndpoint", "user or password"],
        ),
        (
            "ClusterModelHub",
            json!({"provider": "openrouter", "anthropic": {}, "allowedNamespaces": {"names": ["a"]}}),
            &["spec.anthropic", "provider anthropic only"],
        ),
    ];
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (i, (kind, spec, needles)) in cases.into_iter().enumerate() {
        let message = rejection(&ns, kind, &format!("bad-{i}"), spec.clone()).await;
        if !needles.iter().all(|n| message.contains(n)) {
            failures.push(format!(
                "case {i} ({kind} {spec}): wanted {needles:?} in: {message}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_rate_limit_without_an_interval_is_accepted_and_stored_as_written() {
    let ns = TestNamespace::new("interval").await;
    let keys = api(&ns, "ApiKey");
    let spec = key(json!({"rateLimit": {"requests": 10}}));
    keys.create(&PostParams::default(), &object("ApiKey", "k", spec))
        .await
        .unwrap();
    let stored = keys.get("k").await.unwrap();
    // No schema default: what GitOps applied is what is stored, and keysmith reads 60 s.
    assert_eq!(stored.data["spec"]["rateLimit"], json!({"requests": 10}));
    let typed: ApiKey = serde_json::from_value(serde_json::to_value(&stored).unwrap()).unwrap();
    assert_eq!(typed.spec.rate_limit.unwrap().interval_seconds, 60);
}

#[tokio::test]
async fn immutable_fields_cannot_change_after_creation() {
    let ns = TestNamespace::new("immutable").await;
    let params = PatchParams::apply("keysmith-tests");
    let hubs = api(&ns, "ModelHub");
    hubs.patch(
        "hub",
        &params,
        &Patch::Apply(object("ModelHub", "hub", json!({"provider": "openrouter"}))),
    )
    .await
    .unwrap();
    let err = hubs
        .patch(
            "hub",
            &params,
            &Patch::Apply(object("ModelHub", "hub", json!({"provider": "openai"}))),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.provider is immutable"), "{err}");

    let keys = api(&ns, "ApiKey");
    keys.patch("k", &params, &Patch::Apply(object("ApiKey", "k", key(json!({})))))
        .await
        .unwrap();
    let err = keys
        .patch(
            "k",
            &params,
            &Patch::Apply(object("ApiKey", "k", json!({"hubRef": {"name": "other"}}))),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.hubRef is immutable"), "{err}");

    // Applying the same valid object twice changes nothing (GitOps-clean, DESIGN §2.9).
    let before = keys.get("k").await.unwrap().metadata.resource_version;
    keys.patch("k", &params, &Patch::Apply(object("ApiKey", "k", key(json!({})))))
        .await
        .unwrap();
    assert_eq!(keys.get("k").await.unwrap().metadata.resource_version, before);
}

#[tokio::test]
async fn every_example_manifest_is_accepted() {
    let ns = TestNamespace::new("examples").await;
    let dir = crate::support::repo_root().join("examples");
    let mut applied = 0;
    for entry in walk(&dir) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for doc in text.split("\n---") {
            let value: Value = serde_norway::from_str(doc).unwrap();
            if value.is_null() {
                continue;
            }
            let mut obj: DynamicObject = serde_json::from_value(value.clone()).unwrap();
            let kind = value["kind"].as_str().unwrap();
            let (resource, namespaced) = match kind {
                "ApiKey" => (ApiResource::erase::<ApiKey>(&()), true),
                "ModelHub" => (ApiResource::erase::<ModelHub>(&()), true),
                "Secret" => (
                    ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
                    true,
                ),
                "ClusterModelHub" => (ApiResource::erase::<keysmith_api::ClusterModelHub>(&()), false),
                "Namespace" => (
                    ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
                    false,
                ),
                other => panic!("unexpected kind {other} in {}", entry.display()),
            };
            // Namespaced examples name their tenant namespace; the dry run goes to the test's.
            obj.metadata.namespace = None;
            let api: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
            } else {
                Api::all_with(ns.client.clone(), &resource)
            };
            api.create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &obj,
            )
            .await
            .unwrap_or_else(|e| panic!("{} rejected: {e}", entry.display()));
            applied += 1;
        }
    }
    assert!(applied >= 5, "only {applied} objects found under examples/");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // examples/argocd holds Argo CD configuration, not keysmith objects.
            if !path.ends_with("examples/argocd") {
                out.extend(walk(&path));
            }
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out.sort();
    out
}
