//! One trait for every provider's management API. Each provider lives in its own module and maps
//! its wire format onto these types; the controllers never see a provider's JSON.
//!
//! [`registry`] is the one place that turns a hub's settings and credential into a client: adding a
//! provider is a module here, a line there, and a simulator in `keysmith-simulators`.

pub mod aixplain;
pub mod anthropic;
pub mod digitalocean;
pub mod endpoint;
mod error;
pub mod google;
pub mod http;
pub mod openai;
pub mod openrouter;
pub mod registry;
pub mod tag;
#[cfg(test)]
mod testing;
pub mod validate_only;

use std::sync::Arc;

use jiff::Timestamp;

pub use error::Error;
pub use keysmith_core::SecretValue;
pub use keysmith_limits::KeyUsage;

use keysmith_api::{BudgetReset, Capabilities, Limits, ModelLimit, RateLimit};

/// Result of a provider call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What keysmith asks the provider to create.
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// Request and token limits for the key as a whole, for providers that enforce them per key.
    /// `spec.rateLimit` over exactly a minute or a day is folded in here (see
    /// the operator's `plan::desired_settings`).
    pub limits: Limits,
    /// `spec.rateLimit` (else the hub's default) when its interval is neither a minute nor a day, so
    /// it could not be folded into `limits`. No provider holds a request rate over another interval:
    /// a provider whose `rate_limits` capability is `Provider` refuses this with
    /// [`Error::Unsupported`] rather than drop it, and its records never carry one.
    pub other_rate_limit: Option<RateLimit>,
    /// Per-model limits, for providers that enforce them per key.
    pub model_limits: Vec<ModelLimit>,
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

    /// Whether `update_key` can change a key's expiry; when not, a new expiry re-issues the key.
    fn expiry_in_place(&self) -> bool {
        false
    }

    /// Checks the management credential and reads account figures. Hub-wide settings the provider
    /// holds (such as an OpenAI project's rate and spend limits) are applied here too.
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

    /// Finds the provider's record of an imported key, so that keysmith can rename it, disable it and
    /// read its usage with the management credential. `key_id` is `spec.import.keyId`; without it a
    /// provider may match an unambiguous masked hint. `Ok(None)`: this provider does not manage
    /// imported keys (the key is only validated).
    async fn find_imported(&self, _value: &SecretValue, _key_id: Option<&str>) -> Result<Option<KeyRecord>> {
        Ok(None)
    }

    /// Replaces the value of key `id` in place (same id, new value): rotation where the provider
    /// cannot mint a second key.
    async fn regenerate_key(&self, _id: &str) -> Result<CreatedKey> {
        Err(Error::Unsupported("regenerating a key in place"))
    }

    /// Reads the value of an existing key again, where the provider allows it. After a crash between
    /// a create and the Secret write, such a key is adopted instead of revoked. `Ok(None)`: the value
    /// was shown only once.
    async fn reveal_key(&self, _id: &str) -> Result<Option<SecretValue>> {
        Ok(None)
    }
}

/// Shared handle to a provider client.
pub type DynProvider = Arc<dyn ProviderClient>;
