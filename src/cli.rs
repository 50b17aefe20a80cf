//! Command-line interface. Every flag can also be set through the environment variable named in
//! its help, which is how the Helm chart configures the Deployment.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

/// keysmith: declare AI model-provider API keys as Kubernetes resources.
#[derive(Debug, Parser)]
#[command(name = "keysmith", version, about, long_about = None)]
pub struct Cli {
    /// Log verbosity, as a tracing filter (`info`, `keysmith=debug,kube=info`, ...). `RUST_LOG` wins when set.
    #[arg(long, env = "KEYSMITH_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,

    /// Log line format.
    #[arg(long, env = "KEYSMITH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster in KUBECONFIG (or the in-cluster configuration).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds), for `kubectl apply -f -`.
    Crds,
}

/// Flags of `keysmith run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the HTTP server for `/healthz` (process alive) and `/readyz` (connected and serving).
    #[arg(long, env = "KEYSMITH_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    pub health_addr: SocketAddr,
    /// Watch only these namespaces (comma-separated; the operator then needs Roles there only). All
    /// namespaces when unset.
    #[arg(long = "namespace", env = "KEYSMITH_NAMESPACE", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// How many objects of each kind are reconciled at once.
    #[arg(long, env = "KEYSMITH_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Usage polling interval for hubs that do not set `spec.usageRefreshInterval` (e.g. `5m`).
    #[arg(long, env = "KEYSMITH_USAGE_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub usage_interval: std::time::Duration,
    /// The operator's own namespace: ClusterModelHubs read their credential Secrets here and nowhere
    /// else. Default: the pod's namespace, or `keysmith-system` outside a cluster.
    #[arg(long, env = "KEYSMITH_CLUSTER_RESOURCE_NAMESPACE")]
    pub cluster_resource_namespace: Option<String>,
    /// Reconcile only the ClusterModelHubs matching this label selector (e.g. `keysmith.dev/shard=a`),
    /// so that several keysmith installations can share a cluster. All when unset.
    #[arg(long, env = "KEYSMITH_CLUSTER_HUB_SELECTOR")]
    pub cluster_hub_selector: Option<String>,
    /// keysmith-gateway's URL as apps reach it (e.g. `http://keysmith-gateway.keysmith-system:8080`).
    /// ApiKeys with `delivery: Gateway` need it; without it they are refused with a condition.
    #[arg(long, env = "KEYSMITH_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Namespace of the gateway's route Secrets (default: the operator's own namespace, see
    /// `--cluster-resource-namespace`).
    #[arg(long, env = "KEYSMITH_GATEWAY_NAMESPACE")]
    pub gateway_namespace: Option<String>,
    /// Where the gateway reports metered usage (default: the gateway URL's host on port 9090, path
    /// `/usage`).
    #[arg(long, env = "KEYSMITH_GATEWAY_USAGE_URL")]
    pub gateway_usage_url: Option<String>,
    /// Elect one leader among replicas with a Lease; only the leader reconciles.
    #[arg(long, env = "KEYSMITH_LEADER_ELECTION", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "KEYSMITH_LEASE_NAME", default_value = "keysmith")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, or `default` outside a cluster).
    #[arg(long, env = "KEYSMITH_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long the Lease is valid without renewal; a standby takes over after this.
    #[arg(long, env = "KEYSMITH_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: std::time::Duration,
    /// How often the leader renews the Lease (at least 5s, shorter than the duration).
    #[arg(long, env = "KEYSMITH_LEASE_RENEW_INTERVAL", default_value = "5s", value_parser = parse_renew_interval)]
    pub lease_renew_interval: std::time::Duration,
}

impl RunArgs {
    /// Leader election settings, when enabled.
    pub fn leader_election(&self) -> Option<crate::leader::LeaseConfig> {
        self.leader_election.then(|| crate::leader::LeaseConfig {
            name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone().unwrap_or_else(in_cluster_namespace),
            identity: std::env::var("POD_NAME")
                .ok()
                .filter(|n| !n.is_empty())
                // Outside a pod: unique per process even when every container runs as pid 1.
                .unwrap_or_else(|| format!("keysmith-{:016x}", rand::random::<u64>())),
            duration: self.lease_duration,
            renew_interval: self.lease_renew_interval,
        })
    }
}

impl RunArgs {
    /// keysmith-gateway's settings, when a gateway URL is given.
    pub fn gateway(&self) -> Option<crate::plan::gateway::GatewaySettings> {
        let url = self.gateway_url.clone().filter(|u| !u.is_empty())?;
        let usage_url = self
            .gateway_usage_url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| default_usage_url(&url));
        Some(crate::plan::gateway::GatewaySettings {
            namespace: self
                .gateway_namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.cluster_resource_namespace()),
            url,
            usage_url,
        })
    }

    /// Where ClusterModelHubs' credential Secrets live.
    pub fn cluster_resource_namespace(&self) -> String {
        self.cluster_resource_namespace
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(pod_namespace)
            .unwrap_or_else(|| "keysmith-system".to_owned())
    }
}

/// The namespace of the pod's ServiceAccount, or `default` outside a cluster.
fn in_cluster_namespace() -> String {
    pod_namespace().unwrap_or_else(|| "default".to_owned())
}

/// The namespace of the pod's ServiceAccount, when running in a pod.
fn pod_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
}

fn parse_renew_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(text)?;
    // Renewing more often than every 5 s would only load the API server.
    if d < std::time::Duration::from_secs(5) {
        return Err(format!("{text:?} is shorter than 5s"));
    }
    Ok(d)
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    keysmith_core::duration::parse(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 30s, 5m or 1h"))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for terminals.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The gateway's admin listener (port 9090, as the chart runs it) on the host of `url`.
fn default_usage_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next().filter(|a| !a.is_empty())?;
    let host = match authority.rsplit_once(':') {
        // `[::1]:8080` or `host:8080`; a bare `[::1]` has its last colon inside the brackets.
        Some((host, port)) if !port.contains(']') && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    Some(format!("{scheme}://{host}:9090/usage"))
}

#[cfg(test)]
mod gateway_flag_tests {
    use super::default_usage_url;

    #[test]
    fn the_usage_url_defaults_to_port_9090_on_the_gateways_host() {
        assert_eq!(
            default_usage_url("http://keysmith-gateway.keysmith-system:8080").as_deref(),
            Some("http://keysmith-gateway.keysmith-system:9090/usage")
        );
        assert_eq!(
            default_usage_url("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:9090/usage")
        );
        assert_eq!(
            default_usage_url("http://[::1]").as_deref(),
            Some("http://[::1]:9090/usage")
        );
        assert_eq!(default_usage_url("gw:8080"), None);
    }
}
