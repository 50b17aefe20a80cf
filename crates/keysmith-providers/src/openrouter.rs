//! OpenRouter's management ("provisioning") key API (`providers.md` §1): keys are minted with a
//! management key, identified by their `hash`, and carry a USD budget with a reset window, a BYOK
//! flag, an expiry and usage per UTC window.

mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::{Method, Url};
use tracing::warn;

use self::wire::{CreateRequest, Created, Credits, CurrentKey, Data, UpdateRequest, WireKey, error_message};
use super::{
    AccountInfo, CreatedKey, Error, ImportedKeyInfo, KeyRecord, KeySettings, ProviderClient, Result,
    SecretValue, endpoint,
    http::{Call, Transport},
};
use keysmith_api::{Capabilities, Enforcement};

/// OpenRouter's public management API.
pub const DEFAULT_ENDPOINT: &str = "https://openrouter.ai/api/v1";

/// Where clients call OpenRouter with a key (the same base as management).
pub const DEFAULT_INFERENCE_ENDPOINT: &str = "https://openrouter.ai/api/v1";

/// Keys per `GET /keys` page. The docs promise "the most recent 100 keys" and no `has_more`, so a
/// shorter page marks the end.
const PAGE_SIZE: usize = 100;

/// Pages read before `list_keys` gives up: 100 000 keys is far beyond any real account, so more
/// means the provider keeps returning full pages and listing would never end.
const MAX_PAGES: usize = 1000;

/// A client for one OpenRouter account, holding its management key.
#[derive(Debug)]
pub struct OpenRouterClient {
    base: Url,
    management_key: SecretValue,
    transport: Transport,
}

impl OpenRouterClient {
    /// A client for the API at `base_url` (e.g. [`DEFAULT_ENDPOINT`], or a simulator's
    /// `http://127.0.0.1:PORT/api/v1`). Fails with [`Error::Config`] unless `base_url` is an
    /// absolute `http`/`https` URL without credentials, query or fragment.
    pub fn new(base_url: &str, management_key: SecretValue, transport: Transport) -> Result<Self> {
        let base = endpoint::parse(base_url, "the endpoint")?;
        Ok(Self {
            base,
            management_key,
            transport,
        })
    }

    /// `base` followed by `segments`, each percent-encoded, so an identifier can never escape its
    /// path segment.
    fn url(&self, segments: &[&str]) -> Result<Url> {
        endpoint::join(&self.base, segments)
    }

