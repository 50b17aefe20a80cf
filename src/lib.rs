//! keysmith: a Kubernetes operator that declares the API keys of AI model providers as resources,
//! creates and limits them at the provider, delivers them as Secrets and reports spend and limits.
//!
//! The binary in `main.rs` only parses flags and hands over to this library, so integration tests
//! drive the same code paths users run.

pub mod cli;
pub mod controller;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod plugin;
pub mod run;
pub mod server;
pub mod telemetry;

pub use error::{Error, Result};
