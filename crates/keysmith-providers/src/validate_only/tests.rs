//! The validate-only client against the in-process Together and OpenAI-compatible simulators, over
//! real HTTP on loopback.

use std::time::{Duration, Instant};

use super::*;
use crate::{
    http::HttpConfig,
    testing::{self, fast_config},
};
use keysmith_simulators::{RunningSim, clock::Clock, faults::Fault, validate_only::ValidateOnlySim};

const FLAVORS: [Flavor; 2] = [Flavor::Together, Flavor::OpenAiCompatible];

type Fixture = testing::Fixture<ValidateOnlySim, ValidateOnlyClient>;

impl Fixture {
    async fn new(flavor: Flavor) -> Self {
        Self::with_config(flavor, fast_config()).await
    }

    async fn with_config(flavor: Flavor, config: HttpConfig) -> Self {
        let sim = ValidateOnlySim::new(simulated(flavor), [], Clock::new());
        Self::start(sim, |running| client_for(flavor, running, None, config)).await
    }

    fn with_credential(&self, credential: &str) -> ValidateOnlyClient {
        client_for(
            self.client.flavor,
            &self.running,
            Some(SecretValue::new(credential)),
            fast_config(),
        )
    }

    /// A fresh key and its value, as `SecretValue`.
    fn key(&self) -> SecretValue {
        SecretValue::new(self.sim.add_key("dashboard").value)
    }
}

/// The simulator's own name for the server a client flavor speaks to.
fn simulated(flavor: Flavor) -> keysmith_simulators::validate_only::Flavor {
    match flavor {
        Flavor::Together => keysmith_simulators::validate_only::Flavor::Together,
        Flavor::OpenAiCompatible => keysmith_simulators::validate_only::Flavor::OpenAiCompatible,
    }
}

fn client_for(
    flavor: Flavor,
    running: &RunningSim,
    credential: Option<SecretValue>,
    config: HttpConfig,
) -> ValidateOnlyClient {
    let transport = Transport::new(config).unwrap();
    ValidateOnlyClient::new(flavor, Some(&running.base_url), credential, transport).unwrap()
}

#[tokio::test]
async fn a_valid_key_passes_in_either_list_shape() {
    for flavor in FLAVORS {
        let fixture = Fixture::new(flavor).await;
        let info = fixture.client.inspect_imported(&fixture.key()).await.unwrap();
        assert_eq!(info, ImportedKeyInfo::default());
        let call = fixture.sim.requests().pop().unwrap();
        assert_eq!(
            (call.method.as_str(), call.path.as_str(), call.status),
            ("GET", "/v1/models", 200)
        );
    }
}

#[tokio::test]
async fn a_wrong_or_revoked_key_is_unauthorized_without_echoing_it() {
    for flavor in FLAVORS {
        let fixture = Fixture::new(flavor).await;
        let wrong = SecretValue::new(format!("sk-{}", "5".repeat(48)));
        let err = fixture.client.inspect_imported(&wrong).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        assert_eq!(err.reason(), "Unauthorized");
        assert!(!err.to_string().contains("55555555"), "{err}");

        let added = fixture.sim.add_key("revoked later");
        fixture.sim.revoke(&added.id);
        let err = fixture
            .client
            .inspect_imported(&SecretValue::new(added.value))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn the_credential_is_checked_like_a_key_when_the_hub_names_one() {
    for flavor in FLAVORS {
        let fixture = Fixture::new(flavor).await;
        assert_eq!(fixture.client.verify().await.unwrap(), AccountInfo::default());
        assert!(
            fixture.sim.requests().is_empty(),
            "no credential, nothing to check"
        );
        let good = fixture.key();
        fixture.with_credential(good.expose()).verify().await.unwrap();
        let err = fixture
            .with_credential("wrong-credential")
            .verify()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        // An empty Secret value is no credential at all.
        fixture.with_credential("  ").verify().await.unwrap();
        assert_eq!(fixture.sim.requests().len(), 2);
    }
}

#[tokio::test]
async fn key_management_is_unsupported_and_never_reaches_the_server() {
    for flavor in FLAVORS {
        let fixture = Fixture::new(flavor).await;
        let settings = KeySettings::default();
        assert!(matches!(
            fixture.client.create_key(&settings).await,
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            fixture.client.get_key("k").await,
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            fixture.client.update_key("k", &settings).await,
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            fixture.client.delete_key("k").await,
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            fixture.client.regenerate_key("k").await,
            Err(Error::Unsupported(_))
        ));
        assert_eq!(fixture.client.list_keys().await.unwrap(), Vec::new());
        let value = fixture.key();
        assert_eq!(
            fixture.client.find_imported(&value, Some("k")).await.unwrap(),
            None
        );
        assert_eq!(fixture.client.reveal_key("k").await.unwrap(), None);
        assert!(fixture.sim.requests().is_empty());
    }
}

#[tokio::test]
async fn a_rate_limited_check_waits_out_retry_after_then_succeeds() {
    for flavor in FLAVORS {
        let fixture = Fixture::new(flavor).await;
        let key = fixture.key();
        fixture.sim.inject(Fault::rate_limit(1, 1));
        let start = Instant::now();
        fixture.client.inspect_imported(&key).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());
        assert_eq!(fixture.sim.early_retries(), 0);
        let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![429, 200]);
    }
}

