//! `kubectl keysmith`: the same binary, installed (or linked) as `kubectl-keysmith` on the PATH,
//! answers `kubectl keysmith status` and `kubectl keysmith usage` with what a person on call wants
//! at a glance. Rendering is pure; only `run` talks to the cluster.

use clap::{Parser, Subcommand};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};

use keysmith_api::{ApiKey, ClusterModelHub, ModelHub, conditions};

/// kubectl keysmith: hubs and keys at a glance.
#[derive(Debug, Parser)]
#[command(name = "kubectl keysmith", version, about)]
pub struct PluginCli {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Hubs and keys: readiness with its reason, spend against the limit, window reset, expiry.
    Status,
    /// Spend of each key in every window the provider reports; with `--hub`, a ClusterModelHub's figures
    /// per namespace.
    Usage {
        /// Only this ApiKey.
        name: Option<String>,
        /// A ClusterModelHub: keys, allocated budget, spend, refusals and overruns per namespace.
        #[arg(long, conflicts_with = "name")]
        hub: Option<String>,
    },
    /// Rotate a key now: a new key goes into the Secret, the old one stays valid for the overlap.
    Rotate {
        /// The ApiKey.
        name: String,
    },
}

/// Errors of the plugin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cluster connection.
    #[error("cannot connect to the cluster")]
    Connect(#[source] kube::Error),
    /// Listing or annotating failed.
    #[error("cannot read or annotate {0} (are the keysmith CRDs installed, and does the ApiKey exist?)")]
    List(&'static str, #[source] kube::Error),
}

/// Runs a plugin command and returns the text to print.
pub async fn run(cli: PluginCli) -> Result<String, Error> {
    let client = Client::try_default().await.map_err(Error::Connect)?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let (hubs, keys): (Api<ModelHub>, Api<ApiKey>) = if cli.all_namespaces {
        (Api::all(client.clone()), Api::all(client))
    } else {
        (Api::namespaced(client.clone(), &ns), Api::namespaced(client, &ns))
    };
    if let PluginCommand::Rotate { name } = &cli.command {
        // A fresh token per request: the controller rotates once per distinct value.
        let token = jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({"metadata": {"annotations": {keysmith_api::well_known::ROTATE_ANNOTATION: token}}});
        keys.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::List("apikeys", e))?;
        return Ok(format!("apikey/{name} rotation requested ({token})\n"));
    }
    if let PluginCommand::Usage { hub: Some(hub), .. } = &cli.command {
        let hub = Api::<ClusterModelHub>::all(keys.into_client())
            .get(hub)
            .await
            .map_err(|e| Error::List("clustermodelhubs", e))?;
        return Ok(render_hub_namespaces(&hub));
    }
    let lp = ListParams::default();
    let mut keys = keys.list(&lp).await.map_err(|e| Error::List("apikeys", e))?.items;
    keys.sort_by_key(|k| (k.namespace(), k.name_any()));
    Ok(match cli.command {
        PluginCommand::Status => {
            let mut hubs = hubs
                .list(&lp)
                .await
                .map_err(|e| Error::List("modelhubs", e))?
                .items;
            hubs.sort_by_key(|h| (h.namespace(), h.name_any()));
            format!("{}\n{}", render_hubs(&hubs), render_keys(&keys))
        }
        PluginCommand::Usage { name, .. } => {
            keys.retain(|k| name.as_ref().is_none_or(|n| *n == k.name_any()));
            render_usage(&keys)
        }
        PluginCommand::Rotate { .. } => String::new(),
    })
}

