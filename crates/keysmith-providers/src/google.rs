//! Google's API Keys API v2 (`providers.md` §7): keys for Vertex AI and the Gemini API, minted in a
//! Cloud project with a service account's OAuth2 token. Every change is a long-running operation
//! that is polled to completion, deletion is soft (undeletable for 30 days), and a key's value can be
//! read again at any time with `getKeyString`.
//!
//! keysmith restricts every key it mints to the model APIs (`restrictions.apiTargets`). The API has
//! no disable switch, so a key is disabled by soft-deleting it with keysmith's marker annotation and
//! enabled again with `:undelete`; a soft-deleted key without the marker counts as revoked.

mod operations;
mod settings;
mod token;
mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::warn;

pub use self::settings::{GoogleSettings, OperationPolling};
pub use self::token::{DEFAULT_TOKEN_ENDPOINT, JWT_BEARER, SCOPE};
use self::{
    token::{ServiceAccount, TokenSource},
    wire::{CreatedKey as WireCreated, KeyList, KeyString, LookupKey, WireKey, error_message},
};
use super::{
    AccountInfo, CreatedKey, Error, ImportedKeyInfo, KeyRecord, KeySettings, ProviderClient, Result,
    SecretValue, endpoint,
    http::{Call, Response, Transport},
};
use keysmith_api::{Capabilities, Enforcement};

/// Google's API Keys API.
pub const DEFAULT_ENDPOINT: &str = "https://apikeys.googleapis.com";

/// Where clients call the Gemini API with a key (the API keys serve Vertex AI too).
pub const DEFAULT_INFERENCE_ENDPOINT: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The services minted keys may call: the Gemini API and Vertex AI. No other Google API accepts them.
pub const MODEL_SERVICES: [&str; 2] = ["generativelanguage.googleapis.com", "aiplatform.googleapis.com"];

/// The only location API keys live in.
const LOCATION: &str = "global";

/// Keys per list page.
const PAGE_SIZE: u32 = 100;

/// Pages read before `list_keys` gives up (100 000 keys): more means the token never ends.
const MAX_PAGES: usize = 1000;

/// Header carrying an API key on inference calls; a header rather than `?key=` keeps the value out of
/// URLs that proxies log.
const API_KEY_HEADER: &str = "x-goog-api-key";

/// A client for one Google Cloud project, authenticated as a service account.
#[derive(Debug)]
pub struct GoogleClient {
    api: Url,
    inference: Url,
    project: Option<String>,
    /// `None` for an import-only hub: imported keys can still be validated.
    auth: Option<TokenSource>,
    transport: Transport,
    polling: OperationPolling,
}

impl GoogleClient {
    /// A client from the hub's settings and its credential: a service-account JSON key, or an empty
    /// value for an import-only hub. Fails with [`Error::Config`] when a URL or the key is unusable.
    pub fn new(settings: GoogleSettings, credential: &SecretValue, transport: Transport) -> Result<Self> {
        let api = endpoint::parse(
            settings.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
            "the endpoint",
        )?;
        let inference = endpoint::parse(
            settings
                .inference_endpoint
                .as_deref()
                .unwrap_or(DEFAULT_INFERENCE_ENDPOINT),
            "the inference endpoint",
        )?;
        let account = if credential.expose().trim().is_empty() {
            None
        } else {
            Some(ServiceAccount::parse(credential)?)
        };
        let project = settings
            .project
            .filter(|p| !p.trim().is_empty())
            .or_else(|| account.as_ref().and_then(|a| a.project_id.clone()));
        if project.as_deref().is_some_and(|p| !is_segment(p)) {
            return Err(Error::Config(format!(
                "{project:?} is not a project ID or number"
            )));
        }
        let auth = match account {
            Some(account) => {
                let token_endpoint = settings
                    .token_endpoint
                    .clone()
                    .or_else(|| account.token_uri.clone())
                    .unwrap_or_else(|| DEFAULT_TOKEN_ENDPOINT.to_owned());
                let token_url = endpoint::parse(&token_endpoint, "the token endpoint")?;
                Some(TokenSource::new(account, token_url, transport.clone()))
            }
            None => None,
        };
        Ok(Self {
            api,
            inference,
            project,
            auth,
            transport,
            polling: OperationPolling::default(),
        })
    }

    /// Replaces the operation polling schedule (tests poll fast).
    #[must_use]
    pub fn with_polling(mut self, polling: OperationPolling) -> Self {
        self.polling = polling;
        self
    }

