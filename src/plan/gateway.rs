//! `delivery: Gateway`: the route Secret keysmith writes for keysmith-gateway (the provider key, the
//! upstream, the limits in force), the key it issues for the app in place of the provider key, and
//! where the app's SDK must point.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use keysmith_api::{
    ApiKey, Capabilities, Delivery as DeliveryMode, Enforcement, ModelHub, Provider,
    gateway_route::{
        ApiKeyRef, CURRENT_VERSION, GatewayApi, GatewayRoute, ROUTE_DATA_KEY, ROUTE_LABEL, RouteLimits,
        RouteState, UPSTREAM_KEY_DATA_KEY,
    },
    well_known::{APIKEY_LABEL, FINGERPRINT_ANNOTATION, KEY_ID_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL},
};
use keysmith_core::SecretValue;
use kube::{ResourceExt, api::ObjectMeta};

/// Separates the issued key's derivation from every other use of the provider key.
const ISSUED_KEY_DOMAIN: &str = "keysmith-gateway issued key v1";
/// Starts every issued key, so that one is told apart from a provider key at a glance.
pub const ISSUED_KEY_PREFIX: &str = "ksg-";
/// Annotation on a route Secret: the namespace of the ApiKey it serves (the label holds its name).
pub const ROUTE_NAMESPACE_ANNOTATION: &str = "keysmith.dev/apikey-namespace";

/// Where the operator finds keysmith-gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySettings {
    /// The URL apps call (e.g. `http://keysmith-gateway.keysmith-system:8080`).
    pub url: String,
    /// The namespace of the route Secrets.
    pub namespace: String,
    /// Where the gateway reports metered usage (`GET /usage`), if it is read.
    pub usage_url: Option<String>,
}

/// How `key` is delivered: its own `spec.delivery`, else its hub's default, else `Direct`.
pub fn delivery_mode(key: &ApiKey, hub: &ModelHub) -> DeliveryMode {
    key.spec
        .delivery
        .or_else(|| hub.spec.defaults.as_ref().and_then(|d| d.delivery))
        .unwrap_or_default()
}

/// The wire protocol apps speak through the gateway for `provider`, or why it cannot carry it.
pub fn gateway_api(provider: Provider) -> Result<GatewayApi, &'static str> {
    match provider {
        Provider::Anthropic => Ok(GatewayApi::Anthropic),
        Provider::Aixplain => Err("delivery: Gateway with aiXplain (its model API is not OpenAI-style)"),
        _ => Ok(GatewayApi::Openai),
    }
}

/// The provider URL the gateway forwards to, from the hub's inference base URL: the gateway takes
/// the path after the app's `/v1/` and appends it, so the upstream is the base under which
/// `chat/completions` (or Anthropic's `messages`) lives.
pub fn upstream(provider: Provider, inference_base: &str) -> String {
    let base = inference_base.trim_end_matches('/');
    match provider {
        Provider::Anthropic if !base.ends_with("/v1") => format!("{base}/v1"),
        // Gemini's OpenAI-compatible endpoint.
        Provider::Google if !base.ends_with("/openai") => format!("{base}/openai"),
        _ => base.to_owned(),
    }
}

/// The base URL the app's Secret carries: an OpenAI SDK is given `.../v1`; an Anthropic SDK adds
/// `/v1` itself.
pub fn app_base_url(gateway_url: &str, api: GatewayApi) -> String {
    let base = gateway_url.trim_end_matches('/');
    match api {
        GatewayApi::Openai => format!("{base}/v1"),
        GatewayApi::Anthropic => base.to_owned(),
    }
}

/// With the gateway in front, what the provider cannot hold the gateway does, on every request.
pub fn gateway_capabilities(mut caps: Capabilities) -> Capabilities {
    for held in [
        &mut caps.budget,
        &mut caps.rate_limits,
        &mut caps.model_limits,
        &mut caps.request_limits,
    ] {
        if matches!(*held, Enforcement::Advisory | Enforcement::Unsupported) {
            *held = Enforcement::Gateway;
        }
    }
    caps
}

/// The key keysmith issues to the app for provider key `value`: derived one-way, so it rotates with
/// the provider key and needs no storage, and reveals nothing of it.
pub fn issued_key(value: &SecretValue) -> SecretValue {
    value.derive(ISSUED_KEY_DOMAIN, ISSUED_KEY_PREFIX)
}

