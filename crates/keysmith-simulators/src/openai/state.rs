//! The simulated OpenAI organisation: projects with their service accounts, project keys, rate-limit
//! rows and spend limit, and a usage ledger that the usage and costs reports bucket on demand.
//!
//! Key values are never kept: a caller is recognised by the SHA-256 of the key it presents, and
//! listings show only the masked `redacted_value`. Deleted objects stay in the state (marked) so that
//! tests can see what was revoked and cursors pointing at them still work.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::sha256_hex;

/// The project every simulator starts with.
pub const DEFAULT_PROJECT_ID: &str = "proj_default";

/// Model recorded for usage that does not name one.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// The rate-limit fields OpenAI documents, in its order. Only the first two apply to every model.
pub(super) const RATE_FIELDS: [&str; 6] = [
    "max_requests_per_1_minute",
    "max_tokens_per_1_minute",
    "max_images_per_1_minute",
    "max_audio_megabytes_per_1_minute",
    "max_requests_per_1_day",
    "batch_1_day_max_input_tokens",
];

/// How far above a model's starting limits the organisation's maximum lies: a project may not be
/// given more than its organisation has.
const ORG_MAXIMUM_FACTOR: u64 = 10;

/// The models of a new project and their starting limits (entry-tier figures, `providers.md` §2).
fn seeded_rate_limits() -> Vec<RateLimitRow> {
    let row = |model: &str, fields: &[(&'static str, u64)]| RateLimitRow {
        model: model.to_owned(),
        values: fields.iter().copied().collect(),
    };
    vec![
        row(
            "gpt-4o-mini",
            &[
                ("max_requests_per_1_minute", 500),
                ("max_tokens_per_1_minute", 200_000),
                ("max_requests_per_1_day", 10_000),
                ("batch_1_day_max_input_tokens", 2_000_000),
            ],
        ),
        row(
            "gpt-4o",
            &[
                ("max_requests_per_1_minute", 500),
                ("max_tokens_per_1_minute", 30_000),
                ("batch_1_day_max_input_tokens", 90_000),
            ],
        ),
        row(
            "text-embedding-3-small",
            &[
                ("max_requests_per_1_minute", 3_000),
                ("max_tokens_per_1_minute", 1_000_000),
                ("batch_1_day_max_input_tokens", 3_000_000),
            ],
        ),
        row(
            "dall-e-3",
            &[
                ("max_requests_per_1_minute", 500),
                ("max_tokens_per_1_minute", 0),
                ("max_images_per_1_minute", 5),
            ],
        ),
        row(
            "whisper-1",
            &[
                ("max_requests_per_1_minute", 500),
                ("max_tokens_per_1_minute", 0),
                ("max_audio_megabytes_per_1_minute", 50),
            ],
        ),
    ]
}

/// One model's limits in a project; a field that does not apply to the model is absent.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RateLimitRow {
    pub model: String,
    pub values: BTreeMap<&'static str, u64>,
}

impl RateLimitRow {
    pub fn id(&self) -> String {
        format!("rl-{}", self.model)
    }

    /// The organisation's maximum for `field` on this model.
    pub fn maximum(&self, field: &str) -> Option<u64> {
        let seeded = seeded_rate_limits();
        let start = seeded
            .iter()
            .find(|row| row.model == self.model)
            .and_then(|row| row.values.get(field).copied())?;
        Some(start.saturating_mul(ORG_MAXIMUM_FACTOR).max(ORG_MAXIMUM_FACTOR))
    }

    pub fn api_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("object".into(), json!("project.rate_limit"));
        object.insert("id".into(), json!(self.id()));
        object.insert("model".into(), json!(self.model));
        for (field, value) in &self.values {
            object.insert((*field).into(), json!(value));
        }
        Value::Object(object)
    }

    pub fn sim(&self) -> SimRateLimit {
        let get = |field: &str| self.values.get(field).copied();
        SimRateLimit {
            id: self.id(),
            model: self.model.clone(),
            max_requests_per_1_minute: get("max_requests_per_1_minute"),
            max_tokens_per_1_minute: get("max_tokens_per_1_minute"),
            max_requests_per_1_day: get("max_requests_per_1_day"),
            max_images_per_1_minute: get("max_images_per_1_minute"),
            max_audio_megabytes_per_1_minute: get("max_audio_megabytes_per_1_minute"),
            batch_1_day_max_input_tokens: get("batch_1_day_max_input_tokens"),
        }
    }
}

