//! Anthropic's Admin API (`providers.md` §5). Keys are made in the Anthropic Console and can be
//! neither created nor deleted through the API, so keysmith only imports them: it links each to its
//! record (`import.keyId`, or the masked hint), renames it, switches it between `active` and
//! `inactive`, and reads its tokens and spend from the usage and cost reports.

mod spend;
mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use self::wire::{CostRow, Page, Report, UpdateRequest, UsageRow, WireKey, error_message, hint_of};
use super::{
    AccountInfo, CreatedKey, Error, ImportedKeyInfo, KeyRecord, KeySettings, KeyUsage, ProviderClient,
    Result, SecretValue, endpoint,
    http::{Call, Response, Transport},
};
use keysmith_api::{Capabilities, Enforcement};
use keysmith_core::clock::Clock;

/// Anthropic's API, for the Admin API and the models alike.
pub const DEFAULT_ENDPOINT: &str = "https://api.anthropic.com";

/// Where clients call Claude with a key (the SDKs' base URL).
pub const DEFAULT_INFERENCE_ENDPOINT: &str = "https://api.anthropic.com";

/// The API version every request names.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Keys per list page: the largest `limit` Anthropic accepts.
const PAGE_LIMIT: usize = 1000;

/// Daily buckets per report page: the largest `limit` for `1d` buckets.
const REPORT_LIMIT: usize = 31;

/// Pages read before a listing gives up, so a provider that never stops saying `has_more` cannot
/// keep a worker forever.
const MAX_PAGES: usize = 1000;

/// A client for one Anthropic organisation, holding its admin key.
#[derive(Debug)]
pub struct AnthropicClient {
    base: Url,
    inference: Url,
    admin_key: SecretValue,
    workspace_id: Option<String>,
    transport: Transport,
    /// "Now" for the usage and cost windows: keysmith's clock, so that tests moving it across a
    /// window boundary move the reports asked for too.
    clock: Clock,
}

impl AnthropicClient {
    /// A client for the Admin API at `base_url` that checks imported keys against the models
    /// endpoint under `inference_url`, limited to `workspace_id` when set. Fails with
    /// [`Error::Config`] unless both are absolute `http`/`https` URLs without credentials, query or
    /// fragment.
    pub fn new(
        base_url: &str,
        inference_url: &str,
        admin_key: SecretValue,
        workspace_id: Option<String>,
        transport: Transport,
    ) -> Result<Self> {
        Ok(Self {
            base: endpoint::parse(base_url, "the endpoint")?,
            inference: endpoint::parse(inference_url, "the inference endpoint")?,
            admin_key,
            workspace_id: workspace_id.filter(|id| !id.trim().is_empty()),
            transport,
            clock: Clock::new(),
        })
    }