fn ready(conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> (String, String) {
    conditions::get(conds, conditions::READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_else(|| ("Unknown".into(), "Pending".into()))
}

fn usd(v: Option<f64>) -> String {
    v.map(|v| format!("${v:.2}")).unwrap_or_else(|| "-".into())
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("   ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n") + "\n"
}

/// The hubs table.
pub fn render_hubs(hubs: &[ModelHub]) -> String {
    let rows = hubs
        .iter()
        .map(|h| {
            let status = h.status.clone().unwrap_or_default();
            let (ready, reason) = ready(&status.conditions);
            let keys = status.keys.unwrap_or_default();
            vec![
                h.namespace().unwrap_or_default(),
                h.name_any(),
                h.spec.provider.as_str().to_owned(),
                ready,
                reason,
                keys.managed.to_string(),
                keys.orphaned.to_string(),
                usd(status.account.and_then(|a| a.credits_remaining_usd)),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "HUB",
            "PROVIDER",
            "READY",
            "REASON",
            "KEYS",
            "ORPHANED",
            "CREDITS LEFT",
        ],
        rows,
    )
}

/// The keys table.
pub fn render_keys(keys: &[ApiKey]) -> String {
    let rows = keys
        .iter()
        .map(|k| {
            let status = k.status.clone().unwrap_or_default();
            let (ready, reason) = ready(&status.conditions);
            let usage = status.usage.clone().unwrap_or_default();
            let limit = status.effective_limits.as_ref().and_then(|l| l.budget.as_ref());
            let exceeded = conditions::is_true(&status.conditions, conditions::LIMIT_EXCEEDED);
            vec![
                k.namespace().unwrap_or_default(),
                k.name_any(),
                k.spec.hub_ref.name.clone(),
                ready,
                reason,
                format!(
                    "{} / {}{}",
                    usd(usage.current_usd),
                    usd(limit.map(|b| b.limit_usd)),
                    if exceeded { " (exceeded)" } else { "" }
                ),
                usage
                    .window_resets_at
                    .map_or_else(|| "-".into(), |t| t.to_string()),
                status.expires_at.map_or_else(|| "-".into(), |t| t.to_string()),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "APIKEY",
            "HUB",
            "READY",
            "REASON",
            "SPEND / LIMIT",
            "RESETS",
            "EXPIRES",
        ],
        rows,
    )
}

/// The usage table.
pub fn render_usage(keys: &[ApiKey]) -> String {
    let rows = keys
        .iter()
        .map(|k| {
            let u = k
                .status
                .as_ref()
                .and_then(|s| s.usage.clone())
                .unwrap_or_default();
            vec![
                k.namespace().unwrap_or_default(),
                k.name_any(),
                usd(u.total_usd),
                usd(u.daily_usd),
                usd(u.weekly_usd),
                usd(u.monthly_usd),
                usd(u.remaining_usd),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "APIKEY",
            "TOTAL",
            "TODAY",
            "THIS WEEK",
            "THIS MONTH",
            "REMAINING",
        ],
        rows,
    )
}

/// A ClusterModelHub's use per namespace.
pub fn render_hub_namespaces(hub: &ClusterModelHub) -> String {
    let status = hub.status.clone().unwrap_or_default();
    let budget = hub.spec.quota.as_ref().and_then(|q| q.budget_usd.as_ref());
    let max_keys = hub.spec.quota.as_ref().and_then(|q| q.max_keys);
    let rows = status
        .namespaces
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                if n.allowed { "yes" } else { "no" }.to_owned(),
                match max_keys {
                    Some(max) => format!("{} / {max}", n.keys),
                    None => n.keys.to_string(),
                },
                n.refused.to_string(),
                match budget {
                    Some(b) => format!("{} / {}", usd(Some(n.allocated_budget_usd)), usd(Some(b.limit))),
                    None => usd(Some(n.allocated_budget_usd)),
                },
                usd(n.spend_usd),
                n.overrun.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "ALLOWED",
            "KEYS",
            "REFUSED",
            "ALLOCATED",
            "SPEND",
            "OVER QUOTA",
        ],
        rows,
    )
}

/// Whether the process was started as the kubectl plugin.
pub fn invoked_as_plugin(argv0: &str) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "kubectl-keysmith")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keysmith_api::{ApiKeySpec, ApiKeyStatus, Usage};

    fn key(name: &str, status: Option<ApiKeyStatus>) -> ApiKey {
        let spec: ApiKeySpec = serde_json::from_value(serde_json::json!({"hubRef": {"name": "or"}})).unwrap();
        let mut k = ApiKey::new(name, spec);
        k.metadata.namespace = Some("team-a".into());
        k.status = status;
        k
    }

    #[test]
    fn the_keys_table_shows_spend_against_limit_and_the_reason() {
        let mut status = ApiKeyStatus {
            usage: Some(Usage {
                current_usd: Some(3.5),
                window_resets_at: Some("2026-12-01T00:00:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH);
        conditions::set(
            &mut status.conditions,
            conditions::READY,
            true,
            "KeyReady",
            "ok",
            Some(1),
            &now,
        );
        conditions::set(
            &mut status.conditions,
            conditions::LIMIT_EXCEEDED,
            true,
            "BudgetExceeded",
            "x",
            Some(1),
            &now,
        );
        let text = render_keys(&[key("chat", Some(status)), key("new", None)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE"));
        assert!(lines[1].contains("chat") && lines[1].contains("KeyReady"));
        assert!(lines[1].contains("$3.50 / - (exceeded)"), "{text}");
        assert!(lines[1].contains("2026-12-01T00:00:00Z"));
        assert!(lines[2].contains("Unknown") && lines[2].contains("Pending"));
    }

    #[test]
    fn the_usage_table_lists_every_window() {
        let status = ApiKeyStatus {
            usage: Some(Usage {
                total_usd: Some(10.0),
                daily_usd: Some(1.0),
                weekly_usd: Some(2.0),
                monthly_usd: Some(3.0),
                remaining_usd: Some(7.0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render_usage(&[key("chat", Some(status))]);
        assert!(text.lines().nth(1).unwrap().contains("$10.00   $1.00"), "{text}");
    }

    #[test]
    fn the_hub_usage_table_shows_each_namespace_against_its_quota() {
        let hub: ClusterModelHub = serde_json::from_value(serde_json::json!({
            "apiVersion": "keysmith.dev/v1alpha1", "kind": "ClusterModelHub",
            "metadata": {"name": "org"},
            "spec": {
                "provider": "openrouter",
                "allowedNamespaces": {"names": ["team-a"]},
                "quota": {"maxKeys": 10, "budgetUsd": {"limit": 500}},
            },
            "status": {"namespaces": [
                {"name": "team-a", "allowed": true, "keys": 3, "allocatedBudgetUsd": 120.0, "spendUsd": 41.5},
                {"name": "team-b", "allowed": false, "keys": 0, "refused": 2, "allocatedBudgetUsd": 0.0},
            ]},
        }))
        .unwrap();
        let text = render_hub_namespaces(&hub);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains("team-a") && lines[1].contains("3 / 10"),
            "{text}"
        );
        assert!(
            lines[1].contains("$120.00 / $500.00") && lines[1].contains("$41.50"),
            "{text}"
        );
        assert!(lines[2].contains("team-b") && lines[2].contains("no"), "{text}");
    }

    #[test]
    fn the_plugin_is_recognised_by_its_file_name() {
        assert!(invoked_as_plugin("/usr/local/bin/kubectl-keysmith"));
        assert!(!invoked_as_plugin("/usr/local/bin/keysmith"));
    }
}
