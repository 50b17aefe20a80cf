//! `delivery: Gateway` at the edges: the route Secret in keysmith-gateway's namespace (read, written,
//! removed) and the usage the gateway meters, merged into what the provider reports.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keysmith_api::{
    ApiKey, ApiKeyStatus, Delivery, FIELD_MANAGER, ModelHub, ModelUsage, Usage,
    gateway_route::{GatewayApi, KeyReport, UsageReport},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use tokio::sync::Mutex;
use tracing::debug;

use super::{Problem, SyncResult};
use crate::{
    controller::{Context, Error},
    plan::{self, gateway::GatewaySettings},
};

/// How long one read of the gateway's `/usage` serves every ApiKey's reconcile.
const USAGE_FRESH_FOR: Duration = Duration::from_secs(5);

/// The gateway side of one ApiKey's sync.
#[derive(Debug)]
pub struct GatewayRun {
    /// Whether the key is delivered through the gateway now; `false` for a key that left it, whose
    /// route is removed once the app's Secret holds the provider key again.
    pub active: bool,
    pub api: GatewayApi,
    /// The provider URL the gateway forwards to.
    pub upstream: String,
    /// The gateway URL the app's SDK is given.
    pub app_base_url: String,
    pub routes: Api<Secret>,
    /// The route Secret as read before the sync.
    pub existing: Option<Secret>,
    pub namespace: String,
    /// Whether keysmith has suspended the key (the route then refuses it too).
    pub suspended: bool,
    /// This sync's new key comes from a rotation that keeps the previous key for its overlap: the
    /// route keeps admitting the app key issued for it.
    pub carry_previous: bool,
    /// Whether a previous provider key is still live (status records one in its overlap).
    pub previous_live: bool,
}

/// The gateway side of `key`'s sync, if it has one: the key is delivered through the gateway, or was.
pub async fn observe(
    key: &ApiKey,
    hub: &ModelHub,
    ctx: &Context,
    inference_base: &str,
    status: &ApiKeyStatus,
) -> SyncResult<Option<GatewayRun>> {
    let active = plan::gateway::delivery_mode(key, hub) == Delivery::Gateway;
    let was = status.delivery == Some(Delivery::Gateway);
    if !active && !was {
        return Ok(None);
    }
    let Some(settings) = ctx.settings.gateway.as_ref() else {
        return if active {
            Err(Problem::GatewayNotConfigured)
        } else {
            // Left the gateway, and this operator no longer knows it: nothing to clean up here.
            Ok(None)
        };
    };
    let provider = hub.spec.provider;
    let api = match plan::gateway::gateway_api(provider) {
        Ok(api) => api,
        Err(what) if active => return Err(Problem::Provider(keysmith_providers::Error::Unsupported(what))),
        Err(_) => keysmith_api::gateway_route::GatewayApi::Openai,
    };
    let routes = Api::<Secret>::namespaced(ctx.client.clone(), &settings.namespace);
    let existing = routes
        .get_opt(&plan::gateway::route_secret_name(key))
        .await
        .map_err(Error::kube("get the gateway route Secret"))?;
    Ok(Some(GatewayRun {
        active,
        api,
        upstream: plan::gateway::upstream(provider, inference_base),
        app_base_url: plan::gateway::app_base_url(&settings.url, api),
        routes,
        existing,
        namespace: settings.namespace.clone(),
        suspended: status.suspended.is_some(),
        carry_previous: false,
        previous_live: status
            .rotation
            .as_ref()
            .is_some_and(|r| r.previous_key_id.is_some()),
    }))
}

