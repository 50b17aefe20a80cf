//! aiXplain's API-key endpoints (`providers.md` §4): keys are minted with a team (admin) API key,
//! carry a budget, global and per-model rpm/rpd/tpm/tpd limits and an expiry, all enforced by
//! aiXplain, are replaced whole by `PUT`, and report daily request and token counts.
//!
//! aiXplain publishes no REST reference; the calls follow its SDKs. Two gaps in what is known shape
//! this client: whether key reads show the full `accessKey` (a value read back is only trusted after
//! it authenticates), and names must be unique (`POST` answers 422 for a taken one).

mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::{Method, Url};

use self::wire::{Payload, UsageLimit, WireKey, error_message, mask, usage};
use super::{
    AccountInfo, CreatedKey, Error, ImportedKeyInfo, KeyRecord, KeySettings, KeyUsage, ProviderClient,
    Result, SecretValue, endpoint,
    http::{Call, Response, Transport},
};
use keysmith_api::{Capabilities, Enforcement};

/// aiXplain's public platform API (the SDK's `BACKEND_URL`).
pub const DEFAULT_ENDPOINT: &str = "https://platform-api.aixplain.com";

/// Where clients run models with a key (`POST {base}/execute/{model id}`).
pub const DEFAULT_INFERENCE_ENDPOINT: &str = "https://models.aixplain.com/api/v1";