#[tokio::test]
async fn togethers_dynamic_rate_limit_beyond_the_wait_budget_is_rate_limited() {
    let fixture = Fixture::new(Flavor::Together).await;
    let key = fixture.key();
    fixture.sim.inject(Fault::rate_limit(1, 60));
    let err = fixture.client.inspect_imported(&key).await.unwrap_err();
    assert!(
        matches!(&err, Error::RateLimited { retry_after: Some(wait), message }
            if *wait == Duration::from_secs(60) && message.contains("dynamic request rate")),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(fixture.sim.requests().len(), 1);
}

#[tokio::test]
async fn an_overloaded_model_and_server_errors_are_retried() {
    let fixture = Fixture::new(Flavor::Together).await;
    let key = fixture.key();
    fixture.sim.overload(2);
    fixture.sim.inject(Fault::server_error(1));
    fixture.client.inspect_imported(&key).await.unwrap();
    let statuses: Vec<u16> = fixture.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 503, 503, 200]);
}

#[tokio::test]
async fn server_errors_beyond_the_retry_budget_surface_as_a_server_error() {
    let fixture = Fixture::with_config(
        Flavor::OpenAiCompatible,
        HttpConfig {
            max_retries: 1,
            ..fast_config()
        },
    )
    .await;
    let key = fixture.key();
    fixture.sim.inject(Fault::server_error(5));
    let err = fixture.client.inspect_imported(&key).await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 500, .. }), "{err:?}");
    assert_eq!(fixture.sim.requests().len(), 2);
}

#[tokio::test]
async fn a_server_that_answers_something_other_than_a_model_list_is_a_protocol_error() {
    use axum::{Json, Router, routing::get};
    let router = Router::new().route(
        "/v1/models",
        get(|| async { Json(serde_json::json!({"object": "list", "models": []})) }),
    );
    let running = RunningSim::start(router, "/v1").await.unwrap();
    let client = client_for(Flavor::OpenAiCompatible, &running, None, fast_config());
    let err = client
        .inspect_imported(&SecretValue::new("sk-any"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Decode(message) if message.contains("model list")),
        "{err:?}"
    );
    assert_eq!(err.reason(), "ProviderProtocolError");
}

#[test]
fn an_openai_compatible_hub_must_name_its_server() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let err = ValidateOnlyClient::new(Flavor::OpenAiCompatible, None, None, transport.clone()).unwrap_err();
    assert!(
        matches!(&err, Error::Config(message) if message.contains("spec.inferenceEndpoint")),
        "{err:?}"
    );
    let together = ValidateOnlyClient::new(Flavor::Together, None, None, transport.clone()).unwrap();
    assert_eq!(together.inference.as_str(), TOGETHER_DEFAULT_ENDPOINT);
    let err = ValidateOnlyClient::new(
        Flavor::Together,
        Some("https://user:hunter2@api.together.ai/v1"),
        None,
        transport,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)) && !err.to_string().contains("hunter2"));
}

#[test]
fn the_client_debug_output_hides_the_credential() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    let client = ValidateOnlyClient::new(
        Flavor::Together,
        None,
        Some(SecretValue::new("tgp_v1_secret_credential")),
        transport,
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("secret_credential"));
}

#[test]
fn capabilities_publish_every_limit_and_support_nothing_else() {
    let transport = Transport::new(HttpConfig::default()).unwrap();
    for flavor in FLAVORS {
        let client =
            ValidateOnlyClient::new(flavor, Some("http://127.0.0.1:1/v1"), None, transport.clone()).unwrap();
        let caps = client.capabilities();
        for advisory in [
            caps.budget,
            caps.rate_limits,
            caps.model_limits,
            caps.request_limits,
        ] {
            assert_eq!(advisory, Enforcement::Advisory);
        }
        for unsupported in [
            caps.expiry,
            caps.disable,
            caps.rename,
            caps.usage,
            caps.provisioning,
            caps.rotation,
        ] {
            assert_eq!(unsupported, Enforcement::Unsupported);
        }
    }
}

#[test]
fn each_flavor_names_its_list_shape() {
    assert_eq!(Flavor::Together.models_shape(), ModelsShape::BareArray);
    assert_eq!(Flavor::OpenAiCompatible.models_shape(), ModelsShape::Envelope);
    assert_eq!(Flavor::OpenAiCompatible.default_endpoint(), None);
}