/// Name of the route Secret of `key` in the gateway's namespace (unique per ApiKey).
pub fn route_secret_name(key: &ApiKey) -> String {
    format!("keysmith-route-{}", key.uid().unwrap_or_default())
}

/// Whether the key may be used now, as the route says it; `suspended`: keysmith stopped the key.
pub fn route_state(key: &ApiKey, suspended: bool, now: Timestamp) -> RouteState {
    let expired = key
        .spec
        .expires_at
        .as_ref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|at| at <= now);
    if key.spec.disabled.unwrap_or(false) {
        RouteState::Disabled
    } else if expired {
        RouteState::Expired
    } else if suspended {
        RouteState::Suspended
    } else {
        RouteState::Active
    }
}

/// Everything a route document is made of besides the key.
pub struct RouteInputs<'a> {
    pub key: &'a ApiKey,
    pub hub: &'a ModelHub,
    pub api: GatewayApi,
    pub upstream: &'a str,
    pub state: RouteState,
    /// The hash of the app key a rotation replaced, admitted until its overlap ends.
    pub previous: Option<String>,
}

/// The route document for `key`, admitting the app key issued for `value`.
pub fn route_document(inputs: &RouteInputs<'_>, value: &SecretValue) -> GatewayRoute {
    let key = inputs.key;
    let hub = inputs.hub;
    let budget = keysmith_limits::effective_budget(key, hub).map(|(b, _)| b);
    let rate_limit = keysmith_limits::effective_rate_limit(key, hub).map(|(r, _)| r);
    let limits = keysmith_limits::effective_key_limits(key, hub);
    let request_limits = key
        .spec
        .request_limits
        .clone()
        .or_else(|| hub.spec.defaults.as_ref().and_then(|d| d.request_limits.clone()));
    GatewayRoute {
        version: CURRENT_VERSION,
        api_key: ApiKeyRef {
            namespace: key.namespace().unwrap_or_default(),
            name: key.name_any(),
        },
        api: inputs.api,
        upstream: inputs.upstream.to_owned(),
        issued_key_sha256: issued_key(value).sha256_hex(),
        previous_issued_key_sha256: inputs.previous.clone(),
        state: inputs.state,
        limits: RouteLimits {
            budget,
            rate_limit,
            limits: (limits != keysmith_api::Limits::default()).then_some(limits),
            model_limits: keysmith_limits::effective_model_limits(key, hub),
            request_limits,
        },
        on_limit_exceeded: key.spec.on_limit_exceeded.unwrap_or_default(),
        pricing: hub.spec.pricing.clone(),
    }
}

