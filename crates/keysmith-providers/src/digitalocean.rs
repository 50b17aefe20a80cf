//! DigitalOcean's GenAI model API keys (`providers.md` §3). DigitalOcean retired creating model keys
//! through its API (the `POST` answers 410 since June 2026), so keys are made in the control panel and
//! imported; keysmith links an imported key to its record by uuid (`spec.import.keyId`), renames it,
//! regenerates its value in place (rotation) and deletes it. DigitalOcean holds no limits, expiry,
//! disable flag or usage for these keys.
//!
//! Management calls go to `https://api.digitalocean.com/v2/gen-ai/...` with a personal access token;
//! an imported key is checked against the separate serverless inference service.

mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::{Method, Url};

use self::wire::{Info, Models, Page, RenameRequest, Revealed, error_message};
use super::{
    AccountInfo, CreatedKey, Error, ImportedKeyInfo, KeyRecord, KeySettings, ProviderClient, Result,
    SecretValue, endpoint,
    http::{Call, Response, Transport},
};
use keysmith_api::{Capabilities, Enforcement};

/// DigitalOcean's public API.
pub const DEFAULT_ENDPOINT: &str = "https://api.digitalocean.com";

/// DigitalOcean's serverless inference service, which model keys authenticate against.
pub const DEFAULT_INFERENCE_ENDPOINT: &str = "https://inference.do-ai.run/v1";

/// The path of the model API keys under the API base.
const KEYS_PATH: [&str; 4] = ["v2", "gen-ai", "models", "api_keys"];

/// Keys per list page: DigitalOcean's maximum `per_page`, so listing takes as few calls as it can.
pub const PAGE_SIZE: usize = 200;

/// Pages read before `list_keys` gives up: 200 000 keys is far beyond any real account, so more means
/// the provider keeps announcing a next page and listing would never end.
const MAX_PAGES: usize = 1000;

/// A client for one DigitalOcean account, holding its API token.
#[derive(Debug)]
pub struct DigitalOceanClient {
    base: Url,
    inference: Url,
    token: SecretValue,
    transport: Transport,
}

impl DigitalOceanClient {
    /// A client for the API at `base_url` (e.g. [`DEFAULT_ENDPOINT`], or a simulator's
    /// `http://127.0.0.1:PORT`) that checks imported keys against `inference_url` (e.g.
    /// [`DEFAULT_INFERENCE_ENDPOINT`]). Fails with [`Error::Config`] unless both are absolute
    /// `http`/`https` URLs without credentials, query or fragment.
    pub fn new(
        base_url: &str,
        inference_url: &str,
        token: SecretValue,
        transport: Transport,
    ) -> Result<Self> {
        Ok(Self {
            base: endpoint::parse(base_url, "the endpoint")?,
            inference: endpoint::parse(inference_url, "the inference endpoint")?,
            token,
            transport,
        })
    }

    /// The model API keys collection, or one key (and a sub-resource) within it.
    fn keys_url(&self, rest: &[&str]) -> Result<Url> {
        let segments: Vec<&str> = KEYS_PATH.iter().chain(rest).copied().collect();
        endpoint::join(&self.base, &segments)
    }

    /// A call authenticated with the API token. Every management call used here may be repeated:
    /// rename and delete are idempotent, and a repeated regenerate only replaces a value nobody
    /// received with one the caller does receive.
    async fn call(&self, method: Method, url: Url, body: Option<serde_json::Value>) -> Result<Response> {
        send(&self.transport, method, url, body, &self.token).await
    }

    /// One page of the key list.
    async fn page(&self, page: usize, per_page: usize) -> Result<Page> {
        let mut url = self.keys_url(&[])?;
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("per_page", &per_page.to_string());
        self.call(Method::GET, url, None).await?.json()
    }
}

