//! keysmith-gateway: the data plane that enforces an ApiKey's limits on every request.
//!
//! Apps call the gateway with a key keysmith issued; the gateway finds the key's route (written by the
//! operator as a Secret), judges the request against per-request caps and the key's windows, reserves
//! the worst case, forwards it with the provider key, relays the answer chunk by chunk and settles the
//! reservation with the usage the provider reports. `/usage` gives the operator the figures for
//! `status.usage`.

pub mod auth;
pub mod cli;
pub mod counters;
pub mod enforce;
mod error;
pub mod kube_routes;
pub mod ledger;
pub mod metrics;
pub mod provider_error;
mod proxy;
mod relay;
pub mod request;
pub mod routes;
pub mod run;
pub mod server;
mod sse_filter;
pub mod tokens;
pub mod usage;
pub mod windows;

pub use error::Error;
pub use server::{Gateway, GatewayConfig};
