//! OpenRouter's own test hooks under `/_sim/`: keys, spend and credits (the clock, faults and request
//! log are in [`crate::shared_hooks`]). They need no credentials, are not logged as API requests and
//! never reveal key values.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /_sim/keys` | | `{"keys": [SimKey]}`, deleted and disabled keys included |
//! | `POST /_sim/keys` | `{"value", "name"?, "management"?}` | 201 `{"hash"}` |
//! | `POST /_sim/keys/{hash}/spend` | [`Spend`] | `{"key": SimKey}`; 404 for unknown or deleted keys |
//! | `GET`, `POST /_sim/credits` | `{"totalCredits": n}` (POST) | `{"totalCredits": n}` |

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{OpenRouterSim, state::Spend};
use crate::shared_hooks::{HookError, parse};

pub(super) fn routes(sim: OpenRouterSim) -> Router {
    Router::new()
        .route("/_sim/keys", get(keys).post(add_key))
        .route("/_sim/keys/{hash}/spend", post(spend))
        .route("/_sim/credits", get(credits).post(set_credits))
        .with_state(sim)
}

async fn keys(State(sim): State<OpenRouterSim>) -> Json<Value> {
    Json(json!({ "keys": sim.keys() }))
}

/// Registers a key that exists "at the provider" without having been minted through the API.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddKey {
    value: String,
    name: Option<String>,
    #[serde(default)]
    management: bool,
}

async fn add_key(State(sim): State<OpenRouterSim>, body: Bytes) -> Result<Response, HookError> {
    let add: AddKey = parse(&body)?;
    let hash = if add.management {
        sim.add_management_key(&add.value)
    } else {
        sim.add_ordinary_key_named(&add.value, add.name.as_deref().unwrap_or(super::IMPORTED_NAME))
    };
    Ok((StatusCode::CREATED, Json(json!({ "hash": hash }))).into_response())
}

async fn spend(
    State(sim): State<OpenRouterSim>,
    Path(hash): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, HookError> {
    let spend: Spend = parse(&body)?;
    if !(spend.usd.is_finite() && spend.usd >= 0.0) {
        return Err(HookError::bad_request("usd must be a non-negative number"));
    }
    if !sim.record_spend(&hash, spend) {
        return Err(HookError::not_found("no live key with that hash"));
    }
    Ok(Json(json!({ "key": sim.key(&hash) })))
}

fn credits_json(sim: &OpenRouterSim) -> Json<Value> {
    Json(json!({ "totalCredits": sim.total_credits() }))
}

async fn credits(State(sim): State<OpenRouterSim>) -> Json<Value> {
    credits_json(&sim)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetCredits {
    total_credits: f64,
}

async fn set_credits(State(sim): State<OpenRouterSim>, body: Bytes) -> Result<Json<Value>, HookError> {
    let SetCredits { total_credits } = parse(&body)?;
    if !total_credits.is_finite() {
        return Err(HookError::bad_request("totalCredits must be a finite number"));
    }
    sim.set_total_credits(total_credits);
    Ok(credits_json(&sim))
}