/// A service account: a bot member of one project.
#[derive(Clone, Debug)]
pub(super) struct Account {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

impl Account {
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }

    pub fn api_json(&self) -> Value {
        json!({
            "object": "organization.project.service_account",
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at.as_second(),
        })
    }
}

/// Who holds a project key.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Owner {
    ServiceAccount(String),
    User { id: String, email: String, name: String },
}

/// A project API key, known only by its hash and masked form.
#[derive(Clone, Debug)]
pub(super) struct ProjectKey {
    pub id: String,
    pub name: String,
    pub hash: String,
    pub redacted_value: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub owner: Owner,
    pub deleted_at: Option<Timestamp>,
}

impl ProjectKey {
    pub fn new(value: &str, name: &str, owner: Owner, now: Timestamp) -> Self {
        Self {
            id: new_id("key_", 16),
            name: name.to_owned(),
            hash: sha256_hex(value),
            redacted_value: mask(value),
            created_at: now,
            last_used_at: None,
            owner,
            deleted_at: None,
        }
    }

    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }

    pub fn service_account(&self) -> Option<&str> {
        match &self.owner {
            Owner::ServiceAccount(id) => Some(id),
            Owner::User { .. } => None,
        }
    }

    pub fn api_json(&self, accounts: &[Account]) -> Value {
        let owner = match &self.owner {
            Owner::ServiceAccount(id) => {
                let account = accounts.iter().find(|account| account.id == *id);
                json!({
                    "type": "service_account",
                    "service_account": {
                        "id": id,
                        "name": account.map(|a| a.name.clone()),
                        "created_at": account.map(|a| a.created_at.as_second()),
                        "role": account.map(|a| a.role.clone()),
                    },
                })
            }
            Owner::User { id, email, name } => json!({
                "type": "user",
                "user": {"id": id, "email": email, "name": name,
                         "created_at": self.created_at.as_second(), "role": "owner"},
            }),
        };
        json!({
            "object": "organization.project.api_key",
            "id": self.id,
            "name": self.name,
            "redacted_value": self.redacted_value,
            "created_at": self.created_at.as_second(),
            "last_used_at": self.last_used_at.map(|t| t.as_second()),
            "owner_project_access": "active",
            "owner": owner,
        })
    }
}

/// A project and everything in it.
#[derive(Clone, Debug)]
pub(super) struct Project {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub archived_at: Option<Timestamp>,
    pub external_key_id: Option<String>,
    pub residency: Option<String>,
    pub accounts: Vec<Account>,
    pub keys: Vec<ProjectKey>,
    pub rate_limits: Vec<RateLimitRow>,
    /// Monthly hard cap in US cents.
    pub spend_limit_cents: Option<i64>,
}

impl Project {
    pub fn new(id: String, name: String, now: Timestamp) -> Self {
        Self {
            id,
            name,
            created_at: now,
            archived_at: None,
            external_key_id: None,
            residency: None,
            accounts: Vec::new(),
            keys: Vec::new(),
            rate_limits: seeded_rate_limits(),
            spend_limit_cents: None,
        }
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    pub fn api_json(&self) -> Value {
        json!({
            "object": "organization.project",
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.as_second(),
            "archived_at": self.archived_at.map(|t| t.as_second()),
            "status": if self.is_archived() { "archived" } else { "active" },
            "external_key_id": self.external_key_id,
            "residency": self.residency,
        })
    }

    pub fn live_account_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.accounts
            .iter_mut()
            .find(|account| account.id == id && account.is_live())
    }

