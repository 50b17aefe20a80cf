//! `keysmith run`: connect to the cluster, serve the probes, and stop cleanly on SIGTERM or SIGINT.

use std::future::Future;

use std::sync::Arc;

use kube::{Api, Client};
use tokio::net::TcpListener;
use tracing::info;

use crate::Error;
use crate::Result;
use crate::cli::RunArgs;
use crate::controller::{self, Context, DefaultProviderFactory, Scope, Settings};
use crate::leader;
use crate::metrics::Metrics;
use crate::server::{self, Readiness};
use keysmith_api::{ApiKey, ClusterModelHub, ModelHub};

/// Runs the operator until `shutdown` resolves.
///
/// The probe server starts before the cluster is contacted so that `/healthz` answers while a slow
/// API server is still being reached; `/readyz` turns `ok` only once the connection is verified.
pub async fn run(args: RunArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let readiness = Readiness::default();
    let metrics = Arc::new(Metrics::default());
    let listener = TcpListener::bind(args.health_addr)
        .await
        .map_err(|source| Error::BindHealth {
            addr: args.health_addr,
            source,
        })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    info!(addr = %local, "serving /healthz and /readyz");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(
        axum::serve(listener, server::router(readiness.clone(), metrics.clone()))
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );

    let work = async {
        let client = Client::try_default().await.map_err(Error::Connect)?;
        let version = client.apiserver_version().await.map_err(Error::ServerVersion)?;
        info!(
            server_version = %version.git_version,
            platform = %version.platform,
            "connected to Kubernetes"
        );
        let namespaces: Vec<String> = args
            .namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        // Fail fast with an install hint rather than letting the watches retry forever. The probe
        // lists where the operator is allowed to: with only Roles, a cluster-wide list is refused.
        let probe = kube::api::ListParams::default().limit(1);
        let (keys, hubs): (Api<ApiKey>, Api<ModelHub>) = match namespaces.first() {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        keys.list_metadata(&probe).await.map_err(Error::CrdsMissing)?;
        hubs.list_metadata(&probe).await.map_err(Error::CrdsMissing)?;
        Api::<ClusterModelHub>::all(client.clone())
            .list_metadata(&probe)
            .await
            .map_err(Error::CrdsMissing)?;
        let settings = Settings {
            default_usage_interval: args.usage_interval,
            cluster_resource_namespace: args.cluster_resource_namespace(),
            cluster_hub_selector: args.cluster_hub_selector.clone().filter(|s| !s.is_empty()),
            gateway: args.gateway(),
            ..Settings::default()
        };
        let ctx = Context::new(
            client,
            Arc::new(DefaultProviderFactory::default()),
            settings,
            metrics.clone(),
        );

        let scope = if namespaces.is_empty() {
            Scope::All
        } else {
            Scope::Namespaces(namespaces)
        };
        let lost = match &args.leader_election() {
            Some(config) => {
                // A standby is healthy and ready: it only waits. It turns not-ready while its caches
                // fill after winning the Lease.
                readiness.set(true);
                let lost = leader::acquire(ctx.client.clone(), config.clone()).await?;
                readiness.set(false);
                Some(lost)
            }
            None => None,
        };
        info!(?scope, concurrency = args.concurrency, "starting controllers");
        Ok::<_, Error>((ctx, scope, lost))
    };

    // One shutdown signal fans out to the connection attempt and the controllers. Shutdown wins over
    // a connection attempt that hangs, so SIGTERM always ends the process.
    let (down_tx, down_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = down_tx.send(true);
    });
    let stopped = move || {
        let mut rx = down_rx.clone();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    };
    let outcome = tokio::select! {
        res = work => match res {
            Ok((ctx, scope, lost)) => {
                let ready = readiness.clone();
                let (halt_tx, mut halt_rx) = tokio::sync::watch::channel(false);
                let lost_leadership = async move {
                    match lost {
                        Some(mut lost) => {
                            let _ = lost.wait_for(|l| *l).await;
                            true
                        }
                        None => std::future::pending().await,
                    }
                };
                let halt = async move {
                    let _ = halt_rx.wait_for(|h| *h).await;
                };
                let controllers = controller::run(ctx, scope, args.concurrency, halt, move || ready.set(true));
                tokio::pin!(controllers);
                tokio::select! {
                    () = &mut controllers => Ok(()),
                    () = stopped() => {
                        let _ = halt_tx.send(true);
                        controllers.await;
                        Ok(())
                    }
                    true = lost_leadership => {
                        // Stop at once, dropping in-flight reconciles mid-way (the create protocol is
                        // built to survive exactly that); the process exits and restarts as a standby.
                        drop(halt_tx);
                        Err(Error::LostLeadership)
                    }
                }
            }
            Err(err) => Err(err),
        },
        () = stopped() => Ok(()),
    };
    info!("shutting down");
    readiness.set(false);
    let _ = stop_tx.send(true);
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(Error::Serve(err)),
        Err(join) => return Err(Error::Serve(std::io::Error::other(join))),
    }
    outcome
}

/// Resolves on the first SIGTERM or SIGINT.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("received SIGTERM"),
            _ = int.recv() => info!("received SIGINT"),
        }
    })
}