/// A client for one aiXplain team, holding its team (admin) API key.
#[derive(Debug)]
pub struct AixplainClient {
    base: Url,
    team_key: SecretValue,
    transport: Transport,
    /// Model ids the catalog has confirmed. Models are not withdrawn often, and a key's limits are
    /// only written when they change, so one look per model and client is enough; an unknown model is
    /// looked up again on the next attempt, as it may have been added since.
    known_models: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl AixplainClient {
    /// A client for the API at `base_url` (e.g. [`DEFAULT_ENDPOINT`], or a simulator's root). Fails
    /// with [`Error::Config`] unless `base_url` is an absolute `http`/`https` URL without
    /// credentials, query or fragment.
    pub fn new(base_url: &str, team_key: SecretValue, transport: Transport) -> Result<Self> {
        Ok(Self {
            base: endpoint::parse(base_url, "the endpoint")?,
            team_key,
            transport,
            known_models: std::sync::Mutex::default(),
        })
    }

    fn is_known(&self, model: &str) -> bool {
        self.known_models
            .lock()
            .map(|known| known.contains(model))
            .unwrap_or(false)
    }

    /// `GET /sdk/models/{id}` for each model a limit names that is not known yet: aiXplain keys its
    /// per-model limits by catalog id, and a limit on a model it does not have would hold nothing. A
    /// path (`openai/gpt-4o-mini/openai`) is answered with the id the limit must use instead.
    async fn check_models(&self, settings: &KeySettings) -> Result<()> {
        let mut unknown = Vec::new();
        let mut paths = Vec::new();
        for (index, limit) in settings.model_limits.iter().enumerate() {
            let model = limit.model.as_str();
            if self.is_known(model) {
                continue;
            }
            let url = endpoint::join(&self.base, &["sdk", "models", model])?;
            match self.call(Method::GET, url, None).await {
                Ok(response) => {
                    let found: wire::CatalogModel = response.json()?;
                    if found.id == model {
                        if let Ok(mut known) = self.known_models.lock() {
                            known.insert(found.id);
                        }
                    } else {
                        paths.push(format!(
                            "modelLimits[{index}].model {model:?} is a model path; aiXplain's limits need its id {:?}",
                            found.id
                        ));
                    }
                }
                // A malformed id is refused as a bad request rather than not found.
                Err(Error::NotFound { .. } | Error::Rejected { status: 400, .. }) => {
                    unknown.push(format!("modelLimits[{index}].model {model:?}"));
                }
                Err(err) => return Err(err),
            }
        }
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            problems.push(format!(
                "{} not in aiXplain's model catalog (GET /sdk/models/{{id}} answers 404); use a model id from the catalog",
                unknown.join(", ")
            ));
        }
        problems.extend(paths);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::UnknownModel(problems.join("; ")))
        }
    }

    fn keys_url(&self, tail: &[&str]) -> Result<Url> {
        let mut segments = vec!["sdk", "api-keys"];
        segments.extend_from_slice(tail);
        endpoint::join(&self.base, &segments)
    }

    /// Sends a request with `credential` in `x-api-key` (the v2 SDK's header).
    async fn send(
        &self,
        call: Call,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        credential: &SecretValue,
    ) -> Result<Response> {
        self.transport
            .send(call, |client| {
                let request = client
                    .request(method.clone(), url.clone())
                    .header("x-api-key", credential.expose());
                match &body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }

    /// An idempotent call with the team key.
    async fn call(&self, method: Method, url: Url, body: Option<serde_json::Value>) -> Result<Response> {
        self.send(Call::idempotent(error_message), method, url, body, &self.team_key)
            .await
    }

    async fn list_wire(&self) -> Result<Vec<WireKey>> {
        self.call(Method::GET, self.keys_url(&[])?, None).await?.json()
    }

    /// Today's counts for key `id`; `None` when aiXplain has no such key.
    async fn key_usage(&self, id: &str) -> Result<Option<KeyUsage>> {
        match self
            .call(Method::GET, self.keys_url(&[id, "usage-limits"])?, None)
            .await
        {
            Ok(response) => Ok(Some(usage(response.json::<Vec<UsageLimit>>()?))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `usage-limits` of the key that authenticates the call: the one cheap call any key may make.
    async fn own_usage(&self, value: &SecretValue) -> Result<KeyUsage> {
        let url = self.keys_url(&["usage-limits"])?;
        let response = self
            .send(Call::idempotent(error_message), Method::GET, url, None, value)
            .await?;
        Ok(usage(response.json::<Vec<UsageLimit>>()?))
    }

    /// Whether `value` is a working key. A masked value read back as if it were whole fails here.
    async fn works(&self, value: &SecretValue) -> Result<bool> {
        match self.own_usage(value).await {
            Ok(_) => Ok(true),
            Err(Error::Unauthorized { .. } | Error::Forbidden { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The value of listed key `key`, if the listing showed it whole and it works.
    async fn readable_value(&self, key: &WireKey) -> Result<Option<SecretValue>> {
        let Some(value) = key.full_access_key().map(SecretValue::new) else {
            return Ok(None);
        };
        Ok(self.works(&value).await?.then_some(value))
    }

    /// A 422 on create: the name is taken. A key with exactly this name that carries keysmith's tag
    /// can only come from this very attempt (the tag's nonce is new for each one) whose answer was
    /// lost, e.g. a 5xx from a proxy after aiXplain had created the key and the transport retried.
    /// It is adopted when its value can be read back; otherwise the error says so, and the
    /// controller's crash recovery revokes it and issues another. Anything else is a plain conflict.
    async fn resolve_taken_name(&self, settings: &KeySettings, message: String) -> Result<CreatedKey> {
        let mut same: Vec<WireKey> = self
            .list_wire()
            .await?
            .into_iter()
            .filter(|key| key.name == settings.name)
            .collect();
        let tagged = crate::tag::name_tag(&settings.name).is_some();
        let conflict = |text: String| Error::Rejected {
            status: 422,
            message: text,
        };
        if same.is_empty() {
            return Err(conflict(format!(
                "aiXplain refused the key name {:?} ({message})",
                settings.name
            )));
        }
        if same.len() > 1 || !tagged {
            let ids: Vec<&str> = same.iter().map(|key| key.id.as_str()).collect();
            return Err(conflict(format!(
                "aiXplain already has a key named {:?} (id {}) that keysmith did not make; \
                 rename or delete it, or change spec.displayName",
                settings.name,
                ids.join(", ")
            )));
        }
        let key = same.remove(0);
        let Some(value) = self.readable_value(&key).await? else {
            return Err(conflict(format!(
                "aiXplain already holds key {} named {:?} from an earlier attempt whose answer was lost; \
                 its value cannot be read back, so it will be revoked and another key issued",
                key.id, settings.name
            )));
        };
        let mut record = key.into_record();
        record.usage = self.key_usage(&record.id).await?.unwrap_or_default();
        Ok(CreatedKey { record, value })
    }
}

/// What aiXplain cannot hold is refused rather than silently dropped (DESIGN §2.5): the key would
/// otherwise look configured while nothing enforces the setting.
fn check_supported(settings: &KeySettings) -> Result<()> {
    if settings.disabled {
        return Err(Error::Unsupported(
            "disabling a key (aiXplain keys have no disabled state; delete the ApiKey or set spec.expiresAt)",
        ));
    }
    if settings.limit_usd.is_some() && settings.limit_reset.is_some() {
        return Err(Error::Unsupported(
            "a budget that resets (an aiXplain budget is a lifetime cap; use reset: Never)",
        ));
    }
    if settings.include_byok {
        return Err(Error::Unsupported(
            "budget.includeByok (aiXplain has no bring-your-own-key spend)",
        ));
    }
    // A rate over a minute or a day arrives folded into `limits` and goes out as `rpm`/`rpd`.
    if settings.other_rate_limit.is_some() {
        return Err(Error::Unsupported(
            "a rateLimit whose intervalSeconds is neither 60 nor 86400 (aiXplain holds requests per minute and per day)",
        ));
    }
    Ok(())
}

#[async_trait]
impl ProviderClient for AixplainClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // `budget` on the key, a lifetime cap aiXplain enforces (resetting budgets are refused).
            budget: Enforcement::Provider,
            // `globalLimits` rpm/rpd/tpm/tpd on the key: `spec.limits`, and `spec.rateLimit` over a
            // minute or a day, which `plan::desired_settings` folds into rpm or rpd (other intervals
            // are refused, see `check_supported`).
            rate_limits: Enforcement::Provider,
            // `assetsLimits`: rpm/rpd/tpm/tpd per model id.
            model_limits: Enforcement::Provider,
            // No per-request caps at aiXplain: published for clients only.
            request_limits: Enforcement::Advisory,
            // `expiresAt`, changed in place by `PUT`.
            expiry: Enforcement::Provider,
            // No disabled state on a key, but keys can be deleted: keysmith stops a key by revoking
            // it and issues a new one when it may work again (the client itself refuses `disabled`,
            // see `check_supported`).
            disable: Enforcement::Operator,
            // `name` in `PUT`.
            rename: Enforcement::Provider,
            // `usage-limits`: today's requests and tokens, overall and per model (no spend).
            usage: Enforcement::Provider,
            // `POST /sdk/api-keys` with a team key.
            provisioning: Enforcement::Provider,
            // No rotate endpoint: keysmith mints a successor and revokes the old key after the overlap.
            rotation: Enforcement::Operator,
        }
    }

    /// `PUT` sends `expiresAt` with everything else.
    fn expiry_in_place(&self) -> bool {
        true
    }

    /// Listing keys needs a team key, so it proves the credential can manage keys. aiXplain reports
    /// no account figures through this API.
    async fn verify(&self) -> Result<AccountInfo> {
        self.list_wire().await?;
        Ok(AccountInfo::default())
    }

    /// `POST /sdk/api-keys`, sent once: retried only after a 429 or 5xx answer, never after a
    /// connection failure that may have followed a successful create. A 422 (name taken) is resolved
    /// as described at `resolve_taken_name`.
    async fn create_key(&self, settings: &KeySettings) -> Result<CreatedKey> {
        check_supported(settings)?;
        self.check_models(settings).await?;
        let body = super::http::to_json(Payload::new(settings, None))?;
        let response = self
            .send(
                Call::non_idempotent(error_message),
                Method::POST,
                self.keys_url(&[])?,
                Some(body),
                &self.team_key,
            )
            .await;
        let created: WireKey = match response {
            Ok(response) => response.json()?,
            Err(Error::Rejected { status: 422, message }) => {
                return self.resolve_taken_name(settings, message).await;
            }
            Err(err) => return Err(err),
        };
        let Some(value) = created.access_key.clone().filter(|value| !value.is_empty()) else {
            return Err(Error::Decode("the create response holds no key value".into()));
        };
        Ok(CreatedKey {
            record: created.into_record(),
            value: SecretValue::new(value),
        })
    }

    /// `GET /sdk/api-keys/{id}`, then its `usage-limits`.
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let mut record = match self.call(Method::GET, self.keys_url(&[id])?, None).await {
            Ok(response) => response.json::<WireKey>()?.into_record(),
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        match self.key_usage(id).await? {
            Some(usage) => record.usage = usage,
            // Deleted between the two calls.
            None => return Ok(None),
        }
        Ok(Some(record))
    }

    /// The whole list in one response (aiXplain does not paginate it). Team (admin) keys are left
    /// out: they are the credentials that manage the team, never keys keysmith issues, and nothing
    /// should ever revoke one by mistake. Usage is left empty: it takes one call per key.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        Ok(self
            .list_wire()
            .await?
            .into_iter()
            .filter(|key| !key.is_admin())
            .map(WireKey::into_record)
            .collect())
    }

    /// `PUT` with the whole key (absolute values, so repeating it is harmless), then `usage-limits`.
    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord> {
        check_supported(settings)?;
        self.check_models(settings).await?;
        let body = super::http::to_json(Payload::new(settings, Some(id)))?;
        let response = self.call(Method::PUT, self.keys_url(&[id])?, Some(body)).await?;
        let mut record = response.json::<WireKey>()?.into_record();
        record.usage = self.key_usage(id).await?.unwrap_or_default();
        Ok(record)
    }

    async fn delete_key(&self, id: &str) -> Result<()> {
        match self.call(Method::DELETE, self.keys_url(&[id])?, None).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// `GET /sdk/api-keys/usage-limits` with the imported key itself: it must authenticate, and
    /// today's counts come back.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        let usage = self.own_usage(value).await?;
        Ok(ImportedKeyInfo {
            label: mask(value.expose()),
            usage,
            limit_usd: None,
        })
    }

    /// The value of key `id` when aiXplain's listing shows it whole and it authenticates; `None` when
    /// the listing masks it (the value was then shown only at creation).
    async fn reveal_key(&self, id: &str) -> Result<Option<SecretValue>> {
        let listed = self.list_wire().await?;
        match listed.iter().find(|key| key.id == id) {
            Some(key) => self.readable_value(key).await,
            None => Ok(None),
        }
    }
}
