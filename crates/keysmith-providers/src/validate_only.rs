//! Providers whose keys keysmith can only validate: Together AI (`providers.md` §6), which has no
//! key-management API at all, and any server that speaks the OpenAI API (`openaiCompatible`: vLLM,
//! LiteLLM, Ollama, a company gateway, ...). Keys are made elsewhere and imported; keysmith checks each
//! one with `GET {inferenceEndpoint}/models` authenticated by the key itself, delivers it, and
//! publishes the spec's limits for clients. No management credential is needed.

mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::{Method, Url};

pub use self::wire::ModelsShape;
use self::wire::{ModelsError, error_message, model_count};
use super::{
    AccountInfo, CreatedKey, Error, ImportedKeyInfo, KeyRecord, KeySettings, ProviderClient, Result,
    SecretValue, endpoint,
    http::{Call, Transport, decode_error},
};
use keysmith_api::{Capabilities, Enforcement};

/// Together's public inference API (the spec's `servers`; the legacy `api.together.xyz` works too).
pub const TOGETHER_DEFAULT_ENDPOINT: &str = "https://api.together.ai/v1";

/// Which validate-only provider a client speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Together AI.
    Together,
    /// Any server that speaks the OpenAI API.
    OpenAiCompatible,
}

impl Flavor {
    /// The provider's name in messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Together => "Together AI",
            Self::OpenAiCompatible => "the OpenAI-compatible server",
        }
    }

    /// Where keys are checked (and clients call) when the hub sets no `spec.inferenceEndpoint`. An
    /// OpenAI-compatible server has no public default: the hub must name it.
    pub fn default_endpoint(self) -> Option<&'static str> {
        match self {
            Self::Together => Some(TOGETHER_DEFAULT_ENDPOINT),
            Self::OpenAiCompatible => None,
        }
    }

    /// How the provider lays out `GET /v1/models`.
    pub fn models_shape(self) -> ModelsShape {
        match self {
            Self::Together => ModelsShape::BareArray,
            Self::OpenAiCompatible => ModelsShape::Envelope,
        }
    }
}

/// A client that validates keys of one Together or OpenAI-compatible hub.
#[derive(Debug)]
pub struct ValidateOnlyClient {
    flavor: Flavor,
    inference: Url,
    /// The hub's credential, if it names one: checked by `verify` like any key.
    credential: Option<SecretValue>,
    transport: Transport,
}

impl ValidateOnlyClient {
    /// A client checking keys against `inference_url` (the hub's `spec.inferenceEndpoint`), or the
    /// flavor's default when that is `None`. Fails with [`Error::Config`] when there is neither, or
    /// when the URL is not an absolute `http`/`https` URL without credentials, query or fragment. An
    /// empty `credential` counts as none.
    pub fn new(
        flavor: Flavor,
        inference_url: Option<&str>,
        credential: Option<SecretValue>,
        transport: Transport,
    ) -> Result<Self> {
        let Some(text) = inference_url.or(flavor.default_endpoint()) else {
            return Err(Error::Config(
                "spec.inferenceEndpoint is required: it names the server that keys are checked against \
                 and clients call"
                    .into(),
            ));
        };
        Ok(Self {
            flavor,
            inference: endpoint::parse(text, "the inference endpoint")?,
            credential: credential.filter(|value| !value.expose().trim().is_empty()),
            transport,
        })
    }

    /// `GET {inference}/models` with `key`: the server lists its models only for a key it accepts.
    async fn check(&self, key: &SecretValue) -> Result<usize> {
        let url = endpoint::join(&self.inference, &["models"])?;
        let response = self
            .transport
            .send(Call::idempotent(error_message), |client| {
                client.request(Method::GET, url.clone()).bearer_auth(key.expose())
            })
            .await?;
        model_count(response.body()).map_err(|err| match err {
            ModelsError::Json(err) => decode_error(&err),
            ModelsError::Shape => Error::Decode(format!(
                "{} did not answer GET /models with a model list (a JSON array or {{\"data\": [...]}})",
                self.flavor.display_name()
            )),
        })
    }

    fn unsupported(&self) -> Error {
        Error::Unsupported(match self.flavor {
            Flavor::Together => {
                "managing Together AI keys (Together has no key-management API; import the key)"
            }
            Flavor::OpenAiCompatible => {
                "managing keys of an OpenAI-compatible server (keysmith only validates imported keys there)"
            }
        })
    }
}

#[async_trait]
impl ProviderClient for ValidateOnlyClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Neither kind of server holds limits per key or reports spend to keysmith, so every
            // limit is published for clients to honour and nothing more.
            budget: Enforcement::Advisory,
            // Together's limits are dynamic, per organisation and model, and not settable per key.
            rate_limits: Enforcement::Advisory,
            model_limits: Enforcement::Advisory,
            request_limits: Enforcement::Advisory,
            // Together sets expiry in its dashboard only; keysmith cannot re-issue a key it cannot mint.
            expiry: Enforcement::Unsupported,
            disable: Enforcement::Unsupported,
            rename: Enforcement::Unsupported,
            usage: Enforcement::Unsupported,
            // No API creates keys: they are made in Together's dashboard (or the server's own tooling).
            provisioning: Enforcement::Unsupported,
            rotation: Enforcement::Unsupported,
        }
    }

    /// Checks the hub's credential like any key, when the hub names one. Import-only hubs need none,
    /// and the keys themselves are checked one by one.
    async fn verify(&self) -> Result<AccountInfo> {
        if let Some(credential) = &self.credential {
            self.check(credential).await?;
        }
        Ok(AccountInfo::default())
    }

    /// Nothing is sent: there is no API to mint keys.
    async fn create_key(&self, _settings: &KeySettings) -> Result<CreatedKey> {
        Err(self.unsupported())
    }

    async fn get_key(&self, _id: &str) -> Result<Option<KeyRecord>> {
        Err(self.unsupported())
    }

    /// No API lists keys, so keysmith sees none (and none of them carry its tag).
    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        Ok(Vec::new())
    }

    async fn update_key(&self, _id: &str, _settings: &KeySettings) -> Result<KeyRecord> {
        Err(self.unsupported())
    }

    /// Revoking needs the provider's dashboard; a key keysmith cannot revoke is never reported as
    /// revoked.
    async fn delete_key(&self, _id: &str) -> Result<()> {
        Err(self.unsupported())
    }

    /// `GET {inference}/models` with the key itself. A 401 means the key is wrong, revoked or expired.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        self.check(value).await?;
        Ok(ImportedKeyInfo::default())
    }
}