    /// The service account's email, if the client has one.
    pub fn client_email(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.account().client_email.as_str())
    }

    fn url(&self, segments: &[&str]) -> Result<Url> {
        endpoint::join(&self.api, segments)
    }

    fn project(&self) -> Result<&str> {
        self.project.as_deref().ok_or_else(|| {
            Error::Config("no project: set spec.google.project or use a key file with project_id".into())
        })
    }

    /// `v2/projects/{p}/locations/global/keys`.
    fn keys_url(&self) -> Result<Url> {
        self.url(&["v2", "projects", self.project()?, "locations", LOCATION, "keys"])
    }

    /// The path segments of key `id`: a full resource name (`projects/…/keys/…`) or the last part
    /// alone, in the hub's project. Anything else matches no key.
    fn key_segments(&self, id: &str) -> Result<Vec<String>> {
        let parts: Vec<&str> = id.split('/').collect();
        let segments = match parts.as_slice() {
            ["projects", project, "locations", location, "keys", key] => {
                vec![*project, *location, *key]
            }
            [key] => vec![self.project()?, LOCATION, *key],
            _ => vec![],
        };
        if segments.len() != 3 || !segments.iter().all(|s| is_segment(s)) {
            return Err(Error::NotFound {
                message: "not an API key resource name".into(),
            });
        }
        Ok([
            "projects",
            segments[0],
            "locations",
            segments[1],
            "keys",
            segments[2],
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect())
    }

    /// `v2/{name}` followed by `suffix` on the last segment (e.g. `:undelete`) or extra segments.
    fn key_url(&self, id: &str, suffix: &str, extra: &[&str]) -> Result<Url> {
        let mut segments = vec!["v2".to_owned()];
        segments.extend(self.key_segments(id)?);
        if let Some(last) = segments.last_mut() {
            last.push_str(suffix);
        }
        segments.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        self.url(&refs)
    }

    /// A call with the service account's token. A 401 (a token revoked or expired early) drops the
    /// token and retries once with a fresh one.
    async fn call(&self, call: Call, method: Method, url: Url, body: Option<&Value>) -> Result<Response> {
        let auth = self.auth.as_ref().ok_or_else(|| Error::Unauthorized {
            message: "the hub has no service-account credential".into(),
        })?;
        let token = auth.token().await?;
        match self.send(call, &method, &url, body, &token).await {
            Err(Error::Unauthorized { .. }) => {
                auth.invalidate(&token).await;
                let token = auth.token().await?;
                self.send(call, &method, &url, body, &token).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        call: Call,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        token: &SecretValue,
    ) -> Result<Response> {
        self.transport
            .send(call, |client| {
                let request = client
                    .request(method.clone(), url.clone())
                    .bearer_auth(token.expose());
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }

    async fn get(&self, url: Url) -> Result<Response> {
        self.call(Call::idempotent(error_message), Method::GET, url, None)
            .await
    }

    /// Reads key `id` as the API shows it (deleted keys included).
    async fn wire_key(&self, id: &str) -> Result<Option<WireKey>> {
        match self.get(self.key_url(id, "", &[])?).await {
            Ok(response) => Ok(Some(response.json()?)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn key_string(&self, id: &str) -> Result<Option<SecretValue>> {
        match self.get(self.key_url(id, "", &["keyString"])?).await {
            Ok(response) => {
                let body: KeyString = response.json()?;
                Ok(body.key_string.filter(|v| !v.is_empty()).map(SecretValue::new))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The key a create made, when its `keyId` turned out to be taken: by this very create, sent
    /// again after its answer was lost. Another key under that id would not carry this name.
    async fn adopt(&self, key_id: &str, settings: &KeySettings) -> Result<WireKey> {
        let conflict = || Error::Rejected {
            status: 409,
            message: format!("key ID {key_id} is taken by a key keysmith did not make for this request"),
        };
        let key = self.wire_key(key_id).await?.ok_or_else(conflict)?;
        let ours = key.annotations.get(wire::NAME_ANNOTATION) == Some(&settings.name);
        if !ours || key.is_revoked() {
            return Err(conflict());
        }
        Ok(key)
    }
}

/// The `keyId` of a create: derived from keysmith's name, which is unique per create attempt, so a
/// create sent twice asks for the same id and cannot mint a second key.
fn key_id_for(name: &str) -> String {
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("ks-{}", &digest[..32])
}

/// A path segment that cannot escape its place in a URL.
fn is_segment(text: &str) -> bool {
    !text.is_empty() && text != "." && text != ".." && !text.contains(['/', '?', '#', '\\'])
}

#[async_trait]
impl ProviderClient for GoogleClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // API keys carry no spend figures or caps, and spend per key is not reported anywhere
            // keysmith reads (billing groups by project and service), so a budget cannot be held,
            // enforced or even watched.
            budget: Enforcement::Unsupported,
            // Quotas are per project and service (Cloud Quotas), never per key: a key's rate limits
            // can only be published for clients to pace themselves.
            rate_limits: Enforcement::Advisory,
            // Likewise per model.
            model_limits: Enforcement::Advisory,
            // Per-request token caps are a client-side matter; keysmith publishes them in the Secret.
            request_limits: Enforcement::Advisory,
            // Keys have no expiry field; keysmith would have to revoke the key when it is due.
            expiry: Enforcement::Operator,
            // No disable switch, but a soft delete stops the key and `:undelete` restores it (within
            // 30 days; a key disabled longer is purged and a new one is issued when it is enabled).
            disable: Enforcement::Provider,
            // `PATCH displayName` (the full name, tag included, in an annotation).
            rename: Enforcement::Provider,
            // Per-key traffic is only in Cloud Monitoring, outside this API.
            usage: Enforcement::Unsupported,
            // `POST .../keys` with a service account's token.
            provisioning: Enforcement::Provider,
            // No rotate endpoint: keysmith mints a successor and revokes the old key after the overlap.
            rotation: Enforcement::Operator,
        }
    }

    /// Exchanges the service account's key for a token, then reads one page of the project's keys,
    /// which proves the account may manage them. Google reports no credits.
    async fn verify(&self) -> Result<AccountInfo> {
        let mut url = self.keys_url()?;
        url.query_pairs_mut().append_pair("pageSize", "1");
        self.get(url).await?.json::<KeyList>()?;
        Ok(AccountInfo::default())
    }

    /// `POST .../keys?keyId=<derived from the name>`, then the operation is polled. The key's value
    /// comes with the finished operation or, failing that, from `getKeyString`. Since the `keyId` is
    /// fixed per attempt, a create repeated after a lost answer gets 409 and adopts the key the first
    /// one made rather than minting another. A key meant to start disabled is soft-deleted right
    /// after; if that fails it is still returned (as enabled) and the controller's next update
    /// disables it.
    async fn create_key(&self, settings: &KeySettings) -> Result<CreatedKey> {
        let key_id = key_id_for(&settings.name);
        let mut url = self.keys_url()?;
        url.query_pairs_mut().append_pair("keyId", &key_id);
        // A key meant to start disabled carries the marker from the start, so one delete disables it.
        let body = super::http::to_json(WireKey::new(settings, &MODEL_SERVICES))?;
        let (key, value) = match self.mutate(Method::POST, url, Some(&body)).await {
            Ok(Some(response)) => {
                let created: WireCreated =
                    serde_json::from_value(response).map_err(|err| super::http::decode_error(&err))?;
                let key = if created.key.name.is_empty() {
                    self.adopt(&key_id, settings).await?
                } else {
                    created.key
                };
                (key, created.key_string.filter(|v| !v.is_empty()))
            }
            Ok(None) => (self.adopt(&key_id, settings).await?, None),
            Err(Error::Rejected { status: 409, .. }) => (self.adopt(&key_id, settings).await?, None),
            Err(err) => return Err(err),
        };
        let value = match value {
            Some(value) => SecretValue::new(value),
            None => self
                .key_string(&key.name)
                .await?
                .ok_or_else(|| Error::Decode("the new key's value cannot be read".into()))?,
        };
        let key = if settings.disabled && !key.is_deleted() {
            match self.soft_delete(&key).await {
                Ok(disabled) => disabled,
                Err(err) => {
                    warn!(key_id = %key.name, error = %err, "could not disable a newly created key");
                    key
                }
            }
        } else {
            key
        };
        let record = key
            .into_record()
            .ok_or_else(|| Error::Decode("the new key reads as deleted".into()))?;
        Ok(CreatedKey { record, value })
    }

    /// `None` for a key that does not exist, was revoked, or was purged.
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        match self.key_segments(id) {
            Ok(_) => Ok(self.wire_key(id).await?.and_then(WireKey::into_record)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Pages through `GET .../keys?showDeleted=true` so that disabled (soft-deleted, marked) keys are
    /// listed too; revoked ones are left out.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let mut keys = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.keys_url()?;
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("pageSize", &PAGE_SIZE.to_string())
                    .append_pair("showDeleted", "true");
                if let Some(token) = &page_token {
                    query.append_pair("pageToken", token);
                }
            }
            let page: KeyList = self.get(url).await?.json()?;
            for key in page.keys {
                if seen.insert(key.name.clone())
                    && let Some(record) = key.into_record()
                {
                    keys.push(record);
                }
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page_token = Some(token),
                None => return Ok(keys),
            }
        }
        Err(Error::Decode(format!(
            "key listing did not end after {MAX_PAGES} pages"
        )))
    }

    /// Renames, disables or enables the key, and on a key keysmith minted puts back the model-API
    /// restriction if someone changed it. Annotations and restrictions keysmith does not manage (all
    /// of an imported key's) are kept.
    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord> {
        let key = self
            .wire_key(id)
            .await?
            .filter(|key| !key.is_revoked())
            .ok_or_else(|| Error::NotFound {
                message: "no such API key (or it was deleted)".into(),
            })?;
        self.converge(key, settings)
            .await?
            .into_record()
            .ok_or_else(|| Error::Decode("the updated key reads as deleted".into()))
    }

    /// A soft delete without keysmith's marker. A disabled key carries the marker and the API cannot
    /// patch a deleted key, so it is undeleted, unmarked and deleted again.
    async fn delete_key(&self, id: &str) -> Result<()> {
        if self.key_segments(id).is_err() {
            return Ok(());
        }
        let Some(mut key) = self.wire_key(id).await? else {
            return Ok(());
        };
        if key.is_revoked() {
            return Ok(());
        }
        if key.is_deleted() {
            key = self.undelete(&key).await?;
        }
        if key.is_marked_disabled() {
            let mut unmarked = key.clone();
            unmarked.annotations.remove(wire::DISABLED_ANNOTATION);
            key = self.patch(&key, &unmarked).await?;
        }
        match self.soft_delete(&key).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Calls `GET {inference}/models` with the key in `x-goog-api-key`. Google answers an unknown or
    /// deleted key with 400 `API_KEY_INVALID`, read here as unauthorized.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        let mut url = endpoint::join(&self.inference, &["models"])?;
        url.query_pairs_mut().append_pair("pageSize", "1");
        let result = self
            .transport
            .send(Call::idempotent(error_message), |client| {
                client.get(url.clone()).header(API_KEY_HEADER, value.expose())
            })
            .await;
        match result {
            Ok(_) => Ok(ImportedKeyInfo::default()),
            Err(Error::Rejected { status: 400, message }) => Err(Error::Unauthorized { message }),
            Err(err) => Err(err),
        }
    }

    /// `GET v2/keys:lookupKey?keyString=…` names the key; `keyId`, when set, must name the same one
    /// (as a full resource name or its last part). Without a credential the key is only validated.
    async fn find_imported(&self, value: &SecretValue, key_id: Option<&str>) -> Result<Option<KeyRecord>> {
        if self.auth.is_none() {
            return Ok(None);
        }
        let mut url = self.url(&["v2", "keys:lookupKey"])?;
        url.query_pairs_mut().append_pair("keyString", value.expose());
        let found: LookupKey = self.get(url).await?.json()?;
        if found.name.is_empty() {
            return Err(Error::NotFound {
                message: "Google no longer holds the imported key (purged)".into(),
            });
        }
        if let Some(wanted) = key_id
            && wanted != found.name
            && !found.name.ends_with(&format!("/keys/{wanted}"))
        {
            return Err(Error::Rejected {
                status: 400,
                message: format!("spec.import.keyId {wanted:?} does not name the imported key"),
            });
        }
        self.get_key(&found.name)
            .await?
            .map(Some)
            .ok_or_else(|| Error::NotFound {
                message: "the imported key was deleted".into(),
            })
    }

    /// `getKeyString` may be called again at any time, so a key whose create answer was lost can be
    /// adopted rather than revoked.
    async fn reveal_key(&self, id: &str) -> Result<Option<SecretValue>> {
        if self.key_segments(id).is_err() {
            return Ok(None);
        }
        self.key_string(id).await
    }
}