async fn send(
    transport: &Transport,
    method: Method,
    url: Url,
    body: Option<serde_json::Value>,
    credential: &SecretValue,
) -> Result<Response> {
    transport
        .send(Call::idempotent(error_message), |client| {
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

#[async_trait]
impl ProviderClient for DigitalOceanClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // A model key carries no budget and DigitalOcean reports no spend per key, so keysmith
            // cannot act on one either: a budget is only published.
            budget: Enforcement::Advisory,
            // No per-key rate or token limits in the key object; clients may pace themselves.
            rate_limits: Enforcement::Advisory,
            model_limits: Enforcement::Advisory,
            // Per-request token caps are a client-side `max_tokens` matter.
            request_limits: Enforcement::Advisory,
            // The key object has no expiry, and keysmith cannot re-issue a key it cannot mint.
            expiry: Enforcement::Unsupported,
            // No disable flag: a key works until it is deleted.
            disable: Enforcement::Unsupported,
            // `PUT .../api_keys/{uuid}` with a new name.
            rename: Enforcement::Provider,
            // The model-key API reports no usage.
            usage: Enforcement::Unsupported,
            // `POST .../api_keys` is retired (410): keys are made in the control panel and imported.
            provisioning: Enforcement::Unsupported,
            // `PUT .../api_keys/{uuid}/regenerate`: same uuid, new value.
            rotation: Enforcement::Provider,
        }
    }

    /// Lists one key: proves the token is valid and may read GenAI keys (`genai:read`). DigitalOcean
    /// reports no account figures for model keys.
    async fn verify(&self) -> Result<AccountInfo> {
        self.page(1, 1).await?;
        Ok(AccountInfo::default())
    }

    /// Creating model keys through the API is retired (DigitalOcean answers 410 Gone), so nothing is
    /// sent: the key has to be made in the control panel and imported.
    async fn create_key(&self, _settings: &KeySettings) -> Result<CreatedKey> {
        Err(Error::Unsupported(
            "minting DigitalOcean model keys (retired by DigitalOcean: create the key in the control panel \
             and import it with spec.import)",
        ))
    }

    /// DigitalOcean has no endpoint for one key, so the list is searched for its uuid.
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        Ok(self.list_keys().await?.into_iter().find(|key| key.id == id))
    }

    /// Pages through `GET .../api_keys?page=N&per_page=200` while `links.pages.next` announces more.
    /// Keys created or deleted mid-listing shift the pages, so duplicates are dropped by uuid, and
    /// listing stops once `meta.total` keys have been seen.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let mut keys: Vec<KeyRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for number in 1..=MAX_PAGES {
            let page = self.page(number, PAGE_SIZE).await?;
            let more = page.has_next();
            let total = page.total();
            let items = page.api_key_infos.unwrap_or_default();
            let empty = items.is_empty();
            for key in items {
                if !key.is_deleted() && seen.insert(key.uuid.clone()) {
                    keys.push(key.into_record());
                }
            }
            let all_seen = total.is_some_and(|total| seen.len() as u64 >= total);
            if !more || empty || all_seen {
                return Ok(keys);
            }
        }
        Err(Error::Decode(format!(
            "key listing did not end after {MAX_PAGES} pages"
        )))
    }

    /// Renames the key: the name is all DigitalOcean holds for it.
    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord> {
        let body = super::http::to_json(RenameRequest {
            api_key_uuid: id,
            name: &settings.name,
        })?;
        let response = self.call(Method::PUT, self.keys_url(&[id])?, Some(body)).await?;
        Ok(response.json::<Info>()?.api_key_info.into_record())
    }

    async fn delete_key(&self, id: &str) -> Result<()> {
        match self.call(Method::DELETE, self.keys_url(&[id])?, None).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// `GET {inference}/models` with the key itself: DigitalOcean's cheap check that a model key
    /// works. Its answer says nothing about the key, so nothing else is learnt.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        let url = endpoint::join(&self.inference, &["models"])?;
        send(&self.transport, Method::GET, url, None, value)
            .await?
            .json::<Models>()?;
        Ok(ImportedKeyInfo::default())
    }

    /// The record named by `key_id` (`spec.import.keyId`, the key's uuid). DigitalOcean shows no hint
    /// of a key's value anywhere, so without the uuid no record can be matched to the value: the key
    /// is then only validated (`Ok(None)`). A uuid that names no live key is an error, since the user
    /// pointed at a key that does not exist.
    async fn find_imported(&self, _value: &SecretValue, key_id: Option<&str>) -> Result<Option<KeyRecord>> {
        let Some(id) = key_id else {
            return Ok(None);
        };
        match self.get_key(id).await? {
            Some(record) => Ok(Some(record)),
            None => Err(Error::NotFound {
                message: format!("no DigitalOcean model API key has uuid {id:?} (spec.import.keyId)"),
            }),
        }
    }

    /// `PUT .../api_keys/{uuid}/regenerate`: the same key gets a new `secret_key`, shown in this answer
    /// only; the old value stops working.
    async fn regenerate_key(&self, id: &str) -> Result<CreatedKey> {
        let response = self
            .call(Method::PUT, self.keys_url(&[id, "regenerate"])?, None)
            .await?;
        let revealed = response.json::<Revealed>()?.api_key_info;
        let Some(value) = revealed.secret_key.filter(|value| !value.is_empty()) else {
            return Err(Error::Decode(
                "the regenerate response holds no secret_key".into(),
            ));
        };
        Ok(CreatedKey {
            record: revealed.key.into_record(),
            value: SecretValue::new(value),
        })
    }
}
