//! The one place that maps a hub's `spec.provider` to a client, and each provider's public URLs.
//! Adding a provider means a module in this crate, one arm in [`Registry::build`] and one in
//! [`default_inference_endpoint`].

use std::sync::Arc;

use keysmith_api::{ModelHubSpec, Provider};
use keysmith_core::{Clock, SecretValue};

use crate::{
    DynProvider, Result,
    aixplain::{self, AixplainClient},
    anthropic::{self, AnthropicClient},
    digitalocean::{self, DigitalOceanClient},
    google::{self, GoogleClient, GoogleSettings},
    http::{HttpConfig, Pause, Pauses, Transport},
    openai::{self, OpenAiClient},
    openrouter::{self, OpenRouterClient},
    validate_only::{self, Flavor, ValidateOnlyClient},
};

/// Builds provider clients. Clients it builds share one `Retry-After` pause per provider API and
/// management credential: a provider limits the credential, so hubs sharing one (or a hub whose
/// client is rebuilt) share its pause.
#[derive(Debug, Default)]
pub struct Registry {
    /// "Now" for clients that compute report windows from the current time (OpenAI, Anthropic):
    /// real time, except in tests that move keysmith's clock and their simulators' together.
    clock: Clock,
    pauses: Pauses,
}

impl Registry {
    /// A registry whose clients take "now" from `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            clock,
            pauses: Pauses::default(),
        }
    }

    /// A client for a hub with settings `spec`, authenticated with `credential` (absent for
    /// import-only use: the calls then present each imported key itself).
    pub fn build(&self, spec: &ModelHubSpec, credential: Option<SecretValue>) -> Result<DynProvider> {
        let mut config = HttpConfig::default();
        if let Some(limit) = &spec.api_rate_limit {
            config.requests_per_second = limit.requests_per_second;
            config.burst = limit.burst.unwrap_or(1);
        }
        let credential = credential.unwrap_or_else(|| SecretValue::new(""));
        // Without a management credential there is nothing to share with other hubs.
        let pause = if credential.expose().is_empty() {
            Pause::default()
        } else {
            self.pauses.get(&format!(
                "{}\n{}\n{}",
                spec.provider.as_str(),
                spec.endpoint.as_deref().unwrap_or_default().trim(),
                credential.fingerprint()
            ))
        };
        let transport = Transport::with_pause(config, pause)?;
        let endpoint = |default: &'static str| spec.endpoint.as_deref().unwrap_or(default);
        let inference = |default: &'static str| spec.inference_endpoint.as_deref().unwrap_or(default);
        Ok(match spec.provider {
            Provider::Openrouter => Arc::new(OpenRouterClient::new(
                endpoint(openrouter::DEFAULT_ENDPOINT),
                credential,
                transport,
            )?),
            Provider::Aixplain => Arc::new(AixplainClient::new(
                endpoint(aixplain::DEFAULT_ENDPOINT),
                credential,
                transport,
            )?),
            Provider::Anthropic => {
                let admin = endpoint(anthropic::DEFAULT_ENDPOINT);
                // Imported keys are checked where clients call Claude; by default that is the same
                // host as the Admin API.
                let workspace = spec.anthropic.as_ref().and_then(|a| a.workspace_id.clone());
                Arc::new(
                    AnthropicClient::new(
                        admin,
                        spec.inference_endpoint.as_deref().unwrap_or(admin),
                        credential,
                        workspace,
                        transport,
                    )?
                    .with_clock(self.clock.clone()),
                )
            }
            Provider::Digitalocean => Arc::new(DigitalOceanClient::new(
                endpoint(digitalocean::DEFAULT_ENDPOINT),
                inference(digitalocean::DEFAULT_INFERENCE_ENDPOINT),
                credential,
                transport,
            )?),
            Provider::Together | Provider::OpenaiCompatible => {
                let flavor = match spec.provider {
                    Provider::Together => Flavor::Together,
                    _ => Flavor::OpenAiCompatible,
                };
                Arc::new(ValidateOnlyClient::new(
                    flavor,
                    spec.inference_endpoint.as_deref(),
                    Some(credential),
                    transport,
                )?)
            }
            Provider::Openai => Arc::new(
                OpenAiClient::new(
                    endpoint(openai::DEFAULT_ENDPOINT),
                    inference(openai::DEFAULT_INFERENCE_ENDPOINT),
                    credential,
                    spec.openai.clone(),
                    transport,
                )?
                .with_clock(self.clock.clone()),
            ),
            Provider::Google => {
                let google = spec.google.as_ref();
                let settings = GoogleSettings {
                    endpoint: spec.endpoint.clone(),
                    inference_endpoint: spec.inference_endpoint.clone(),
                    token_endpoint: google.and_then(|g| g.token_endpoint.clone()),
                    project: google.map(|g| g.project.clone()),
                };
                Arc::new(GoogleClient::new(settings, &credential, transport)?)
            }
        })
    }
}

/// The base URL clients call with a key of `provider`, when the hub does not set
/// `spec.inferenceEndpoint`. `None` for a generic OpenAI-compatible hub, which has no public URL.
pub fn default_inference_endpoint(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Openrouter => Some(openrouter::DEFAULT_INFERENCE_ENDPOINT),
        Provider::Aixplain => Some(aixplain::DEFAULT_INFERENCE_ENDPOINT),
        Provider::Anthropic => Some(anthropic::DEFAULT_INFERENCE_ENDPOINT),
        Provider::Digitalocean => Some(digitalocean::DEFAULT_INFERENCE_ENDPOINT),
        Provider::Together => Some(validate_only::TOGETHER_DEFAULT_ENDPOINT),
        Provider::Openai => Some(openai::DEFAULT_INFERENCE_ENDPOINT),
        Provider::Google => Some(google::DEFAULT_INFERENCE_ENDPOINT),
        Provider::OpenaiCompatible => None,
    }
}
