//! The simulated OAuth2 token endpoint (`POST /token`): the JWT bearer grant for service accounts,
//! whose RS256 signature is checked with the account's public key, and the `refresh_token` grant for
//! user credentials. Errors use the OAuth2 shape, `{"error":"invalid_grant","error_description":..}`.

use std::collections::HashMap;

use axum::{
    Form, Json, Router,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header::HOST},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::json;

use super::{
    GoogleSim,
    state::{State as Project, Token},
};
use crate::{api_layer, sha256_hex, sim_core::never_creates};

/// The `grant_type` of the JWT bearer flow (RFC 7523), as Google's token endpoint requires it.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The full Cloud Platform scope, which the API Keys API needs to create, change and delete keys.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/token";

/// The read-only scope, enough for get, list, keyString and lookup.
pub const READ_ONLY_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform.read-only";

/// Longest assertion lifetime Google accepts.
const MAX_ASSERTION_LIFETIME: SignedDuration = SignedDuration::from_hours(1);

/// Clock skew tolerated on `iat`.
const SKEW: SignedDuration = SignedDuration::from_mins(5);

pub(super) fn routes(sim: GoogleSim) -> Router {
    let layer = sim.core.api_layer(
        |status, message| oauth_error(status, oauth_code(status), message),
        never_creates,
    );
    Router::new()
        .route(TOKEN_PATH, post(token))
        .layer(from_fn_with_state(layer, api_layer::guard))
        .with_state(sim)
}

fn oauth_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate_limit_exceeded",
        s if s >= 500 => "internal_failure",
        _ => "invalid_request",
    }
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

/// A refused grant: 400 `invalid_grant` unless said otherwise.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    description: String,
}

fn invalid_grant(description: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_grant",
        description: description.into(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        oauth_error(self.status, self.code, &self.description)
    }
}

async fn token(
    State(sim): State<GoogleSim>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(|_| Refusal {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        description: "the body must be application/x-www-form-urlencoded".into(),
    })?;
    let now = sim.core.clock.now();
    let mut state = sim.state(now);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let can_write = match field("grant_type") {
        JWT_BEARER => {
            // Google checks `aud` against its own token URI; here that is this endpoint's URL.
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let audience = format!("http://{host}{TOKEN_PATH}");
            // Real time, not the simulator clock: clients sign with their own clocks, and a test that
            // moves the simulator clock (to purge keys, say) must not lock them out.
            check_assertion(&state, field("assertion"), &audience, Timestamp::now())?
        }
        "refresh_token" => {
            check_refresh(
                &state,
                field("client_id"),
                field("client_secret"),
                field("refresh_token"),
            )?;
            true
        }
        "" => {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                description: "Missing required parameter: grant_type".into(),
            });
        }
        _ => {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "unsupported_grant_type",
                description: "Invalid grant_type.".into(),
            });
        }
    };
    let lifetime = state.token_lifetime_seconds;
    let access_token = format!("ya29.sim-{}", hex::encode(rand::random::<[u8; 32]>()));
    state.tokens.push(Token {
        hash: sha256_hex(&access_token),
        expires_at: now + SignedDuration::from_secs(lifetime),
        can_write,
    });
    Ok(
        Json(json!({ "access_token": access_token, "expires_in": lifetime, "token_type": "Bearer" }))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    aud: String,
    #[serde(default)]
    iat: i64,
    #[serde(default)]
    exp: i64,
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str, what: &str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid_grant(format!("Invalid JWT: the {what} is not base64url.")))?;
    serde_json::from_slice(&bytes).map_err(|_| invalid_grant(format!("Invalid JWT: the {what} is not JSON.")))
}

/// Checks a service account's assertion; returns whether its scope allows changes.
fn check_assertion(
    state: &Project,
    assertion: &str,
    audience: &str,
    now: Timestamp,
) -> Result<bool, Refusal> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        ));
    };
    let header: Header = decode_part(header, "header")?;
    if header.alg != "RS256" {
        return Err(invalid_grant("Invalid JWT: only RS256 is accepted."));
    }
    let claims_json: Claims = decode_part(claims, "claim set")?;
    let account = state
        .accounts
        .iter()
        .find(|a| a.email == claims_json.iss)
        .ok_or_else(|| invalid_grant("Invalid grant: account not found"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| invalid_grant("Invalid JWT Signature."))?;
    let signed = &assertion[..assertion.rfind('.').unwrap_or(0)];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &account.public_key_der)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| invalid_grant("Invalid JWT Signature."))?;
    if !account.enabled {
        return Err(invalid_grant("Invalid grant: account disabled"));
    }
    if claims_json.aud != audience {
        return Err(invalid_grant(format!("Invalid JWT: aud must be {audience}.")));
    }
    let at = |seconds: i64| Timestamp::from_second(seconds).unwrap_or(Timestamp::MIN);
    let (iat, exp) = (at(claims_json.iat), at(claims_json.exp));
    if exp <= now || iat > now + SKEW || exp <= iat || exp.duration_since(iat) > MAX_ASSERTION_LIFETIME {
        return Err(invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let scopes: Vec<&str> = claims_json.scope.split_whitespace().collect();
    if scopes.contains(&SCOPE) {
        Ok(true)
    } else if scopes.contains(&READ_ONLY_SCOPE) {
        Ok(false)
    } else {
        Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_scope",
            description: "Invalid OAuth scope or ID token audience provided.".into(),
        })
    }
}

fn check_refresh(state: &Project, client_id: &str, secret: &str, refresh_token: &str) -> Result<(), Refusal> {
    let credential = state
        .refresh_credentials
        .iter()
        .find(|c| c.client_id == client_id && c.client_secret_hash == sha256_hex(secret))
        .ok_or(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description: "The OAuth client was not found.".into(),
        })?;
    if credential.refresh_token_hash != sha256_hex(refresh_token) {
        return Err(invalid_grant("Bad Request"));
    }
    Ok(())
}