    /// Deletes a service account and, with it, every key it holds.
    pub fn delete_account(&mut self, id: &str, now: Timestamp) -> bool {
        let Some(account) = self.live_account_mut(id) else {
            return false;
        };
        account.deleted_at = Some(now);
        for key in &mut self.keys {
            if key.service_account() == Some(id) && key.is_live() {
                key.deleted_at = Some(now);
            }
        }
        true
    }

    pub fn sim(&self, ledger: &[Usage]) -> SimProject {
        SimProject {
            id: self.id.clone(),
            name: self.name.clone(),
            archived: self.is_archived(),
            service_accounts: self.accounts.iter().map(|a| self.sim_account(a)).collect(),
            api_keys: self.keys.iter().map(ProjectKey::sim).collect(),
            rate_limits: self.rate_limits.iter().map(RateLimitRow::sim).collect(),
            spend_limit_cents: self.spend_limit_cents,
            usage_entries: ledger.iter().filter(|u| u.project_id == self.id).count(),
        }
    }

    pub fn sim_account(&self, account: &Account) -> SimServiceAccount {
        SimServiceAccount {
            id: account.id.clone(),
            name: account.name.clone(),
            role: account.role.clone(),
            created_at: account.created_at,
            deleted: !account.is_live(),
            deleted_at: account.deleted_at,
            key_id: self
                .keys
                .iter()
                .find(|key| key.service_account() == Some(&account.id))
                .map(|key| key.id.clone()),
        }
    }
}

impl ProjectKey {
    pub fn sim(&self) -> SimApiKey {
        SimApiKey {
            id: self.id.clone(),
            name: self.name.clone(),
            redacted_value: self.redacted_value.clone(),
            service_account_id: self.service_account().map(str::to_owned),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            deleted: !self.is_live(),
        }
    }
}

/// One usage record as tests inject it (`POST /_sim/usage`): the usage and costs reports bucket
/// these by time and group them by key, project and model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The project key (`key_...`) that made the requests.
    pub api_key_id: String,
    #[serde(default = "default_model")]
    pub model: String,
    #[serde(default = "one")]
    pub requests: u64,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// Cost in US dollars.
    #[serde(default)]
    pub usd: f64,
    /// When it happened; the simulator's current time when left out.
    #[serde(default)]
    pub at: Option<Timestamp>,
    /// The cost line item; `<model>, input` when left out.
    #[serde(default)]
    pub line_item: Option<String>,
    /// Filled in by the simulator from the key.
    #[serde(default)]
    pub project_id: String,
}

fn default_model() -> String {
    DEFAULT_MODEL.to_owned()
}

fn one() -> u64 {
    1
}

impl Usage {
    /// One request of `model` by key `api_key_id` costing `usd`, now.
    pub fn new(api_key_id: &str, model: &str, usd: f64) -> Self {
        Self {
            api_key_id: api_key_id.to_owned(),
            model: model.to_owned(),
            requests: 1,
            input_tokens: 0,
            output_tokens: 0,
            usd,
            at: None,
            line_item: None,
            project_id: String::new(),
        }
    }

    /// The same with token counts.
    #[must_use]
    pub fn tokens(mut self, input: u64, output: u64) -> Self {
        self.input_tokens = input;
        self.output_tokens = output;
        self
    }

    /// The same at `at`.
    #[must_use]
    pub fn at(mut self, at: Timestamp) -> Self {
        self.at = Some(at);
        self
    }

    /// The same for `requests` requests.
    #[must_use]
    pub fn requests(mut self, requests: u64) -> Self {
        self.requests = requests;
        self
    }

    pub(super) fn line_item(&self) -> String {
        self.line_item
            .clone()
            .unwrap_or_else(|| format!("{}, input", self.model))
    }
}

/// Everything the simulated organisation holds.
#[derive(Debug)]
pub(super) struct State {
    /// SHA-256 of each admin key.
    pub admin_keys: Vec<String>,
    pub projects: Vec<Project>,
    pub ledger: Vec<Usage>,
}

