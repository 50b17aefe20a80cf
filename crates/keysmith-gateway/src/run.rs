//! Running the gateway process: logging, listeners, the route source, shutdown.

use std::{future::Future, sync::Arc};

use keysmith_core::Clock;
use tokio::net::TcpListener;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{
    Error, Gateway,
    cli::{Cli, LogFormat},
    counters::MemoryCounters,
    kube_routes::KubeRoutes,
    metrics::Metrics,
    routes::{RouteSource, RouteTable, StaticRoutes},
};

/// Installs the global tracing subscriber; `RUST_LOG` wins over `level`.
pub fn init_logging(level: &str, format: LogFormat) -> Result<(), Error> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => env,
        _ => level.to_owned(),
    };
    let filter = EnvFilter::try_new(&filter).map_err(|source| Error::LogFilter { filter, source })?;
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init(),
    };
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    })
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    use axum::serve::ListenerExt;
    // Small writes (a response's last chunk, SSE events) must not wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Runs the gateway: routes from the Secret watch (or a routes file), in-memory counters.
pub async fn run(cli: Cli, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new());
    let table = Arc::new(RouteTable::new(Some(metrics.clone())));
    let gateway = Gateway::new(
        cli.gateway_config(),
        table.clone(),
        Arc::new(MemoryCounters::new()),
        Clock::new(),
        metrics,
    )?;
    let source: Box<dyn RouteSource> = match &cli.routes_file {
        Some(path) => {
            tracing::info!(path = %path.display(), listen = %cli.listen, "keysmith-gateway starting with a routes file");
            Box::new(StaticRoutes::from_file(path)?)
        }
        None => {
            let client = kube::Client::try_default().await.map_err(Error::Kube)?;
            let namespace = cli.namespace();
            tracing::info!(%namespace, listen = %cli.listen, metrics = %cli.metrics_addr, "keysmith-gateway starting");
            Box::new(KubeRoutes::new(client, namespace))
        }
    };
    let watch = tokio::spawn(source.run(table));
    let proxy = bind(cli.listen).await?;
    let admin = bind(cli.metrics_addr).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin_task = tokio::spawn(serve(admin, gateway.admin_router(), stopped(stop_rx.clone())));
    let proxy_task = tokio::spawn(serve(proxy, gateway.proxy_router(), stopped(stop_rx)));
    shutdown.await;
    let _ = stop_tx.send(true);
    watch.abort();
    for task in [proxy_task, admin_task] {
        if let Ok(Err(err)) = task.await {
            return Err(err);
        }
    }
    Ok(())
}
