//! `delivery: Gateway` end to end: the operator on the real API server with the OpenRouter
//! simulator, the real keysmith-gateway process and a fake inference upstream. The provider key lands
//! in a route Secret in the gateway's namespace only; the app's Secret holds a key keysmith issued and
//! the gateway's URL; a request with it is forwarded with the provider key, a cap refuses a long
//! prompt, the gateway's usage reaches status, a rotation moves both keys, and deletion removes the
//! route.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keysmith_api::{
    ApiKey, Enforcement,
    gateway_route::{ROUTE_LABEL, UPSTREAM_KEY_DATA_KEY},
};
use keysmith_simulators::clock::Clock;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use crate::{
    gateway_routes::{GatewayProcess, chat, upstream},
    support::{
        TestNamespace, eventually,
        operator::{Env, condition, hub_ready, is_ready},
    },
};

/// Every Secret value in `ns`, decoded.
async fn values_in(ns: &TestNamespace) -> Vec<String> {
    ns.api::<Secret>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .flat_map(|s| s.data.unwrap_or_default().into_values())
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .collect()
}

#[tokio::test]
async fn a_key_delivered_through_the_gateway_never_reaches_the_app_and_its_limits_hold() {
    let gateway_ns = TestNamespace::new("gw-routes").await;
    let (upstream, seen) = upstream().await;
    let gateway = GatewayProcess::start(&gateway_ns.name).await;
    let (listen, admin) = (gateway.listen, gateway.admin);

    let mut env = Env::new("gw-app").await;
    let mut settings = env.scene.settings();
    settings.gateway = Some(keysmith::plan::gateway::GatewaySettings {
        url: format!("http://127.0.0.1:{listen}"),
        namespace: gateway_ns.name.clone(),
        usage_url: Some(format!("http://127.0.0.1:{admin}/usage")),
    });
    let scope = keysmith::controller::Scope::Namespaces(vec![env.ns.name.clone()]);
    env.scene.start_operator_with(settings, scope, Clock::new());
    env.apply_hub(
        "or",
        json!({"inferenceEndpoint": format!("http://{upstream}/v1")}),
    )
    .await;
    env.wait_hub("or", "hub Ready", |h| {
        hub_ready(h).is_some_and(|(s, _)| s == "True")
    })
    .await;
    env.apply_key(
        "chat",
        json!({"hubRef": {"name": "or"}, "delivery": "Gateway",
               "requestLimits": {"maxInputTokens": 200}, "limits": {"requestsPerMinute": 30},
               "rotation": {"every": "720h", "overlap": "6s"}}),
    )
    .await;
    let key = env.wait_key("chat", "ApiKey Ready", is_ready).await;
    let status = key.status.clone().unwrap();
    assert_eq!(status.delivery, Some(keysmith_api::Delivery::Gateway));
    let key_id = status.key_id.clone().unwrap();
    let limits = status.effective_limits.unwrap();
    assert_eq!(limits.max_input_tokens.unwrap().enforcement, Enforcement::Gateway);
    assert_eq!(
        limits.requests_per_minute.unwrap().enforcement,
        Enforcement::Gateway
    );

    // The app's Secret: an issued key and the gateway's URL. The provider key is in the route only.
    let app = env.secret_data("chat").await.unwrap();
    let issued = app["apiKey"].clone();
    assert!(issued.starts_with("ksg-"), "the app holds an issued key");
    assert_eq!(app["baseUrl"], format!("http://127.0.0.1:{listen}/v1"));
    let routes = gateway_ns
        .api::<Secret>()
        .list(&ListParams::default().labels(&format!("{ROUTE_LABEL}=true")))
        .await
        .unwrap()
        .items;
    assert_eq!(routes.len(), 1);
    let provider_key =
        String::from_utf8(routes[0].data.as_ref().unwrap()[UPSTREAM_KEY_DATA_KEY].0.clone()).unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(provider_key.as_bytes())),
        env.sim.key(&key_id).unwrap().hash,
        "the route holds the key the provider minted"
    );
    assert!(
        !values_in(&env.ns).await.iter().any(|v| v.contains(&provider_key)),
        "no Secret in the app's namespace holds the provider key"
    );

    // Through the gateway: forwarded with the provider key; a long prompt refused by the cap.
    let client = reqwest::Client::new();
    let routed = eventually("the gateway knows the route", Duration::from_secs(20), || async {
        let (status, body) = chat(&client, listen, &issued, "hello").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(routed["usage"]["prompt_tokens"], 9, "{routed}");
    assert_eq!(
        seen.lock().unwrap().last().cloned(),
        Some(format!("Bearer {provider_key}"))
    );
    let (code, body) = chat(&client, listen, &issued, &"word ".repeat(400)).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["code"], "max_input_tokens", "{body}");
    // The provider key itself is not a key of the gateway's.
    assert_eq!(chat(&client, listen, &provider_key, "hello").await.0, 401);

    // The gateway's metered usage reaches status.
    env.wait_key("chat", "gateway usage in status", |k| {
        k.status
            .as_ref()
            .and_then(|s| s.usage.as_ref())
            .and_then(|u| u.requests_today)
            .is_some_and(|n| n >= 1)
    })
    .await;

    // A rotation: a new provider key in the route, a new issued key for the app; the old app key works
    // as long as the old provider key does (the overlap), then stops.
    let api = env.ns.api::<ApiKey>();
    api.patch(
        "chat",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"keysmith.dev/rotate": "now"}}})),
    )
    .await
    .unwrap();
    let rotated = env
        .wait_key("chat", "a new key", |k| {
            is_ready(k) && k.status.as_ref().and_then(|s| s.key_id.as_deref()) != Some(key_id.as_str())
        })
        .await;
    let new_issued = env.secret_data("chat").await.unwrap()["apiKey"].clone();
    assert_ne!(new_issued, issued);
    eventually("the new issued key works", Duration::from_secs(20), || async {
        (chat(&client, listen, &new_issued, "hello").await.0 == 200).then_some(())
    })
    .await;
    assert!(
        rotated
            .status
            .as_ref()
            .and_then(|s| s.rotation.as_ref())
            .is_some_and(|r| r.previous_key_id.as_deref() == Some(key_id.as_str())),
        "the previous key is in its overlap"
    );
    assert_eq!(
        chat(&client, listen, &issued, "hello").await.0,
        200,
        "the old app key works during the overlap"
    );
    eventually(
        "the old app key refused after the overlap",
        Duration::from_secs(40),
        || async { (chat(&client, listen, &issued, "hello").await.0 == 401).then_some(()) },
    )
    .await;
    assert!(
        env.sim.key(&key_id).unwrap().deleted,
        "the old provider key is revoked"
    );
    assert!(
        condition(
            env.ns
                .api::<ApiKey>()
                .get("chat")
                .await
                .unwrap()
                .status
                .as_ref()
                .map(|s| &s.conditions),
            "Ready"
        )
        .is_some_and(|(s, _)| s == "True")
    );

    // Deletion revokes the provider key and removes the route.
    api.delete("chat", &DeleteParams::default()).await.unwrap();
    let gone = gateway_ns.api::<Secret>();
    eventually("the route removed", Duration::from_secs(30), || {
        let gone = gone.clone();
        async move {
            gone.list(&ListParams::default().labels(&format!("{ROUTE_LABEL}=true")))
                .await
                .unwrap()
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    eventually("the new issued key refused", Duration::from_secs(20), || async {
        (chat(&client, listen, &new_issued, "hello").await.0 == 401).then_some(())
    })
    .await;
    let logged = gateway.stop();
    assert!(
        !logged.contains(&provider_key) && !logged.contains(&issued),
        "a key reached the gateway's log"
    );
}