impl State {
    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.iter().find(|project| project.id == id)
    }

    pub fn project_mut(&mut self, id: &str) -> Option<&mut Project> {
        self.projects.iter_mut().find(|project| project.id == id)
    }

    pub fn add_admin_key(&mut self, value: &str) {
        let hash = sha256_hex(value);
        if !self.admin_keys.contains(&hash) {
            self.admin_keys.push(hash);
        }
    }

    /// Where the live project key with this hash is: (project index, key index).
    pub fn live_key_by_hash(&self, hash: &str) -> Option<(usize, usize)> {
        self.projects.iter().enumerate().find_map(|(p, project)| {
            project
                .keys
                .iter()
                .position(|key| key.hash == hash && key.is_live())
                .map(|k| (p, k))
        })
    }

    /// The project of key `key_id`, deleted keys included (their usage is history).
    pub fn project_of_key(&self, key_id: &str) -> Option<&str> {
        self.projects
            .iter()
            .find(|project| project.keys.iter().any(|key| key.id == key_id))
            .map(|project| project.id.as_str())
    }

    /// Spend of `project` in the UTC month of `now`, for the spend limit's enforcement status.
    pub fn month_spend(&self, project: &str, now: Timestamp) -> f64 {
        let month = now
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .first_of_month()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|zoned| zoned.timestamp())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        self.ledger
            .iter()
            .filter(|usage| usage.project_id == project)
            .filter(|usage| usage.at.is_some_and(|at| at >= month && at <= now))
            .map(|usage| usage.usd)
            .sum()
    }
}

/// A project as the test hooks show it, deleted service accounts and keys included; never a value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimProject {
    pub id: String,
    pub name: String,
    pub archived: bool,
    pub service_accounts: Vec<SimServiceAccount>,
    pub api_keys: Vec<SimApiKey>,
    pub rate_limits: Vec<SimRateLimit>,
    pub spend_limit_cents: Option<i64>,
    pub usage_entries: usize,
}

/// A service account as the test hooks show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimServiceAccount {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: Timestamp,
    pub deleted: bool,
    pub deleted_at: Option<Timestamp>,
    /// The id of the key it holds (or held), if any.
    pub key_id: Option<String>,
}

/// A project key as the test hooks show it: the masked form only.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimApiKey {
    pub id: String,
    pub name: String,
    pub redacted_value: String,
    pub service_account_id: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub deleted: bool,
}

/// One model's rate limits as the test hooks show them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimRateLimit {
    pub id: String,
    pub model: String,
    pub max_requests_per_1_minute: Option<u64>,
    pub max_tokens_per_1_minute: Option<u64>,
    pub max_requests_per_1_day: Option<u64>,
    pub max_images_per_1_minute: Option<u64>,
    pub max_audio_megabytes_per_1_minute: Option<u64>,
    pub batch_1_day_max_input_tokens: Option<u64>,
}

/// `prefix` followed by `len` random lower-case hex digits.
pub(super) fn new_id(prefix: &str, len: usize) -> String {
    let mut digits = hex::encode(rand::random::<[u8; 16]>());
    digits.truncate(len);
    format!("{prefix}{digits}")
}

/// A fresh service-account key: `sk-svcacct-` and 64 hex digits.
pub(super) fn new_service_account_key() -> String {
    format!("sk-svcacct-{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// The masked form OpenAI shows in `redacted_value`, in the style of its `sk-abc...def` example: the
/// key's kind prefix, then the first and last three characters of the secret part.
pub(super) fn mask(value: &str) -> String {
    let prefix = ["sk-svcacct-", "sk-proj-", "sk-admin-", "sk-"]
        .into_iter()
        .find(|prefix| value.starts_with(prefix))
        .unwrap_or("");
    let secret: Vec<char> = value[prefix.len()..].chars().collect();
    if secret.len() < 8 {
        return format!("{prefix}...");
    }
    let head: String = secret[..3].iter().collect();
    let tail: String = secret[secret.len() - 3..].iter().collect();
    format!("{prefix}{head}...{tail}")
}

#[cfg(test)]
mod tests;
