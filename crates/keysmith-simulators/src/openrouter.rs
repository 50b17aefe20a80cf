//! A faithful in-process simulator of OpenRouter's key-management API (`/api/v1/keys*`, `/key`,
//! `/credits`, `/activity`), following `providers.md` §1, plus test hooks under `/_sim/`.
//!
//! Key values exist only in the one `POST /keys` response that reveals them: the state keeps their
//! SHA-256 (which is also the key's `hash`), and neither logs nor hooks ever show them.

mod activity;
mod api;
mod hooks;
mod input;
mod state;
#[cfg(test)]
mod tests;

use std::sync::MutexGuard;

use axum::{Router, http::StatusCode};

use self::state::{Entry, KeyRecord, State};
pub use self::{
    api::{BASE_PATH, PAGE_SIZE},
    state::{DEFAULT_MODEL, DEFAULT_WORKSPACE, LimitReset, SimKey, Spend, Usage},
};
pub use super::RunningSim;
use super::{
    clock::Clock,
    shared_hooks,
    sim_core::{SharedState, SimCore, core_accessors},
};

/// Credits the simulated account has bought unless a test says otherwise.
pub const DEFAULT_TOTAL_CREDITS: f64 = 100.0;

/// The name given to keys registered with [`OpenRouterSim::add_ordinary_key`].
pub const IMPORTED_NAME: &str = "imported";

/// A simulated OpenRouter account. Clones share the same state, clock, faults and request log.
#[derive(Clone, Debug)]
pub struct OpenRouterSim {
    state: SharedState<State>,
    core: SimCore,
}

impl OpenRouterSim {
    core_accessors!();

    /// An account whose management keys are `management_keys` (plaintext values), with no ordinary
    /// keys and [`DEFAULT_TOTAL_CREDITS`] bought.
    pub fn new(management_keys: impl IntoIterator<Item = String>, clock: Clock) -> Self {
        let mut state = State {
            keys: Vec::new(),
            management: Vec::new(),
            total_credits: DEFAULT_TOTAL_CREDITS,
        };
        for value in management_keys {
            state.add_management_key(&value);
        }
        Self {
            state: SharedState::new(state),
            core: SimCore::new(clock),
        }
    }

    /// The API under [`BASE_PATH`] plus the `/_sim/` hooks.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(hooks::routes(self.clone()))
            .merge(shared_hooks::routes(self.core.clone()))
            .fallback(|| async { api::error(StatusCode::NOT_FOUND, "Not Found") })
    }

    /// Serves [`Self::router`] on a loopback port until the returned handle is dropped.
    pub async fn spawn(&self) -> std::io::Result<RunningSim> {
        RunningSim::start(self.router(), BASE_PATH).await
    }

    /// Adds a management key by value; returns its hash.
    pub fn add_management_key(&self, value: &str) -> String {
        self.state().add_management_key(value)
    }

    /// Registers an ordinary key that exists at the provider but was not minted through the API (for
    /// import tests), named [`IMPORTED_NAME`]. Returns its hash; an already known value is left as is.
    pub fn add_ordinary_key(&self, value: &str) -> String {
        self.add_ordinary_key_named(value, IMPORTED_NAME)
    }

    /// Like [`Self::add_ordinary_key`], with a chosen name.
    pub fn add_ordinary_key_named(&self, value: &str, name: &str) -> String {
        let now = self.core.clock.now();
        let key = KeyRecord::new(value, name.to_owned(), now);
        let hash = key.hash.clone();
        let mut state = self.state();
        if state.key(&hash).is_none() {
            state.keys.push(key);
        }
        hash
    }

    /// Charges one request costing `usd` to the key `hash` at the current simulated time. Returns
    /// false when there is no such key or it was deleted.
    pub fn add_spend(&self, hash: &str, usd: f64, byok: bool) -> bool {
        self.record_spend(hash, Spend::usd(usd, byok))
    }

    /// Adds `spend` to the ledger of key `hash` at the current simulated time. Returns false when
    /// there is no such key or it was deleted.
    pub fn record_spend(&self, hash: &str, spend: Spend) -> bool {
        let at = self.core.clock.now();
        match self.state().live_key_mut(hash) {
            Some(key) => {
                key.ledger.push(Entry { at, spend });
                true
            }
            None => false,
        }
    }

    /// Every ordinary key, disabled and deleted ones included, oldest first; never the value.
    pub fn keys(&self) -> Vec<SimKey> {
        let now = self.core.clock.now();
        self.state().keys.iter().map(|key| key.sim_key(now)).collect()
    }

    /// One ordinary key by hash, even if deleted.
    pub fn key(&self, hash: &str) -> Option<SimKey> {
        let now = self.core.clock.now();
        self.state().key(hash).map(|key| key.sim_key(now))
    }

    /// How many keys that have not been deleted have a name containing `needle`.
    pub fn live_key_count_named_with(&self, needle: &str) -> usize {
        self.state()
            .keys
            .iter()
            .filter(|key| !key.is_deleted() && key.name.contains(needle))
            .count()
    }

    /// What `/credits` reports as `total_credits`.
    pub fn total_credits(&self) -> f64 {
        self.state().total_credits
    }

    /// Changes what `/credits` reports as bought; 0 makes the account free tier.
    pub fn set_total_credits(&self, usd: f64) {
        self.state().total_credits = usd;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}
