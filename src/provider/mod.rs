//! One trait for every provider's management API. Each provider lives in its own module and maps
//! its wire format onto these types; the controllers never see a provider's JSON.

mod error;
pub mod http;
pub mod instrumented;
pub mod openrouter;
mod secret_value;

use std::sync::Arc;

use jiff::Timestamp;

pub use error::Error;
pub use secret_value::SecretValue;

use crate::crd::{BudgetReset, Capabilities};

/// Result of a provider call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What keysmith asks the provider to create.
#[derive(Clone, Debug, PartialEq)]
pub struct KeySettings {
    /// Name at the provider, including keysmith's tag.
    pub name: String,
    /// Whether the key is disabled.
    pub disabled: bool,
    /// Spending cap in USD (None: no cap).
    pub limit_usd: Option<f64>,
    /// Window of the spending cap (None: never resets).
    pub limit_reset: Option<BudgetReset>,
    /// Whether BYOK spend counts against the cap.
    pub include_byok: bool,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
}

/// A key as the provider reports it. Never holds the value.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    /// The provider's identifier (OpenRouter: the hash).
    pub id: String,
    /// Name at the provider.
    pub name: String,
    /// Masked form of the value.
    pub label: Option<String>,
    /// Settings the provider holds for the key.
    pub settings: KeySettings,
    /// Spend and traffic.
    pub usage: KeyUsage,
}

/// Usage figures of one key, in the provider's windows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyUsage {
    /// All-time spend in USD.
    pub total_usd: Option<f64>,
    /// Spend in the current UTC day.
    pub daily_usd: Option<f64>,
    /// Spend in the current UTC week.
    pub weekly_usd: Option<f64>,
    /// Spend in the current UTC month.
    pub monthly_usd: Option<f64>,
    /// Budget left in the current window, as the provider computes it.
    pub remaining_usd: Option<f64>,
}

/// A key just minted: its record and its value, which the provider shows only this once.
#[derive(Debug)]
pub struct CreatedKey {
    /// The record.
    pub record: KeyRecord,
    /// The plaintext value.
    pub value: SecretValue,
}

/// Account-level facts checked when a hub is verified.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccountInfo {
    /// Credits bought, in USD.
    pub credits_usd: Option<f64>,
    /// Credits used, in USD.
    pub usage_usd: Option<f64>,
}

/// Facts about an imported key, learnt by calling the provider with the key itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportedKeyInfo {
    /// Masked form, where reported.
    pub label: Option<String>,
    /// Usage, where reported.
    pub usage: KeyUsage,
    /// Budget the provider holds for the key, where reported.
    pub limit_usd: Option<f64>,
}

/// A provider's key-management API.
#[async_trait::async_trait]
pub trait ProviderClient: Send + Sync {
    /// How this provider lets keysmith carry out each limit and action.
    fn capabilities(&self) -> Capabilities;

    /// Checks the management credential and reads account figures.
    async fn verify(&self) -> Result<AccountInfo>;

    /// Mints a key. Not idempotent by itself: callers record the attempt first (see the controller).
    async fn create_key(&self, settings: &KeySettings) -> Result<CreatedKey>;

    /// Reads one key; `None` when the provider has no such key.
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>>;

    /// Lists every key of the account, disabled ones included, following pagination.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>>;

    /// Changes a key in place to match `settings` (fields the provider cannot change are ignored).
    async fn update_key(&self, id: &str, settings: &KeySettings) -> Result<KeyRecord>;

    /// Revokes a key. A key that is already gone counts as success.
    async fn delete_key(&self, id: &str) -> Result<()>;

    /// Checks an imported key by calling the provider with it.
    async fn inspect_imported(&self, value: &SecretValue) -> Result<ImportedKeyInfo>;
}

/// Shared handle to a provider client.
pub type DynProvider = Arc<dyn ProviderClient>;
