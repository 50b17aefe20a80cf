//! Rolling the workloads of `spec.rotation.restartTargets` once per new key: one pod-template
//! annotation change each, so their pods read the new value without a restart storm.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tracing::info;

use super::{Context, Error};
use crate::plan::{self, RestartPlan};
use keysmith_api::well_known::RESTARTED_FOR_ANNOTATION;
use keysmith_api::{ApiKey, ApiKeyStatus, RestartTarget, WorkloadKind, reasons::Reason};
use kube::runtime::events::EventType;

/// Carries out [`plan::restart_plan`]. A missing workload or a missing permission is reported as a
/// Warning Event and not retried (the next rotation tries again); other API failures are retried.
pub async fn restart_targets(
    key: &ApiKey,
    ctx: &Context,
    ns: &str,
    status: &mut ApiKeyStatus,
) -> Result<(), Error> {
    let fingerprint = match plan::restart_plan(key, status) {
        RestartPlan::Nothing => return Ok(()),
        RestartPlan::Remember(fingerprint) => fingerprint,
        RestartPlan::Restart(fingerprint) => {
            let targets = key
                .spec
                .rotation
                .as_ref()
                .map(|r| r.restart_targets.clone())
                .unwrap_or_default();
            for target in &targets {
                match patch(&ctx.client, ns, target, &fingerprint).await {
                    Ok(()) => {
                        info!(kind = ?target.kind, workload = %target.name, "restarted for the new key");
                        let note = format!(
                            "{:?} {} restarted to pick up the new key",
                            target.kind, target.name
                        );
                        ctx.event(
                            key,
                            EventType::Normal,
                            Reason::WorkloadRestarted.as_str(),
                            "Restart",
                            note,
                        )
                        .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {
                        let why = if e.code == 404 {
                            "does not exist"
                        } else {
                            "cannot be patched by keysmith (enable the Helm value restartTargets.enabled)"
                        };
                        let note = format!("{:?} {} {why}; it was not restarted", target.kind, target.name);
                        ctx.event(
                            key,
                            EventType::Warning,
                            Reason::RestartFailed.as_str(),
                            "Restart",
                            note,
                        )
                        .await;
                    }
                    Err(source) => {
                        return Err(Error::Kube {
                            context: "patch a restart target",
                            source,
                        });
                    }
                }
            }
            fingerprint
        }
    };
    status.rotation.get_or_insert_with(Default::default).restarted_for = Some(fingerprint);
    Ok(())
}

/// A merge patch of one pod-template annotation. Unlike an apply, it never creates a missing workload
/// and takes no ownership of the workload's other fields.
async fn patch(
    client: &Client,
    ns: &str,
    target: &RestartTarget,
    fingerprint: &str,
) -> Result<(), kube::Error> {
    let body =
        json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_FOR_ANNOTATION: fingerprint}}}}});
    let params = PatchParams::default();
    let patch = Patch::Merge(&body);
    match target.kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), ns)
                .patch(&target.name, &params, &patch)
                .await?;
        }
        WorkloadKind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), ns)
                .patch(&target.name, &params, &patch)
                .await?;
        }
        WorkloadKind::DaemonSet => {
            Api::<DaemonSet>::namespaced(client.clone(), ns)
                .patch(&target.name, &params, &patch)
                .await?;
        }
    }
    Ok(())
}
