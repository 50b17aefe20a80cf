//! OpenAI's Administration API (`providers.md` §2). A key keysmith mints is the key of a project
//! service account: creating the service account (named with keysmith's tag) reveals its key once,
//! and deleting the service account revokes it. The service account id (`svc_acct_...`) is the
//! key's id in keysmith. Usage and spend per key come from the usage and costs APIs grouped by
//! `api_key_id` (`key_...`), the id of the service account's key. The hub's project-wide rate limits
//! and spend limit are applied by [`ProviderClient::verify`] (see `hub.rs`).
//!
//! Calls per operation, to stay gentle with the Administration API: `get_key` reads the service
//! account, then one costs report (daily buckets since the key's creation, 180 to a page) and one
//! completions report (today). The id of a service account's key is learnt when keysmith creates it,
//! or after a restart from one listing of the project's keys that serves every service account.
//! `list_keys` reads names only (no usage). `verify` reads the project, and the rate limits and
//! spend limit only when the hub sets them; it writes only what differs. Usage windows are UTC days,
//! weeks and months of the operator's real time.

mod hub;
mod records;
mod send;
mod usage;
mod wire;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tracing::warn;

use self::{
    records::{account_only_record, is_project_key_id, mask_matches},
    send::send,
    usage::{Windows, add_completions, add_costs, day_start},
    wire::{
        Bucket, CreateServiceAccount, CreatedServiceAccount, List, Page, ProjectApiKey, RenameServiceAccount,
        ServiceAccount, error_message, unix,
    },
};
use super::{
    AccountInfo, CreatedKey, Error, ImportedKeyInfo, KeyRecord, KeySettings, KeyUsage, ProviderClient,
    Result, SecretValue, endpoint,
    http::{Call, Response, Transport},
};
use keysmith_api::{Capabilities, Enforcement, OpenAiHub};
use keysmith_core::clock::Clock;

/// OpenAI's public Administration API.
pub const DEFAULT_ENDPOINT: &str = "https://api.openai.com/v1";

/// Where clients call OpenAI with a key (the same base as administration).
pub const DEFAULT_INFERENCE_ENDPOINT: &str = "https://api.openai.com/v1";

/// Objects per page of a cursor-paginated list (the documented maximum).
const LIST_LIMIT: &str = "100";

/// Daily cost buckets per page (the documented maximum).
const COST_BUCKETS_PER_PAGE: &str = "180";

/// Pages read before a listing gives up: far beyond any real project, so more means the provider's
/// cursor does not move and listing would never end.
const MAX_PAGES: usize = 1000;

/// The key of one service account, as the project-key endpoints report it.
#[derive(Clone, Debug)]
struct KeyRef {
    key_id: String,
    label: Option<String>,
}

/// A client for one OpenAI project, holding an organisation admin key.
#[derive(Debug)]
pub struct OpenAiClient {
    base: Url,
    inference: Url,
    admin_key: SecretValue,
    /// The hub's `spec.openai`; without it only imported keys can be validated.
    hub: Option<OpenAiHub>,
    transport: Transport,
    /// Service account id → its key. A service account's key never changes, and the service account
    /// object does not name it, so each is looked up once (by listing the project's keys) and kept.
    key_refs: Mutex<HashMap<String, KeyRef>>,
    /// "Now" for the usage windows (day, week, month): keysmith's clock, so that tests moving it
    /// across a window boundary move the reports asked for too.
    clock: Clock,
}

impl OpenAiClient {
    /// A client for the API at `base_url` (e.g. [`DEFAULT_ENDPOINT`] or a simulator's
    /// `http://127.0.0.1:PORT/v1`) that validates imported keys at `inference_url`. Fails with
    /// [`Error::Config`] unless both are absolute `http`/`https` URLs without credentials, query or
    /// fragment.
    pub fn new(
        base_url: &str,
        inference_url: &str,
        admin_key: SecretValue,
        hub: Option<OpenAiHub>,
        transport: Transport,
    ) -> Result<Self> {
        Ok(Self {
            base: endpoint::parse(base_url, "the endpoint")?,
            inference: endpoint::parse(inference_url, "the inference endpoint")?,
            admin_key,
            hub,
            transport,
            key_refs: Mutex::new(HashMap::new()),
            clock: Clock::new(),
        })
    }