/// The route Secret: the document, the provider key, and the key id and fingerprint that tell
/// keysmith which provider key it holds (as the app's Secret does under `Direct`).
pub fn desired_route_secret(
    inputs: &RouteInputs<'_>,
    value: &SecretValue,
    key_id: Option<&str>,
    namespace: &str,
) -> Secret {
    let key = inputs.key;
    let document = route_document(inputs, value);
    // Serialising a plain struct of strings and numbers cannot fail; an empty document would be
    // refused by the gateway and reported there.
    let json = serde_json::to_string(&document).unwrap_or_default();
    let mut annotations = BTreeMap::from([
        (FINGERPRINT_ANNOTATION.to_owned(), value.fingerprint()),
        (
            ROUTE_NAMESPACE_ANNOTATION.to_owned(),
            key.namespace().unwrap_or_default(),
        ),
    ]);
    if let Some(id) = key_id {
        annotations.insert(KEY_ID_ANNOTATION.to_owned(), id.to_owned());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(route_secret_name(key)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (ROUTE_LABEL.to_owned(), "true".to_owned()),
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (APIKEY_LABEL.to_owned(), key.name_any()),
            ])),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (ROUTE_DATA_KEY.to_owned(), ByteString(json.into_bytes())),
            (
                UPSTREAM_KEY_DATA_KEY.to_owned(),
                ByteString(value.expose().as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// The route document a route Secret holds, if it is one this release reads.
pub fn route_document_of(secret: &Secret) -> Option<GatewayRoute> {
    let bytes = secret.data.as_ref()?.get(ROUTE_DATA_KEY)?;
    GatewayRoute::parse(&bytes.0).ok()
}

/// Which earlier app key the route for provider key `value` still admits: after a rotation that keeps
/// the previous key (`carry`), the one the route admitted until now; later, the one it already names
/// while the previous provider key is live (`overlap`); otherwise none.
pub fn previous_admitted(
    old: Option<&GatewayRoute>,
    value: &SecretValue,
    carry: bool,
    overlap: bool,
) -> Option<String> {
    let old = old?;
    if old.issued_key_sha256 != issued_key(value).sha256_hex() {
        carry.then(|| old.issued_key_sha256.clone())
    } else {
        old.previous_issued_key_sha256.clone().filter(|_| overlap)
    }
}

/// The provider key a route Secret holds, and the key id recorded on it.
pub fn route_value(secret: &Secret) -> Option<(SecretValue, Option<String>)> {
    let bytes = secret.data.as_ref()?.get(UPSTREAM_KEY_DATA_KEY)?;
    let text = std::str::from_utf8(&bytes.0).ok().filter(|t| !t.is_empty())?;
    let id = secret.annotations().get(KEY_ID_ANNOTATION).cloned();
    Some((SecretValue::new(text), id))
}

/// Whether a route Secret already holds what `desired` would write.
pub fn route_matches(have: &Secret, desired: &Secret) -> bool {
    have.data == desired.data
        && desired
            .labels()
            .iter()
            .all(|(k, v)| have.labels().get(k) == Some(v))
        && desired
            .annotations()
            .iter()
            .all(|(k, v)| have.annotations().get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keysmith_api::ModelHubSpec;

    use crate::plan::tests::key;

    fn hub(provider: &str, defaults: serde_json::Value) -> ModelHub {
        let spec: ModelHubSpec =
            serde_json::from_value(serde_json::json!({"provider": provider, "defaults": defaults})).unwrap();
        ModelHub::new("hub", spec)
    }

    #[test]
    fn delivery_is_the_keys_then_the_hubs_then_direct() {
        let h = hub("openai", serde_json::json!({"delivery": "Gateway"}));
        assert_eq!(
            delivery_mode(&key(serde_json::json!({})), &h),
            DeliveryMode::Gateway
        );
        let direct = key(serde_json::json!({"delivery": "Direct"}));
        assert_eq!(delivery_mode(&direct, &h), DeliveryMode::Direct);
        let plain = hub("openai", serde_json::json!({}));
        assert_eq!(
            delivery_mode(&key(serde_json::json!({})), &plain),
            DeliveryMode::Direct
        );
    }

    #[test]
    fn the_app_points_its_sdk_at_the_gateway_and_the_gateway_at_the_provider() {
        assert_eq!(
            app_base_url("http://gw:8080/", GatewayApi::Openai),
            "http://gw:8080/v1"
        );
        assert_eq!(
            app_base_url("http://gw:8080", GatewayApi::Anthropic),
            "http://gw:8080"
        );
        assert_eq!(
            upstream(Provider::Anthropic, "https://api.anthropic.com"),
            "https://api.anthropic.com/v1"
        );
        assert_eq!(
            upstream(
                Provider::Google,
                "https://generativelanguage.googleapis.com/v1beta"
            ),
            "https://generativelanguage.googleapis.com/v1beta/openai"
        );
        assert_eq!(
            upstream(Provider::Openrouter, "https://openrouter.ai/api/v1/"),
            "https://openrouter.ai/api/v1"
        );
        assert!(gateway_api(Provider::Aixplain).is_err());
        assert_eq!(gateway_api(Provider::Anthropic), Ok(GatewayApi::Anthropic));
    }

    #[test]
    fn the_route_secret_holds_the_provider_key_and_admits_only_the_issued_one() {
        let k = key(serde_json::json!({"requestLimits": {"maxInputTokens": 100},
                                       "limits": {"requestsPerMinute": 5}, "onLimitExceeded": "UseAnyway"}));
        let mut h = hub("openrouter", serde_json::json!({"budget": {"limitUsd": 3.0}}));
        h.spec.pricing = vec![keysmith_api::gateway_route::ModelPrice {
            model: "openai/gpt-4o-mini".into(),
            input_usd_per_million: 0.15,
            output_usd_per_million: 0.6,
        }];
        let value = SecretValue::new("sk-or-v1-provider");
        let inputs = RouteInputs {
            key: &k,
            hub: &h,
            api: GatewayApi::Openai,
            upstream: "https://openrouter.ai/api/v1",
            state: RouteState::Active,
            previous: None,
        };
        let secret = desired_route_secret(&inputs, &value, Some("id-1"), "keysmith-system");
        assert_eq!(secret.metadata.name.as_deref(), Some("keysmith-route-0b5c-uid"));
        assert_eq!(secret.labels()[ROUTE_LABEL], "true");
        assert_eq!(route_value(&secret), Some((value.clone(), Some("id-1".into()))));
        let doc = GatewayRoute::parse(&secret.data.as_ref().unwrap()[ROUTE_DATA_KEY].0).unwrap();
        assert_eq!(doc.issued_key_sha256, issued_key(&value).sha256_hex());
        assert_eq!(doc.api_key.namespace, "team-a");
        assert_eq!(doc.limits.request_limits.unwrap().max_input_tokens, Some(100));
        assert_eq!(doc.limits.limits.unwrap().requests_per_minute, Some(5));
        assert_eq!(doc.limits.budget.unwrap().limit_usd, 3.0);
        assert_eq!(doc.on_limit_exceeded, keysmith_api::OnLimitExceeded::UseAnyway);
        assert_eq!(
            doc.pricing, h.spec.pricing,
            "the hub's price table goes with the route"
        );
        assert!(route_matches(&secret, &secret.clone()));
        let rotated = desired_route_secret(
            &inputs,
            &SecretValue::new("sk-new"),
            Some("id-2"),
            "keysmith-system",
        );
        assert!(!route_matches(&secret, &rotated));
    }

    #[test]
    fn the_route_state_follows_disable_expiry_and_suspension() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let plain = key(serde_json::json!({}));
        assert_eq!(route_state(&plain, false, now), RouteState::Active);
        assert_eq!(route_state(&plain, true, now), RouteState::Suspended);
        let off = key(serde_json::json!({"disabled": true}));
        assert_eq!(route_state(&off, true, now), RouteState::Disabled);
        let old = key(serde_json::json!({"expiresAt": "2026-12-07T11:00:00Z"}));
        assert_eq!(route_state(&old, false, now), RouteState::Expired);
    }

    #[test]
    fn the_gateway_holds_what_the_provider_cannot() {
        let caps = Capabilities {
            budget: Enforcement::Provider,
            rate_limits: Enforcement::Advisory,
            model_limits: Enforcement::Unsupported,
            request_limits: Enforcement::Advisory,
            expiry: Enforcement::Operator,
            disable: Enforcement::Provider,
            rename: Enforcement::Provider,
            usage: Enforcement::Provider,
            provisioning: Enforcement::Provider,
            rotation: Enforcement::Operator,
        };
        let held = gateway_capabilities(caps);
        assert_eq!(held.budget, Enforcement::Provider);
        assert_eq!(held.rate_limits, Enforcement::Gateway);
        assert_eq!(held.model_limits, Enforcement::Gateway);
        assert_eq!(held.request_limits, Enforcement::Gateway);
        assert_eq!(held.expiry, Enforcement::Operator);
    }

    #[test]
    fn a_rotation_carries_the_old_app_key_through_its_overlap_only() {
        let k = key(serde_json::json!({}));
        let h = hub("openrouter", serde_json::json!({}));
        let old_value = SecretValue::new("sk-old");
        let new_value = SecretValue::new("sk-new");
        let inputs = |previous| RouteInputs {
            key: &k,
            hub: &h,
            api: GatewayApi::Openai,
            upstream: "u",
            state: RouteState::Active,
            previous,
        };
        let before = route_document(&inputs(None), &old_value);
        let old_hash = issued_key(&old_value).sha256_hex();
        // A rotation keeping the previous key: the old app key stays admitted.
        let carried = previous_admitted(Some(&before), &new_value, true, true);
        assert_eq!(carried.as_deref(), Some(old_hash.as_str()));
        // A replacement (the old key revoked at once): not.
        assert_eq!(previous_admitted(Some(&before), &new_value, false, true), None);
        // Later syncs keep it while the overlap lasts, then drop it.
        let during = route_document(&inputs(carried), &new_value);
        assert_eq!(
            previous_admitted(Some(&during), &new_value, false, true).as_deref(),
            Some(old_hash.as_str())
        );
        assert_eq!(previous_admitted(Some(&during), &new_value, false, false), None);
        assert_eq!(previous_admitted(None, &new_value, true, true), None);
    }
}
