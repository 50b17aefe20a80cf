//! A faithful in-process simulator of OpenAI's Administration API (`/v1/organization/...`: projects,
//! service accounts, project keys, rate limits, spend limit, usage and costs) and of the inference
//! `GET /v1/models`, following `providers.md` §2, plus test hooks under `/_sim/`.
//!
//! Key values exist only in the one service-account create response that reveals them: the state
//! keeps their SHA-256 and a masked form, and neither logs nor hooks ever show them.

mod api;
mod errors;
mod hooks;
mod input;
mod limits;
mod reports;
mod state;
#[cfg(test)]
mod tests;

use std::sync::MutexGuard;

use axum::{Router, http::StatusCode};

use self::state::{Owner, Project, ProjectKey, State};
pub use self::{
    api::{BASE_PATH, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT},
    state::{
        DEFAULT_MODEL, DEFAULT_PROJECT_ID, SimApiKey, SimProject, SimRateLimit, SimServiceAccount, Usage,
    },
};
pub use super::RunningSim;
use super::{
    clock::Clock,
    shared_hooks,
    sim_core::{SharedState, SimCore, core_accessors},
};

/// The name given to user keys registered with [`OpenAiSim::add_user_key`] without one.
pub const IMPORTED_NAME: &str = "imported";

/// A simulated OpenAI organisation. Clones share the same state, clock, faults and request log.
#[derive(Clone, Debug)]
pub struct OpenAiSim {
    state: SharedState<State>,
    core: SimCore,
}

impl OpenAiSim {
    core_accessors!();

    /// An organisation whose admin keys are `admin_keys` (plaintext values), with one empty project,
    /// [`DEFAULT_PROJECT_ID`].
    pub fn new(admin_keys: impl IntoIterator<Item = String>, clock: Clock) -> Self {
        let mut state = State {
            admin_keys: Vec::new(),
            projects: vec![Project::new(
                DEFAULT_PROJECT_ID.to_owned(),
                "Default project".to_owned(),
                clock.now(),
            )],
            ledger: Vec::new(),
        };
        for value in admin_keys {
            state.add_admin_key(&value);
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
            .fallback(|| async { api::error(StatusCode::NOT_FOUND, "Invalid URL") })
    }

    /// Serves [`Self::router`] on a loopback port until the returned handle is dropped.
    pub async fn spawn(&self) -> std::io::Result<RunningSim> {
        RunningSim::start(self.router(), BASE_PATH).await
    }

    /// Accepts one more admin key (by value).
    pub fn add_admin_key(&self, value: &str) {
        self.state().add_admin_key(value);
    }

    /// Creates an empty project; returns its id.
    pub fn add_project(&self, name: &str) -> String {
        let id = state::new_id("proj_", 24);
        let project = Project::new(id.clone(), name.to_owned(), self.core.clock.now());
        self.state().projects.push(project);
        id
    }

    /// Archives a project; false when there is no such project.
    pub fn archive_project(&self, id: &str) -> bool {
        let now = self.core.clock.now();
        match self.state().project_mut(id) {
            Some(project) => {
                project.archived_at.get_or_insert(now);
                true
            }
            None => false,
        }
    }

    /// Registers a project key owned by a user, as if made in the dashboard (for import tests).
    /// Returns its id (`key_...`), or `None` when there is no such project.
    pub fn add_user_key(&self, project: &str, value: &str, name: &str) -> Option<String> {
        let now = self.core.clock.now();
        let mut state = self.state();
        let project = state.project_mut(project)?;
        let owner = Owner::User {
            id: "user_sim".into(),
            email: "owner@example.test".into(),
            name: "Simulated Owner".into(),
        };
        let key = ProjectKey::new(value, name, owner, now);
        let id = key.id.clone();
        project.keys.push(key);
        Some(id)
    }

    /// Records usage of a key (deleted keys included: their usage is history), at `usage.at` or now.
    /// Returns false when no project has a key `usage.api_key_id`.
    pub fn record_usage(&self, mut usage: Usage) -> bool {
        let now = self.core.clock.now();
        let mut state = self.state();
        let Some(project) = state.project_of_key(&usage.api_key_id) else {
            return false;
        };
        usage.project_id = project.to_owned();
        usage.at.get_or_insert(now);
        state.ledger.push(usage);
        true
    }

    /// Every project as the hooks show it.
    pub fn projects(&self) -> Vec<SimProject> {
        let state = self.state();
        state.projects.iter().map(|p| p.sim(&state.ledger)).collect()
    }

    /// One project as the hooks show it.
    pub fn project(&self, id: &str) -> Option<SimProject> {
        let state = self.state();
        state.project(id).map(|p| p.sim(&state.ledger))
    }

    /// One service account of a project, even if deleted.
    pub fn service_account(&self, project: &str, id: &str) -> Option<SimServiceAccount> {
        let state = self.state();
        let project = state.project(project)?;
        project
            .accounts
            .iter()
            .find(|account| account.id == id)
            .map(|account| project.sim_account(account))
    }

    /// How many live service accounts, in any project, have a name containing `needle`.
    pub fn live_service_accounts_named_with(&self, needle: &str) -> usize {
        self.state()
            .projects
            .iter()
            .flat_map(|project| &project.accounts)
            .filter(|account| account.is_live() && account.name.contains(needle))
            .count()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}
