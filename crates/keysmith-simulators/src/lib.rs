//! Faithful in-process simulators of the providers' key-management APIs, for tests and for
//! the `keysmith-sim` binary.
//!
//! Each simulator serves the provider's API under its real base path plus test hooks under `/_sim/`
//! (clock, faults, spend, request log, state inspection). The clock, fault queue and request log
//! are provider-neutral so that every simulator shares them.

pub mod aixplain;
pub mod anthropic;
pub mod api_layer;
pub mod digitalocean;
pub mod faults;
pub mod google;
pub mod openai;
pub mod openrouter;
pub mod request_log;
pub mod shared_hooks;
pub mod sim_core;
#[cfg(test)]
mod testing;
pub mod validate_only;

/// The simulators' adjustable clock, the same type the operator uses, so that an in-process test
/// moves both with one call.
pub use keysmith_core::clock;

use std::{future::Future, net::SocketAddr};

use axum::Router;
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, task::JoinHandle};
use tracing::warn;

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A simulator serving on a loopback port from a background task, which stops when this is dropped.
#[derive(Debug)]
pub struct RunningSim {
    /// The API base URL, e.g. `http://127.0.0.1:41234/api/v1`.
    pub base_url: String,
    /// The bound address; the test hooks live at `http://{addr}/_sim/...`.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RunningSim {
    /// Binds `127.0.0.1:0` and serves `router` there; `api_prefix` (e.g. `/api/v1`) completes
    /// [`RunningSim::base_url`].
    pub async fn start(router: Router, api_prefix: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                warn!(error = %err, "simulator stopped serving");
            }
        });
        Ok(Self {
            base_url: format!("http://{addr}{api_prefix}"),
            addr,
            task,
        })
    }

    /// The URL of the test hooks, e.g. `http://127.0.0.1:41234/_sim`.
    pub fn sim_url(&self) -> String {
        format!("http://{}/_sim", self.addr)
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Lower-case hex SHA-256 of `value`.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}