    /// The same client, taking "now" for usage windows from `clock` instead of real time.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// `spec.openai.projectId`, which every management call needs.
    fn project(&self) -> Result<&str> {
        self.hub
            .as_ref()
            .map(|hub| hub.project_id.as_str())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Config("spec.openai.projectId is required to manage OpenAI keys".into()))
    }

    /// `/organization/projects/{project}/` followed by `segments`, each percent-encoded so that an
    /// identifier can never escape its path segment.
    fn project_url(&self, segments: &[&str]) -> Result<Url> {
        let project = self.project()?;
        let mut all = vec!["organization", "projects", project];
        all.extend_from_slice(segments);
        endpoint::join(&self.base, &all)
    }

    /// An idempotent call authenticated with the admin key.
    async fn call(&self, method: Method, url: Url, body: Option<serde_json::Value>) -> Result<Response> {
        send(
            &self.transport,
            Call::idempotent(error_message),
            method,
            url,
            body,
            &self.admin_key,
        )
        .await
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        self.call(Method::GET, url, None).await?.json()
    }

    /// Visits every object of a cursor-paginated project list (`limit`/`after`, `has_more`,
    /// `last_id`). Once `visit` returns false the page in hand is finished (it costs nothing more)
    /// and no further page is read.
    async fn list_all<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        mut visit: impl FnMut(T) -> bool,
    ) -> Result<()> {
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.project_url(segments)?;
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", LIST_LIMIT);
                if let Some(after) = &after {
                    query.append_pair("after", after);
                }
            }
            let page: List<T> = self.get_json(url).await?;
            let empty = page.data.is_empty();
            let mut more = true;
            for item in page.data {
                let wanted = visit(item);
                more = more && wanted;
            }
            if !more || !page.has_more {
                return Ok(());
            }
            match page.last_id {
                Some(last) if !empty && after.as_ref() != Some(&last) => after = Some(last),
                _ => return Err(Error::Decode("a list said has_more without a new last_id".into())),
            }
        }
        Err(Error::Decode(format!(
            "a list did not end after {MAX_PAGES} pages"
        )))
    }

    /// Every bucket of a usage or costs report, following `next_page`.
    async fn report<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<Vec<Bucket<T>>> {
        let mut buckets = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = endpoint::join(&self.base, path)?;
            {
                let mut pairs = url.query_pairs_mut();
                for (name, value) in query {
                    pairs.append_pair(name, value);
                }
                if let Some(page) = &page {
                    pairs.append_pair("page", page);
                }
            }
            let answer: Page<T> = self.get_json(url).await?;
            buckets.extend(answer.data);
            if !answer.has_more {
                return Ok(buckets);
            }
            match answer.next_page {
                Some(next) if page.as_ref() != Some(&next) => page = Some(next),
                _ => {
                    return Err(Error::Decode(
                        "a report said has_more without a new next_page".into(),
                    ));
                }
            }
        }
        Err(Error::Decode(format!(
            "a report did not end after {MAX_PAGES} pages"
        )))
    }

    /// Spend of key `key_id` from its creation day (all-time, month, week, day), and today's requests
    /// and tokens: one costs report and one completions report, each usually a single page.
    async fn usage(&self, key_id: &str, created_at: Option<Timestamp>) -> Result<KeyUsage> {
        let now = self.clock.now();
        let windows = Windows::at(now);
        let earliest = windows.week.min(windows.month);
        // Without a creation time only the current windows are read, and the all-time total is unknown.
        let since = created_at.map_or(earliest, |created| day_start(created).min(windows.day));
        let project = self.project()?.to_owned();
        let filters = |group_by: &[&str]| {
            let mut query = vec![
                ("bucket_width", "1d".to_owned()),
                ("api_key_ids", key_id.to_owned()),
                ("project_ids", project.clone()),
            ];
            query.extend(group_by.iter().map(|g| ("group_by", (*g).to_owned())));
            query
        };

        let mut costs_query = filters(&["api_key_id"]);
        costs_query.push(("start_time", since.as_second().to_string()));
        costs_query.push(("limit", COST_BUCKETS_PER_PAGE.to_owned()));
        let costs = self.report(&["organization", "costs"], &costs_query).await?;

        let mut completions_query = filters(&["api_key_id", "model"]);
        completions_query.push(("start_time", windows.day.as_second().to_string()));
        completions_query.push(("limit", "1".to_owned()));
        let completions = self
            .report(&["organization", "usage", "completions"], &completions_query)
            .await?;

        let mut usage = KeyUsage::default();
        add_costs(&mut usage, &costs, key_id, windows);
        add_completions(&mut usage, &completions, key_id, windows.day);
        if created_at.is_none() {
            usage.total_usd = None;
        }
        Ok(usage)
    }

    fn remembered(&self, account_id: &str) -> Option<KeyRef> {
        self.refs().get(account_id).cloned()
    }

    fn remember(&self, account_id: &str, key: KeyRef) {
        self.refs().insert(account_id.to_owned(), key);
    }

    fn forget(&self, account_id: &str) {
        self.refs().remove(account_id);
    }

    fn refs(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyRef>> {
        // Entries are inserted whole, so a poisoned map is still consistent.
        self.key_refs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key of service account `account_id`. Unknown ones are found by listing the project's keys,
    /// remembering every service-account key seen on the way (one listing serves many accounts).
    async fn key_of(&self, account_id: &str) -> Result<Option<KeyRef>> {
        if let Some(key) = self.remembered(account_id) {
            return Ok(Some(key));
        }
        let mut found = None;
        let mut seen = Vec::new();
        self.list_all(&["api_keys"], |key: ProjectApiKey| {
            let Some(owner) = key.service_account_id() else {
                return true;
            };
            let key_ref = KeyRef {
                key_id: key.id.clone(),
                label: key.redacted_value.clone(),
            };
            if owner == account_id {
                found = Some(key_ref.clone());
            }
            seen.push((owner.to_owned(), key_ref));
            found.is_none()
        })
        .await?;
        for (owner, key) in seen {
            self.remember(&owner, key);
        }
        Ok(found)
    }

    /// The record of a service account with its key's label and usage.
    async fn account_record(&self, account: ServiceAccount) -> Result<KeyRecord> {
        let key = self.key_of(&account.id).await?;
        let usage = match &key {
            Some(key) => self.usage(&key.key_id, unix(account.created_at)).await?,
            // A service account made with `create_service_account_only` has no key to report on.
            None => KeyUsage::default(),
        };
        Ok(account_only_record(account, key.and_then(|k| k.label), usage))
    }

    /// The record of a project key itself (`key_...`), as for an imported key: OpenAI holds its name
    /// and nothing else keysmith manages.
    async fn project_key_record(&self, key: ProjectApiKey) -> Result<KeyRecord> {
        let usage = self.usage(&key.id, unix(key.created_at)).await?;
        Ok(KeyRecord {
            settings: KeySettings {
                name: key.name.clone(),
                ..Default::default()
            },
            id: key.id,
            name: key.name,
            label: key.redacted_value,
            usage,
        })
    }

    async fn get_project_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        match self
            .get_json::<ProjectApiKey>(self.project_url(&["api_keys", id])?)
            .await
        {
            Ok(key) => Ok(Some(self.project_key_record(key).await?)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl ProviderClient for OpenAiClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // OpenAI has no budget per key (only the project's spend limit, applied from the hub). The
            // costs API reports spend per key, so keysmith can watch it and act on the key itself.
            budget: Enforcement::Operator,
            // Rate limits exist per project and model, not per key: a key's own limits can only be
            // published for clients. Project-wide limits belong in the hub's `spec.openai.rateLimits`.
            rate_limits: Enforcement::Advisory,
            // Same: per-model limits are project-wide at OpenAI.
            model_limits: Enforcement::Advisory,
            // Per-request token caps are a client-side `max_tokens` matter at OpenAI.
            request_limits: Enforcement::Advisory,
            // Service-account keys carry no expiry: only keysmith revoking the key at `expiresAt` can
            // end it.
            expiry: Enforcement::Operator,
            // Neither service accounts nor project keys can be disabled (no such field or endpoint):
            // the only way to stop a key is to delete its service account. keysmith can therefore
            // stop a key only by revoking it, and a re-enabled key is a new key with a new value.
            disable: Enforcement::Operator,
            // `POST .../service_accounts/{id}` takes a new `name`.
            rename: Enforcement::Provider,
            // Usage and costs reports grouped by `api_key_id`.
            usage: Enforcement::Provider,
            // Creating a service account mints its key.
            provisioning: Enforcement::Provider,
            // No rotate endpoint: keysmith mints a successor and revokes the old key after the overlap.
            rotation: Enforcement::Operator,
        }
    }

    /// Reads the project with the admin key (which also proves it is one: project keys are refused on
    /// `/organization/*`), then applies the hub's rate limits and spend limit where OpenAI holds
    /// something else.
    async fn verify(&self) -> Result<AccountInfo> {
        hub::verify(self).await
    }

    /// `POST .../service_accounts` is sent once: it is retried only after a 429 or 5xx answer, never
    /// after a connection failure that may have followed a successful create (the controller's crash
    /// recovery finds such service accounts by their tagged name). The masked value is then read from
    /// the project key; failing that read only leaves the label out, since the value cannot be
    /// fetched again.
    async fn create_key(&self, settings: &KeySettings) -> Result<CreatedKey> {
        let url = self.project_url(&["service_accounts"])?;
        let body = super::http::to_json(CreateServiceAccount { name: &settings.name })?;
        let response = send(
            &self.transport,
            Call::non_idempotent(error_message),
            Method::POST,
            url,
            Some(body),
            &self.admin_key,
        )
        .await?;
        let created: CreatedServiceAccount = response.json()?;
        let Some(key) = created.api_key.filter(|key| !key.value.is_empty()) else {
            return Err(Error::Decode("the create response holds no API key".into()));
        };
        let value = SecretValue::new(key.value);
        let label = match self
            .get_json::<ProjectApiKey>(self.project_url(&["api_keys", &key.id])?)
            .await
        {
            Ok(project_key) => project_key.redacted_value,
            Err(err) => {
                warn!(key_id = %key.id, error = %err, "could not read the masked form of a new key");
                None
            }
        };
        self.remember(
            &created.id,
            KeyRef {
                key_id: key.id,
                label: label.clone(),
            },
        );
        let account = ServiceAccount {
            id: created.id,
            name: created.name,
            created_at: created.created_at,
        };
        Ok(CreatedKey {
            record: account_only_record(account, label, KeyUsage::default()),
            value,
        })
    }

    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        if is_project_key_id(id) {
            return self.get_project_key(id).await;
        }
        match self
            .get_json::<ServiceAccount>(self.project_url(&["service_accounts", id])?)
            .await
        {
            Ok(account) => Ok(Some(self.account_record(account).await?)),
            Err(Error::NotFound { .. }) => {
                self.forget(id);
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The project's service accounts, every page. Usage is left out: it takes two reports per key,
    /// and listings serve crash recovery and counting, which need names only.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let mut accounts: Vec<ServiceAccount> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.list_all(&["service_accounts"], |account: ServiceAccount| {
            if seen.insert(account.id.clone()) {
                accounts.push(account);
            }
            true
        })
        .await?;
        Ok(accounts
            .into_iter()
            .map(|account| {
                let label = self.remembered(&account.id).and_then(|key| key.label);
                account_only_record(account, label, KeyUsage::default())
            })
            .collect())
    }

    /// Renames the service account (its name is all OpenAI holds) and reads the usage again, so the
    /// returned record is as complete as `get_key`'s.
    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord> {
        if is_project_key_id(id) {
            return Err(Error::Unsupported(
                "changing an OpenAI project key that keysmith did not mint",
            ));
        }
        let body = super::http::to_json(RenameServiceAccount { name: &settings.name })?;
        let url = self.project_url(&["service_accounts", id])?;
        let account: ServiceAccount = self.call(Method::POST, url, Some(body)).await?.json()?;
        self.account_record(account).await
    }

    /// Deletes the service account, which revokes its key. A project key (`key_...`, an import) is
    /// deleted directly when a user owns it; OpenAI refuses (400) to delete a service account's key
    /// on its own, and deleting a service account keysmith did not make is not its call, so that
    /// case is [`Error::Unsupported`].
    async fn delete_key(&self, id: &str) -> Result<()> {
        if is_project_key_id(id) {
            let url = self.project_url(&["api_keys", id])?;
            match self.get_json::<ProjectApiKey>(url.clone()).await {
                Ok(key) if key.service_account_id().is_some() => {
                    return Err(Error::Unsupported(
                        "revoking a service account's key on its own (delete the service account instead)",
                    ));
                }
                Ok(_) => {}
                Err(Error::NotFound { .. }) => return Ok(()),
                Err(err) => return Err(err),
            }
            return match self.call(Method::DELETE, url, None).await {
                Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(err),
            };
        }
        let url = self.project_url(&["service_accounts", id])?;
        match self.call(Method::DELETE, url, None).await {
            Ok(_) | Err(Error::NotFound { .. }) => {
                self.forget(id);
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// `GET /models` at the inference endpoint with the key itself. An admin key is refused without a
    /// call: it cannot call models, so a workload given one would fail.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        if value.expose().starts_with("sk-admin-") {
            return Err(Error::Forbidden {
                message: "the imported key is an admin key, which cannot call models".into(),
            });
        }
        let url = endpoint::join(&self.inference, &["models"])?;
        send(
            &self.transport,
            Call::idempotent(error_message),
            Method::GET,
            url,
            None,
            value,
        )
        .await?;
        Ok(ImportedKeyInfo::default())
    }

    /// The project key's record, by `import.keyId` (`key_...`) or else by the one project key whose
    /// masked value fits the imported value. `Ok(None)` when the hub names no project or has no admin
    /// key, or when the mask fits no key or several.
    async fn find_imported(&self, value: &SecretValue, key_id: Option<&str>) -> Result<Option<KeyRecord>> {
        if self.project().is_err() || self.admin_key.expose().is_empty() {
            return Ok(None);
        }
        if let Some(id) = key_id {
            return match self.get_project_key(id).await? {
                Some(record) => Ok(Some(record)),
                None => Err(Error::NotFound {
                    message: format!("the project has no API key {id:?}"),
                }),
            };
        }
        let mut matches: Vec<ProjectApiKey> = Vec::new();
        self.list_all(&["api_keys"], |key: ProjectApiKey| {
            if key
                .redacted_value
                .as_deref()
                .is_some_and(|masked| mask_matches(masked, value.expose()))
            {
                matches.push(key);
            }
            // Two matches already make the hint ambiguous.
            matches.len() < 2
        })
        .await?;
        match (matches.pop(), matches.is_empty()) {
            (Some(key), true) => Ok(Some(self.project_key_record(key).await?)),
            _ => Ok(None),
        }
    }
}
