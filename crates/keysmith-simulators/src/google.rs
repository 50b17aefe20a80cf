//! A faithful in-process simulator of Google's API Keys API v2 (`/v2/...`), its OAuth2 token
//! endpoint (`/token`) and a sliver of the Gemini API (`/v1beta/models`), following `providers.md`
//! §7, plus test hooks under `/_sim/`.
//!
//! Changes are long-running operations that report done after a configurable number of polls (the
//! change itself is visible at once). Deletion is soft: deleted keys are purged 30 days later on the
//! simulator clock. Key values are kept because the API hands them out again (`getKeyString`);
//! neither logs nor hooks show them.

mod api;
mod hooks;
mod inference;
mod input;
mod oauth;
mod state;
pub mod testdata;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, sync::MutexGuard};

use axum::{Router, http::StatusCode};
use jiff::Timestamp;

use self::state::{KeyEntry, RefreshCredential, ServiceAccount, State, Token};
pub use self::{
    api::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
    inference::INFERENCE_PATH,
    oauth::{READ_ONLY_SCOPE, TOKEN_PATH},
    state::{PURGE_AFTER, SimKey},
};
pub use super::RunningSim;
use super::{
    clock::Clock,
    sha256_hex, shared_hooks,
    sim_core::{SharedState, SimCore, core_accessors},
};

/// The project ID of a simulator made with [`GoogleSim::new`].
pub const DEFAULT_PROJECT_ID: &str = "keysmith-sim";

/// The project number resource names carry.
pub const DEFAULT_PROJECT_NUMBER: &str = "123456789012";

/// `expires_in` of issued tokens unless a test says otherwise (Google's usual figure).
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: i64 = 3599;

/// A simulated Cloud project. Clones share the same state, clock, faults and request log; faults hit
/// the API, the token endpoint and inference alike.
#[derive(Clone, Debug)]
pub struct GoogleSim {
    state: SharedState<State>,
    core: SimCore,
}

impl GoogleSim {
    core_accessors!();

    /// Project [`DEFAULT_PROJECT_ID`], which trusts the test service account of [`testdata`] and
    /// whose operations finish after one poll.
    pub fn new(clock: Clock) -> Self {
        let sim = Self {
            state: SharedState::new(State {
                project_id: DEFAULT_PROJECT_ID.to_owned(),
                project_number: DEFAULT_PROJECT_NUMBER.to_owned(),
                keys: Vec::new(),
                purged: Vec::new(),
                operations: BTreeMap::new(),
                polls_until_done: 1,
                accounts: Vec::new(),
                refresh_credentials: Vec::new(),
                tokens: Vec::new(),
                token_lifetime_seconds: DEFAULT_TOKEN_LIFETIME_SECONDS,
            }),
            core: SimCore::new(clock),
        };
        sim.add_service_account(testdata::TEST_CLIENT_EMAIL, testdata::TEST_PUBLIC_KEY_DER);
        sim
    }

