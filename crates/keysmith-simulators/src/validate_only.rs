//! A faithful in-process simulator of the inference APIs keysmith can only validate keys against:
//! Together AI (`providers.md` §6, "What a faithful simulator must do") and a generic OpenAI-compatible
//! server. Both serve `GET /v1/models` to a valid key and 401 to anything else; they differ in the
//! list's shape (Together: a bare array; OpenAI: `{"object":"list","data":[...]}`), their error bodies
//! and Together's rate-limit headers. Test hooks live under `/_sim/`.
//!
//! There is no key-management API: keys are added through the hooks (as a dashboard would make them),
//! which show the value once; the state keeps only its SHA-256.

mod api;
mod hooks;
#[cfg(test)]
mod tests;

use std::sync::MutexGuard;

use axum::Router;
use jiff::Timestamp;
use serde::Serialize;

pub use self::api::{BASE_PATH, MODELS, TOGETHER_REQUESTS_PER_SECOND, TOGETHER_TOKENS_PER_SECOND};
pub use super::RunningSim;
use super::{
    clock::Clock,
    sha256_hex, shared_hooks,
    sim_core::{SharedState, SimCore, core_accessors},
};

/// Which server the simulator plays. Its own type, not the client's: a shared type would let a bug
/// common to both pass unnoticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Together AI: `GET /v1/models` answers a bare JSON array, errors are `{"error": {...}}` with
    /// Together's wording.
    Together,
    /// Any OpenAI-compatible server: the models list comes in OpenAI's `{"object": "list", "data":
    /// [...]}` envelope, errors in OpenAI's shape.
    OpenAiCompatible,
}

/// A key as the state holds it: never the value.
#[derive(Clone, Debug)]
struct Key {
    id: String,
    name: String,
    hash: String,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

impl Key {
    fn sim_key(&self) -> SimApiKey {
        SimApiKey {
            id: self.id.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            revoked: self.revoked_at.is_some(),
        }
    }
}

/// A key as the test hooks show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimApiKey {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub revoked: bool,
}

#[derive(Debug, Default)]
struct State {
    keys: Vec<Key>,
    /// `GET /v1/models` answers 503 (model overloaded) this many more times.
    overloaded: u32,
    /// The current unix second and the requests counted in it, for Together's per-second
    /// `x-ratelimit-remaining`.
    second: (i64, u64),
}

/// A simulated Together AI or OpenAI-compatible server. Clones share state, clock, faults and log.
#[derive(Clone, Debug)]
pub struct ValidateOnlySim {
    flavor: Flavor,
    state: SharedState<State>,
    core: SimCore,
}

/// A key added through [`ValidateOnlySim::add_key`]: its id and its value, shown this once.
#[derive(Clone)]
pub struct AddedKey {
    pub id: String,
    pub value: String,
}

// The value stays out of debug output, as everywhere else.
impl std::fmt::Debug for AddedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ValidateOnlySim {
    core_accessors!();

    /// A server of `flavor` that accepts the keys `values` (plaintext, kept only as hashes).
    pub fn new(flavor: Flavor, values: impl IntoIterator<Item = String>, clock: Clock) -> Self {
        let sim = Self {
            flavor,
            state: SharedState::default(),
            core: SimCore::new(clock),
        };
        for value in values {
            sim.add_key_with_value("initial", &value);
        }
        sim
    }

    /// Which provider this simulates.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The API under [`BASE_PATH`] plus the `/_sim/` hooks.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .merge(hooks::routes(self.clone()))
            .merge(shared_hooks::routes(self.core.clone()))
    }

    /// Serves [`Self::router`] on a loopback port until the returned handle is dropped; its
    /// `base_url` ends in [`BASE_PATH`].
    pub async fn spawn(&self) -> std::io::Result<RunningSim> {
        RunningSim::start(self.router(), BASE_PATH).await
    }

    /// Makes a key as the provider's dashboard would, returning its id and value (shown only here).
    pub fn add_key(&self, name: &str) -> AddedKey {
        let value = match self.flavor {
            Flavor::Together => hex::encode(rand::random::<[u8; 32]>()),
            Flavor::OpenAiCompatible => format!("sk-{}", hex::encode(rand::random::<[u8; 24]>())),
        };
        self.add_key_with_value(name, &value)
    }

    /// Like [`Self::add_key`], with a chosen value. A value already known keeps its key.
    pub fn add_key_with_value(&self, name: &str, value: &str) -> AddedKey {
        let hash = sha256_hex(value);
        let mut state = self.state();
        let id = match state.keys.iter().find(|key| key.hash == hash) {
            Some(key) => key.id.clone(),
            None => {
                let id = format!("key_{}", &hash[..16]);
                state.keys.push(Key {
                    id: id.clone(),
                    name: name.to_owned(),
                    hash,
                    created_at: self.core.clock.now(),
                    revoked_at: None,
                });
                id
            }
        };
        AddedKey {
            id,
            value: value.to_owned(),
        }
    }

    /// Revokes a key as the dashboard would; false when there is no such live key.
    pub fn revoke(&self, id: &str) -> bool {
        let now = self.core.clock.now();
        let mut state = self.state();
        match state
            .keys
            .iter_mut()
            .find(|key| key.id == id && key.revoked_at.is_none())
        {
            Some(key) => {
                key.revoked_at = Some(now);
                true
            }
            None => false,
        }
    }

    /// Whether `value` currently authenticates.
    pub fn accepts(&self, value: &str) -> bool {
        let hash = sha256_hex(value);
        self.state()
            .keys
            .iter()
            .any(|key| key.hash == hash && key.revoked_at.is_none())
    }

    /// Makes the next `count` model-list requests answer 503, as an overloaded Together model does.
    pub fn overload(&self, count: u32) {
        self.state().overloaded = count;
    }

    /// Every key, revoked ones included; never a value.
    pub fn keys(&self) -> Vec<SimApiKey> {
        self.state().keys.iter().map(Key::sim_key).collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}
