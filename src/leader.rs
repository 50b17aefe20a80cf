//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas can run and only
//! one of them reconciles (and writes). Updates use the Lease's resourceVersion: two candidates that
//! race for an expired Lease cannot both win.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;
use tracing::{info, warn};

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This process's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease stays valid without renewal; a standby takes over after this.
    pub duration: Duration,
    /// How often the leader renews (at least 5 s, to spare the API server).
    pub renew_interval: Duration,
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Lease could not be read or written.
    #[error("cannot read or write Lease {namespace}/{name}")]
    Kube {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What the candidate should do with a Lease as it stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take it (it is free, expired, or already ours).
    Take,
    /// Someone else holds it until about then.
    Wait(Timestamp),
}

/// Pure decision on an observed Lease.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else { return Decision::Take };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return Decision::Take;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let expires = renewed + SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    if expires <= now {
        Decision::Take
    } else {
        Decision::Wait(expires)
    }
}

/// Waits until this process leads, then keeps renewing in the background. The returned receiver
/// turns `true` if leadership is lost; the caller must then stop reconciling.
pub async fn acquire(client: Client, config: LeaseConfig) -> Result<watch::Receiver<bool>, Error> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let kube_err = |source| Error::Kube {
        namespace: config.namespace.clone(),
        name: config.name.clone(),
        source,
    };
    loop {
        let now = Timestamp::now();
        let current = api.get_opt(&config.name).await.map_err(kube_err)?;
        match decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &config.identity,
            now,
        ) {
            Decision::Take => {
                if try_take(&api, &config, current, now).await.map_err(kube_err)? {
                    info!(lease = %config.name, identity = %config.identity, "acquired leadership");
                    break;
                }
            }
            Decision::Wait(until) => {
                let wait = until
                    .duration_since(now)
                    .unsigned_abs()
                    .min(config.renew_interval);
                info!(lease = %config.name, "another replica leads; standing by");
                tokio::time::sleep(wait.max(Duration::from_millis(500))).await;
            }
        }
    }
    let (lost_tx, lost_rx) = watch::channel(false);
    tokio::spawn(async move {
        // Give up well before a standby may take over (at renewTime + duration): the deadline counts
        // from before the last successful request was sent, and every call is bounded in time.
        let deadline = config.duration * 2 / 3;
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(config.renew_interval).await;
            let attempt = tokio::time::Instant::now();
            let bound = deadline
                .saturating_sub(last_renewal.elapsed())
                .max(Duration::from_millis(100));
            let renewed = tokio::time::timeout(bound, async {
                match api.get_opt(&config.name).await {
                    Ok(current) => {
                        let ours = current
                            .as_ref()
                            .and_then(|l| l.spec.as_ref())
                            .and_then(|s| s.holder_identity.as_deref())
                            == Some(config.identity.as_str());
                        if !ours {
                            return Err(());
                        }
                        Ok(try_take(&api, &config, current, Timestamp::now())
                            .await
                            .unwrap_or(false))
                    }
                    Err(err) => {
                        warn!(error = %err, "cannot renew the Lease");
                        Ok(false)
                    }
                }
            })
            .await;
            match renewed {
                Ok(Err(())) => {
                    warn!(lease = %config.name, "leadership taken by another replica");
                    let _ = lost_tx.send(true);
                    return;
                }
                Ok(Ok(true)) => last_renewal = attempt,
                Ok(Ok(false)) | Err(_) => {}
            }
            if last_renewal.elapsed() >= deadline {
                // Others may take over soon: stop before two leaders write.
                warn!(lease = %config.name, "could not renew the Lease in time; giving up leadership");
                let _ = lost_tx.send(true);
                return;
            }
        }
    });
    Ok(lost_rx)
}

/// Creates or updates the Lease in our name; `false` when another writer won the race.
async fn try_take(
    api: &Api<Lease>,
    config: &LeaseConfig,
    current: Option<Lease>,
    now: Timestamp,
) -> Result<bool, kube::Error> {
    let ours_already = current
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.holder_identity.as_deref())
        == Some(config.identity.as_str());
    let previous = current.as_ref().and_then(|l| l.spec.clone()).unwrap_or_default();
    let spec = LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if ours_already {
            previous.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(
            previous.lease_transitions.unwrap_or(0) + i32::from(!ours_already && current.is_some()),
        ),
        ..Default::default()
    };
    let result = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            // resourceVersion stays set: the update fails with 409 if anyone wrote in between.
            lease.spec = Some(spec);
            api.replace(&config.name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_free_or_own_lease_is_taken() {
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(decide(None, "a", now), Decision::Take);
        assert_eq!(
            decide(Some(&spec("", "2026-01-01T00:00:09Z", 15)), "a", now),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&spec("a", "2026-01-01T00:00:09Z", 15)), "a", now),
            Decision::Take
        );
    }

    #[test]
    fn another_holder_is_respected_until_the_lease_expires() {
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let held = spec("b", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&held), "a", now),
            Decision::Wait("2026-01-01T00:00:15Z".parse().unwrap())
        );
        let later: Timestamp = "2026-01-01T00:00:15Z".parse().unwrap();
        assert_eq!(decide(Some(&held), "a", later), Decision::Take);
    }
}