    /// The same client, taking "now" for the usage and cost windows from `clock` instead of real time.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn admin_url(&self, tail: &[&str]) -> Result<Url> {
        let mut segments = vec!["v1", "organizations"];
        segments.extend_from_slice(tail);
        endpoint::join(&self.base, &segments)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        key: &SecretValue,
    ) -> Result<Response> {
        self.transport
            .send(Call::idempotent(error_message), |client| {
                let request = client
                    .request(method.clone(), url.clone())
                    .header("x-api-key", key.expose())
                    .header("anthropic-version", ANTHROPIC_VERSION);
                match &body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        self.send(Method::GET, url, None, &self.admin_key).await?.json()
    }

    async fn wire_key(&self, id: &str) -> Result<Option<WireKey>> {
        match self.get(self.admin_url(&["api_keys", id])?).await {
            Ok(key) => Ok(Some(key)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Every key (of the hub's workspace, when it names one), following `after_id`.
    async fn list_wire(&self) -> Result<Vec<WireKey>> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.admin_url(&["api_keys"])?;
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", &PAGE_LIMIT.to_string());
                if let Some(ws) = &self.workspace_id {
                    query.append_pair("workspace_id", ws);
                }
                if let Some(after) = &after {
                    query.append_pair("after_id", after);
                }
            }
            let page: Page<WireKey> = self.get(url).await?;
            keys.extend(page.data);
            match page.last_id {
                Some(last) if page.has_more => after = Some(last),
                _ => return Ok(keys),
            }
        }
        Err(Error::Decode(format!(
            "key listing did not end after {MAX_PAGES} pages"
        )))
    }

    /// Every bucket of a report from `starting_at`, following `next_page`. `extra` holds the
    /// report's own parameters (`group_by[]`, filters).
    async fn report<T: DeserializeOwned>(
        &self,
        path: &str,
        starting_at: jiff::Timestamp,
        extra: &[(&str, &str)],
    ) -> Result<Vec<wire::Bucket<T>>> {
        let mut buckets = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.admin_url(&path.split('/').collect::<Vec<_>>())?;
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("starting_at", &starting_at.to_string())
                    .append_pair("bucket_width", "1d")
                    .append_pair("limit", &REPORT_LIMIT.to_string());
                for (name, value) in extra {
                    query.append_pair(name, value);
                }
                if let Some(page) = &page {
                    query.append_pair("page", page);
                }
            }
            let report: Report<T> = self.get(url).await?;
            buckets.extend(report.data);
            match report.next_page {
                Some(next) if report.has_more => page = Some(next),
                _ => return Ok(buckets),
            }
        }
        Err(Error::Decode(format!(
            "report did not end after {MAX_PAGES} pages"
        )))
    }

    /// The key's tokens and spend from the usage and cost reports (see `spend.rs`).
    async fn usage_of(&self, key: &WireKey) -> Result<KeyUsage> {
        let now = self.clock.now();
        let start = spend::window_start(now);
        let mut filters = vec![
            ("group_by[]", "api_key_id"),
            ("group_by[]", "workspace_id"),
            ("group_by[]", "model"),
        ];
        // The default workspace has no id to filter on; its rows are picked out by `workspace_id: null`.
        if let Some(ws) = key.workspace() {
            filters.push(("workspace_ids[]", ws));
        }
        let usage: Vec<wire::Bucket<UsageRow>> =
            self.report("usage_report/messages", start, &filters).await?;
        let cost: Vec<wire::Bucket<CostRow>> = self
            .report(
                "cost_report",
                start,
                &[("group_by[]", "workspace_id"), ("group_by[]", "description")],
            )
            .await?;
        Ok(spend::key_usage(&key.id, key.workspace(), &usage, &cost, now))
    }

    async fn record_with_usage(&self, key: WireKey) -> Result<KeyRecord> {
        let usage = self.usage_of(&key).await?;
        let mut record = key.into_record();
        record.usage = usage;
        Ok(record)
    }

    /// Keys outside the hub's workspace are not this hub's to manage.
    fn check_workspace(&self, key: &WireKey) -> Result<()> {
        match &self.workspace_id {
            Some(ws) if key.workspace() != Some(ws.as_str()) => Err(Error::Rejected {
                status: 409,
                message: format!(
                    "API key {} belongs to workspace {}, not to the hub's spec.anthropic.workspaceId {ws}",
                    key.id,
                    key.workspace().unwrap_or("(default)")
                ),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl ProviderClient for AnthropicClient {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // No budget on a key: keysmith reads the key's spend from the cost report and sets the key
            // `inactive` once it reaches the budget, `active` again when the window resets.
            budget: Enforcement::Operator,
            // Rate limits are per organisation or workspace, never per key.
            rate_limits: Enforcement::Advisory,
            model_limits: Enforcement::Advisory,
            request_limits: Enforcement::Advisory,
            // `expires_at` is set in the Console only; keysmith sets the key `inactive` at spec.expiresAt.
            expiry: Enforcement::Operator,
            // `status: inactive`.
            disable: Enforcement::Provider,
            // `name`.
            rename: Enforcement::Provider,
            // Usage report grouped by `api_key_id`; cost report by workspace (see `spend.rs`).
            usage: Enforcement::Provider,
            // Keys are made in the Console only.
            provisioning: Enforcement::Unsupported,
            // Neither a second key nor a new value can be had through the API.
            rotation: Enforcement::Unsupported,
        }
    }

    /// Lists one key to prove the admin key works, and checks that the hub's workspace exists.
    async fn verify(&self) -> Result<AccountInfo> {
        let mut url = self.admin_url(&["api_keys"])?;
        url.query_pairs_mut().append_pair("limit", "1");
        self.get::<Page<WireKey>>(url).await?;
        if let Some(ws) = &self.workspace_id {
            let found = self
                .get::<serde_json::Value>(self.admin_url(&["workspaces", ws])?)
                .await;
            match found {
                Ok(workspace) if workspace.get("archived_at").is_some_and(|a| !a.is_null()) => {
                    return Err(Error::Config(format!(
                        "spec.anthropic.workspaceId {ws} is archived"
                    )));
                }
                Ok(_) => {}
                Err(Error::NotFound { .. }) => {
                    return Err(Error::Config(format!(
                        "spec.anthropic.workspaceId {ws} does not exist in this organisation"
                    )));
                }
                Err(err) => return Err(err),
            }
        }
        Ok(AccountInfo::default())
    }

    async fn create_key(&self, _settings: &KeySettings) -> Result<CreatedKey> {
        Err(Error::Unsupported(
            "minting keys (Anthropic keys are made in the Console; import them with spec.import)",
        ))
    }

    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        match self.wire_key(id).await? {
            Some(key) => Ok(Some(self.record_with_usage(key).await?)),
            None => Ok(None),
        }
    }

    /// Every key, following `after_id`; usage is left empty (two reports per key).
    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        Ok(self
            .list_wire()
            .await?
            .into_iter()
            .map(WireKey::into_record)
            .collect())
    }

    /// `name` and `status` (`inactive` when disabled, else `active`). An archived or expired key
    /// cannot be switched on again, and Anthropic's refusal is passed on.
    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord> {
        let body = serde_json::to_value(UpdateRequest::new(settings))
            .map_err(|_| Error::Config("the request body could not be encoded".into()))?;
        let key: WireKey = self
            .send(
                Method::POST,
                self.admin_url(&["api_keys", id])?,
                Some(body),
                &self.admin_key,
            )
            .await?
            .json()?;
        self.record_with_usage(key).await
    }

    async fn delete_key(&self, _id: &str) -> Result<()> {
        Err(Error::Unsupported(
            "revoking keys (archive the key in the Anthropic Console)",
        ))
    }

    /// `GET /v1/models` with the key itself. An admin key is refused: it cannot call Claude. So is an
    /// `inactive` key: the controller does not validate a key whose record says it is switched off.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo> {
        if value.expose().starts_with("sk-ant-admin") {
            return Err(Error::Forbidden {
                message: "the imported key is an admin key, which cannot call Claude".into(),
            });
        }
        let mut url = endpoint::join(&self.inference, &["v1", "models"])?;
        url.query_pairs_mut().append_pair("limit", "1");
        let info = ImportedKeyInfo {
            label: hint_of(value.expose()),
            ..Default::default()
        };
        self.send(Method::GET, url, None, value).await?;
        Ok(info)
    }

    /// The record of an imported key: `key_id` when given (its hint must fit the value), else the one
    /// usable key whose hint fits. Without an admin credential nothing can be managed (`Ok(None)`).
    async fn find_imported(&self, value: &SecretValue, key_id: Option<&str>) -> Result<Option<KeyRecord>> {
        if self.admin_key.expose().is_empty() {
            return Ok(None);
        }
        let key = match key_id {
            Some(id) => {
                let key = self.wire_key(id).await?.ok_or_else(|| Error::NotFound {
                    message: format!("no API key {id} in this organisation (spec.import.keyId)"),
                })?;
                if key.partial_key_hint.is_some() && !key.hint_matches(value.expose()) {
                    return Err(Error::Rejected {
                        status: 409,
                        message: format!(
                            "API key {id} is not the key in the import Secret (its hint {} does not fit); \
                             fix spec.import.keyId",
                            key.partial_key_hint.as_deref().unwrap_or_default()
                        ),
                    });
                }
                if !key.is_usable() {
                    // Archived and expired keys are refused by Claude for good: say so, as a
                    // validation with the key itself would.
                    return Err(Error::Unauthorized {
                        message: format!(
                            "API key {id} is {}: Anthropic refuses it and it cannot be switched back on",
                            key.status()
                        ),
                    });
                }
                key
            }
            None => {
                let mut matches: Vec<WireKey> = self
                    .list_wire()
                    .await?
                    .into_iter()
                    .filter(|key| key.is_usable() && key.hint_matches(value.expose()))
                    .collect();
                match matches.len() {
                    1 => matches.remove(0),
                    0 => {
                        return Err(Error::NotFound {
                            message: format!(
                                "no active or inactive API key{} has a hint that fits the imported key; \
                                 set spec.import.keyId",
                                self.workspace_id
                                    .as_deref()
                                    .map(|ws| format!(" in workspace {ws}"))
                                    .unwrap_or_default()
                            ),
                        });
                    }
                    _ => {
                        let ids: Vec<&str> = matches.iter().map(|key| key.id.as_str()).collect();
                        return Err(Error::Rejected {
                            status: 409,
                            message: format!(
                                "{} API keys have a hint that fits the imported key ({}); set spec.import.keyId",
                                ids.len(),
                                ids.join(", ")
                            ),
                        });
                    }
                }
            }
        };
        self.check_workspace(&key)?;
        Ok(Some(self.record_with_usage(key).await?))
    }
}