    /// The APIs plus the `/_sim/` hooks.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(oauth::routes(self.clone()))
            .merge(inference::routes(self.clone()))
            .merge(hooks::routes(self.clone()))
            .merge(shared_hooks::routes(self.core.clone()))
            .fallback(|| async { api::error(StatusCode::NOT_FOUND, "Method not found.") })
    }

    /// Serves [`Self::router`] on a loopback port until the returned handle is dropped. Its
    /// `base_url` is the API Keys API base; the token endpoint is `{base_url}/token` and the Gemini
    /// API `{base_url}/v1beta`.
    pub async fn spawn(&self) -> std::io::Result<RunningSim> {
        RunningSim::start(self.router(), "").await
    }

    /// A service-account JSON key for the test account, pointing at the token endpoint of `running`.
    pub fn service_account_json(running: &RunningSim) -> String {
        testdata::service_account_json(
            testdata::TEST_CLIENT_EMAIL,
            &format!("{}{TOKEN_PATH}", running.base_url),
        )
    }

    /// Trusts a service account whose key's public half is `public_key_der` (PKCS#1 DER).
    pub fn add_service_account(&self, email: &str, public_key_der: &[u8]) {
        let mut state = self.state.lock();
        state.accounts.retain(|a| a.email != email);
        state.accounts.push(ServiceAccount {
            email: email.to_owned(),
            public_key_der: public_key_der.to_vec(),
            enabled: true,
        });
    }

    /// Enables or disables a service account: a disabled one gets `invalid_grant`.
    pub fn set_service_account_enabled(&self, email: &str, enabled: bool) {
        for account in self.state.lock().accounts.iter_mut().filter(|a| a.email == email) {
            account.enabled = enabled;
        }
    }

    /// Accepts `refresh_token` grants for a user credential.
    pub fn add_refresh_credential(&self, client_id: &str, client_secret: &str, refresh_token: &str) {
        self.state.lock().refresh_credentials.push(RefreshCredential {
            client_id: client_id.to_owned(),
            client_secret_hash: sha256_hex(client_secret),
            refresh_token_hash: sha256_hex(refresh_token),
        });
    }

    /// Accepts `token` as a bearer token with full scope that never expires (for demos with curl).
    pub fn add_static_token(&self, token: &str) {
        self.state.lock().tokens.push(Token {
            hash: sha256_hex(token),
            expires_at: Timestamp::MAX,
            can_write: true,
        });
    }

    /// Revokes every access token issued so far; the next API call with one gets 401.
    pub fn revoke_tokens(&self) {
        self.state
            .lock()
            .tokens
            .retain(|t| t.expires_at == Timestamp::MAX);
    }

    /// `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime(&self, seconds: i64) {
        self.state.lock().token_lifetime_seconds = seconds;
    }

    /// How many polls an operation needs before it reports done (0: done in the first answer).
    pub fn set_polls_until_done(&self, polls: u32) {
        self.state.lock().polls_until_done = polls;
    }

    /// Registers a key made outside keysmith (in the console, say), with this value and display
    /// name. Returns its resource name.
    pub fn add_key(&self, value: &str, display_name: &str) -> String {
        let now = self.core.clock.now();
        let mut state = self.state(now);
        let mut key = KeyEntry::new(state::uuid4(), value.to_owned(), now);
        key.display_name = display_name.to_owned();
        let name = key.sim_key(&state.project_number).name;
        state.keys.push(key);
        name
    }

    /// Every key (deleted ones included until purged), oldest first; never the value.
    pub fn keys(&self) -> Vec<SimKey> {
        let now = self.core.clock.now();
        let state = self.state(now);
        state
            .keys
            .iter()
            .map(|k| k.sim_key(&state.project_number))
            .collect()
    }

    /// One key by resource name or key ID, deleted or not.
    pub fn key(&self, name: &str) -> Option<SimKey> {
        let now = self.core.clock.now();
        let state = self.state(now);
        state
            .key(last_segment(name))
            .map(|k| k.sim_key(&state.project_number))
    }

    /// The value of a key, as `getKeyString` would return it.
    pub fn key_value(&self, name: &str) -> Option<String> {
        let now = self.core.clock.now();
        self.state(now)
            .key(last_segment(name))
            .map(|k| k.key_string.clone())
    }

    /// Renames a key as someone in the console would. Returns false for an unknown key.
    pub fn rename_by_hand(&self, name: &str, display_name: &str) -> bool {
        self.edit(name, |key| key.display_name = display_name.to_owned())
    }

    /// Replaces a key's restrictions as someone in the console would.
    pub fn restrict_by_hand(&self, name: &str, restrictions: serde_json::Value) -> bool {
        self.edit(name, |key| key.restrictions = Some(restrictions))
    }

    /// Deletes a key as someone in the console would.
    pub fn delete_by_hand(&self, name: &str) -> bool {
        let now = self.core.clock.now();
        self.edit(name, |key| key.delete_time = Some(now))
    }

    fn edit(&self, name: &str, change: impl FnOnce(&mut KeyEntry)) -> bool {
        let now = self.core.clock.now();
        match self.state(now).key_mut(last_segment(name)) {
            Some(key) => {
                change(key);
                key.touch(now);
                true
            }
            None => false,
        }
    }

    /// How many keys that are not deleted carry keysmith's name annotation containing `needle`.
    pub fn live_key_count_named_with(&self, needle: &str) -> usize {
        self.keys()
            .iter()
            .filter(|k| !k.is_deleted())
            .filter(|k| k.annotations.values().any(|v| v.contains(needle)))
            .count()
    }

    /// The state, with keys deleted long enough ago purged at `now`.
    fn state(&self, now: Timestamp) -> MutexGuard<'_, State> {
        let mut state = self.state.lock();
        state.purge(now);
        state
    }
}

/// `projects/p/locations/global/keys/k` → `k`; a bare ID is returned as is.
fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}