    /// An idempotent call authenticated with the management key.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<super::http::Response> {
        self.send(
            Call::idempotent(error_message),
            method,
            url,
            body,
            &self.management_key,
        )
        .await
    }

    async fn send(
        &self,
        call: Call,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        credential: &SecretValue,
    ) -> Result<super::http::Response> {
        self.transport
            .send(call, |client| {
                let request = client
                    .request(method.clone(), url.clone())
                    .bearer_auth(credential.expose());
                match &body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }

    async fn current_key(&self, credential: &SecretValue) -> Result<CurrentKey> {
        let url = self.url(&["key"])?;
        let response = self
            .send(
                Call::idempotent(error_message),
                Method::GET,
                url,
                None,
                credential,
            )
            .await?;
        Ok(response.json::<Data<CurrentKey>>()?.data)
    }
}

#[async_trait]
impl ProviderClient for OpenRouterClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // `limit` plus `limit_reset` on the key: OpenRouter answers 402 once it is spent.
            budget: Enforcement::Provider,
            // OpenRouter has no per-key request rate (the `rate_limit` on `/key` is deprecated and
            // account-wide), so a rate limit can only be published for clients to pace themselves.
            rate_limits: Enforcement::Advisory,
            // No per-model limits per key; and keysmith cannot see per-model traffic in time to
            // enforce them (`/activity` covers completed days only). Clients may honour them.
            model_limits: Enforcement::Advisory,
            // Per-request token caps are a client-side `max_tokens` matter at OpenRouter.
            request_limits: Enforcement::Advisory,
            // `expires_at` on create; a change re-issues the key, since PATCH cannot set it.
            expiry: Enforcement::Provider,
            // `PATCH disabled`.
            disable: Enforcement::Provider,
            // `PATCH name`.
            rename: Enforcement::Provider,
            // `usage*` and `limit_remaining` on every key object.
            usage: Enforcement::Provider,
            // `POST /keys` with a management key.
            provisioning: Enforcement::Provider,
            // No rotate endpoint: keysmith mints a successor and revokes the old key after the overlap.
            rotation: Enforcement::Operator,
        }
    }

    /// `GET /key` must describe a management key (a valid ordinary key would pass authentication and
    /// then fail on every `/keys` call), then `GET /credits` supplies the account figures.
    async fn verify(&self) -> Result<AccountInfo> {
        if !self.current_key(&self.management_key).await?.is_management() {
            return Err(Error::Forbidden {
                message: "credential is not a management key".into(),
            });
        }
        let response = self.call(Method::GET, self.url(&["credits"])?, None).await?;
        Ok(response.json::<Data<Credits>>()?.data.into())
    }

    /// `POST /keys` is sent once: it is retried only after a 429 or 5xx answer, never after a
    /// connection failure that may have followed a successful create (the controller's crash recovery
    /// finds such keys by their tagged name). OpenRouter creates keys enabled, so a key meant to start
    /// disabled is disabled by a follow-up `PATCH`; if that fails the key is still returned, as
    /// created, because its value cannot be fetched again and the controller will retry the update.
    async fn create_key(&self, settings: &KeySettings) -> Result<CreatedKey> {
        let url = self.url(&["keys"])?;
        let body = super::http::to_json(CreateRequest::new(settings))?;
        let response = self
            .send(
                Call::non_idempotent(error_message),
                Method::POST,
                url,
                Some(body),
                &self.management_key,
            )
            .await?;
        let created: Created = response.json()?;
        let Some(value) = created.key.filter(|value| !value.is_empty()) else {
            return Err(Error::Decode("the create response holds no key value".into()));
        };
        let value = SecretValue::new(value);
        let mut record = created.data.into_record();
        if settings.disabled && !record.settings.disabled {
            let patch = KeySettings {
                disabled: true,
                ..record.settings.clone()
            };
            match self.update_key(&record.id, &patch).await {
                Ok(updated) => record = updated,
                Err(err) => warn!(key_id = %record.id, error = %err, "could not disable a newly created key"),
            }
        }
        Ok(CreatedKey { record, value })
    }

    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        match self.call(Method::GET, self.url(&["keys", id])?, None).await {
            Ok(response) => Ok(Some(response.json::<Data<WireKey>>()?.data.into_record())),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Pages through `GET /keys?include_disabled=true&offset=N`. Pages are newest first, so a key
    /// created mid-listing shifts the rest by one: duplicates are dropped by hash.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let mut keys: Vec<KeyRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut offset = 0usize;
        for _ in 0..MAX_PAGES {
            let mut url = self.url(&["keys"])?;
            url.query_pairs_mut()
                .append_pair("include_disabled", "true")
                .append_pair("offset", &offset.to_string());
            let page = self
                .call(Method::GET, url, None)
                .await?
                .json::<Data<Vec<WireKey>>>()?
                .data;
            let count = page.len();
            for key in page {
                if seen.insert(key.hash.clone()) {
                    keys.push(key.into_record());
                }
            }
            if count < PAGE_SIZE {
                return Ok(keys);
            }
            offset += count;
        }
        Err(Error::Decode(format!(
            "key listing did not end after {MAX_PAGES} pages"
        )))
    }

    /// `PATCH` with absolute values, so repeating it is harmless. `expires_at` is not sent: OpenRouter
    /// cannot change it in place.
    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord> {
        let body = super::http::to_json(UpdateRequest::new(settings))?;
        let response = self
            .call(Method::PATCH, self.url(&["keys", id])?, Some(body))
            .await?;
        Ok(response.json::<Data<WireKey>>()?.data.into_record())
    }

    async fn delete_key(&self, id: &str) -> Result<()> {
        match self.call(Method::DELETE, self.url(&["keys", id])?, None).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// `GET /key` with the imported key itself. A management key is refused: it cannot call models,
    /// so a workload given one would fail.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        let current = self.current_key(value).await?;
        if current.is_management() {
            return Err(Error::Forbidden {
                message: "the imported key is a management key, which cannot call models".into(),
            });
        }
        Ok(current.into_imported())
    }
}