impl GatewayRun {
    /// Writes the route for provider key `value` unless it already says so.
    pub async fn apply(
        &mut self,
        key: &ApiKey,
        hub: &ModelHub,
        value: &keysmith_core::SecretValue,
        key_id: Option<&str>,
        now: jiff::Timestamp,
    ) -> SyncResult<()> {
        let state = plan::gateway::route_state(key, self.suspended, now);
        let old = self.existing.as_ref().and_then(plan::gateway::route_document_of);
        let previous =
            plan::gateway::previous_admitted(old.as_ref(), value, self.carry_previous, self.previous_live);
        let inputs = plan::gateway::RouteInputs {
            key,
            hub,
            api: self.api,
            upstream: &self.upstream,
            state,
            previous,
        };
        let desired = plan::gateway::desired_route_secret(&inputs, value, key_id, &self.namespace);
        if self
            .existing
            .as_ref()
            .is_some_and(|have| plan::gateway::route_matches(have, &desired))
        {
            return Ok(());
        }
        let written = self
            .routes
            .patch(
                &plan::gateway::route_secret_name(key),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(Error::kube("apply the gateway route Secret"))?;
        self.existing = Some(written);
        Ok(())
    }

    /// Removes the route (the key left the gateway, or its ApiKey is gone).
    pub async fn remove(&mut self, key: &ApiKey) -> SyncResult<()> {
        remove_route(&self.routes, key).await?;
        self.existing = None;
        Ok(())
    }
}

/// Deletes `key`'s route Secret; gone already is fine.
pub async fn remove_route(routes: &Api<Secret>, key: &ApiKey) -> Result<(), Error> {
    match routes
        .delete(&plan::gateway::route_secret_name(key), &DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other
            .map(|_| ())
            .map_err(Error::kube("delete the gateway route Secret")),
    }
}

/// Removes the route of a deleted ApiKey that was delivered through the gateway.
pub async fn forget(ctx: &Context, key: &ApiKey) -> Result<(), Error> {
    let was = key.status.as_ref().and_then(|s| s.delivery) == Some(Delivery::Gateway);
    match (&ctx.settings.gateway, was) {
        (Some(settings), true) => {
            let routes = Api::<Secret>::namespaced(ctx.client.clone(), &settings.namespace);
            remove_route(&routes, key).await
        }
        _ => Ok(()),
    }
}

/// The last `/usage` report read, shared by every reconcile for [`USAGE_FRESH_FOR`].
#[derive(Debug, Default)]
pub struct UsageCache {
    last: Mutex<Polled>,
}

#[derive(Debug, Default)]
struct Polled {
    /// When the gateway was last asked, answered or not: a gateway that is down is asked once per
    /// [`USAGE_FRESH_FOR`], not once per reconcile.
    asked: Option<Instant>,
    report: Option<UsageReport>,
}

impl UsageCache {
    /// The gateway's figures for `key`, read at most every few seconds. A gateway that cannot be
    /// reached leaves status with the provider's figures and the last report; the gateway keeps
    /// enforcing either way.
    pub async fn figures(&self, settings: &GatewaySettings, key: &ApiKey) -> Option<KeyReport> {
        let url = settings.usage_url.as_deref()?;
        let mut last = self.last.lock().await;
        if last.asked.is_none_or(|at| at.elapsed() >= USAGE_FRESH_FOR) {
            last.asked = Some(Instant::now());
            match fetch(url).await {
                Ok(report) => last.report = Some(report),
                Err(err) => debug!(error = %err, "gateway usage not read"),
            }
        }
        let ns = key.namespace().unwrap_or_default();
        let name = key.name_any();
        last.report
            .as_ref()?
            .keys
            .iter()
            .find(|k| k.namespace == ns && k.name == name)
            .cloned()
    }
}

/// Why the usage report was not read.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("HTTP client: {0}")]
    Client(#[from] keysmith_providers::Error),
    #[error("{0}")]
    Http(#[from] reqwest::Error),
}

async fn fetch(url: &str) -> Result<UsageReport, FetchError> {
    Ok(keysmith_providers::http::client_builder()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// `usage` with what the gateway metered where the provider reports nothing: requests and tokens of
/// the day, per-model figures, and spend in the budget's window when every request's cost was known.
pub fn merge_usage(mut usage: Usage, metered: &KeyReport) -> Usage {
    usage.requests_today = usage.requests_today.or(Some(metered.requests_today));
    usage
        .tokens_today
        .get_or_insert(metered.tokens_today.input + metered.tokens_today.output);
    if usage.models.is_empty() {
        usage.models = metered
            .models
            .iter()
            .map(|m| ModelUsage {
                model: m.model.clone(),
                usd: m.spend_usd,
                requests: Some(m.requests),
                tokens: Some(m.tokens.input + m.tokens.output),
            })
            .collect();
    }
    if usage.current_usd.is_none() {
        usage.current_usd = metered.spend_usd;
    }
    if usage.window_resets_at.is_none() {
        usage.window_resets_at = metered
            .window_resets_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(Into::into);
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use keysmith_api::gateway_route::{ModelReport, TokenFigures};

    #[test]
    fn metered_figures_fill_what_the_provider_left_out() {
        let metered = KeyReport {
            namespace: "a".into(),
            name: "b".into(),
            day: "2026-12-07".into(),
            requests_today: 4,
            tokens_today: TokenFigures {
                input: 30,
                output: 12,
            },
            models: vec![ModelReport {
                model: "gpt-4o-mini".into(),
                requests: 4,
                tokens: TokenFigures {
                    input: 30,
                    output: 12,
                },
                spend_usd: Some(0.01),
            }],
            spend_usd: Some(0.01),
            window_resets_at: Some("2027-01-01T00:00:00Z".into()),
        };
        let merged = merge_usage(Usage::default(), &metered);
        assert_eq!((merged.requests_today, merged.tokens_today), (Some(4), Some(42)));
        assert_eq!(merged.models[0].tokens, Some(42));
        assert_eq!(merged.current_usd, Some(0.01));
        assert!(merged.window_resets_at.is_some());
        let provider = Usage {
            requests_today: Some(9),
            current_usd: Some(2.0),
            ..Default::default()
        };
        let merged = merge_usage(provider, &metered);
        assert_eq!((merged.requests_today, merged.current_usd), (Some(9), Some(2.0)));
    }

    fn settings(usage_url: String) -> GatewaySettings {
        GatewaySettings {
            url: "http://gateway:8080".into(),
            namespace: "keysmith-system".into(),
            usage_url: Some(usage_url),
        }
    }

    fn key(ns: &str, name: &str) -> ApiKey {
        let spec = serde_json::from_value(serde_json::json!({"hubRef": {"name": "hub"}})).unwrap();
        let mut key = ApiKey::new(name, spec);
        key.metadata.namespace = Some(ns.into());
        key
    }

    #[tokio::test]
    async fn the_report_is_read_once_for_every_key_and_a_gateway_that_is_down_is_not_asked_per_reconcile() {
        let report = serde_json::json!({"keys": [{"namespace": "a", "name": "chat", "day": "2026-12-07",
            "requestsToday": 3, "tokensToday": {"input": 10, "output": 5}, "models": []}]});
        let app = axum::Router::new().route(
            "/usage",
            axum::routing::get(move || {
                let report = report.clone();
                async move { axum::Json(report) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let cache = UsageCache::default();
        let up = settings(format!("http://{addr}/usage"));
        let figures = cache.figures(&up, &key("a", "chat")).await.unwrap();
        assert_eq!(figures.requests_today, 3);
        assert!(cache.figures(&up, &key("a", "other")).await.is_none());

        let down = UsageCache::default();
        let nowhere = settings("http://127.0.0.1:9/usage".into());
        assert!(down.figures(&nowhere, &key("a", "chat")).await.is_none());
        let asked = down.last.lock().await.asked;
        assert!(asked.is_some());
        assert!(down.figures(&nowhere, &key("a", "chat")).await.is_none());
        assert_eq!(
            down.last.lock().await.asked,
            asked,
            "asked again within the window"
        );
    }
}
