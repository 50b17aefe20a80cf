//! Counting writes two ways.
//!
//! 1. **Requests** (the figure the benchmark reports): the API server's own counter
//!    `apiserver_request_total`, read from `/metrics` before and after a window and summed over the
//!    write verbs (POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION) by resource. Every write request
//!    counts, including ones that changed nothing or failed. The counter has no client label, so a
//!    window must hold only the writer being measured: the benchmark subtracts its own requests (it
//!    counts them), waits for the previous namespace to be gone before starting a phase, and leaves
//!    out Namespaces and what the API server writes by itself every few seconds (Leases, Endpoints
//!    and EndpointSlices of the `kubernetes` Service), none of which keysmith ever writes.
//! 2. **Changes** (a cross-check): a watch on the phase's namespace counts each new resourceVersion
//!    of an ApiKey (metadata or status), Secret, Event or the ModelHub's status. A request that
//!    changed nothing appears in 1 but not here.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Secret};
use keysmith_api::{ApiKey, ModelHub, conditions};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{sync::watch, task::JoinHandle};

use crate::Result;

/// Write verbs counted. DELETECOLLECTION is left out: keysmith never sends it, while the namespace
/// controller sends one per resource type for every namespace being deleted (a test run's leftovers
/// would otherwise count as the operator's writes).
const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];

/// Requests served by the API server, keyed by `resource[/subresource]` (writes) or
/// `VERB resource[/subresource]` (reads).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Requests(pub BTreeMap<String, u64>);

impl Requests {
    /// Reads the API server's counters now: (write requests, read requests). Reads (GET and LIST,
    /// keyed `VERB resource`) are not a target, only a clue to where the time goes.
    pub async fn scrape(client: &Client) -> Result<(Self, Self)> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let text = client.request_text(request).await?;
        let (mut writes, mut reads) = (BTreeMap::new(), BTreeMap::new());
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let labels = parse_labels(labels);
            let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or_default();
            let resource = match (label("resource"), label("subresource")) {
                // Not keysmith's: the API server's own heartbeats (Leases, the `kubernetes` Service's
                // Endpoints) and the benchmark's namespaces.
                ("", _) | ("leases" | "endpoints" | "endpointslices" | "namespaces", _) => continue,
                (r, "") => r.to_owned(),
                (r, s) => format!("{r}/{s}"),
            };
            let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
            let verb = label("verb");
            if WRITE_VERBS.contains(&verb) {
                *writes.entry(resource).or_insert(0) += n;
            } else if verb == "GET" || verb == "LIST" {
                *reads.entry(format!("{verb} {resource}")).or_insert(0) += n;
            }
        }
        Ok((Self(writes), Self(reads)))
    }

    /// What was served between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(*before.0.get(k).unwrap_or(&0))))
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }

    /// Removes `n` requests the benchmark itself sent to `resource`.
    pub fn minus(mut self, resource: &str, n: u64) -> Self {
        if let Some(v) = self.0.get_mut(resource) {
            *v = v.saturating_sub(n);
        }
        self.0.retain(|_, v| *v > 0);
        self
    }

    pub fn get(&self, resource: &str) -> u64 {
        self.0.get(resource).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests to resources other than the four an ApiKey's convergence touches.
    pub fn other(&self) -> u64 {
        self.total()
            - ["apikeys", "apikeys/status", "secrets", "events"]
                .iter()
                .map(|r| self.get(r))
                .sum::<u64>()
    }

    /// `resource=n` pairs, for the notes.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn parse_labels(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        out.insert(key.trim_start_matches(',').to_owned(), after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

/// Changes seen by the namespace watch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New resourceVersions of ApiKeys with the same status (finalizer, labels, annotations).
    pub apikey_metadata: u64,
    /// New resourceVersions of ApiKeys with a different status.
    pub apikey_status: u64,
    /// Secrets created or changed, the hub's credentials excepted.
    pub secrets: u64,
    /// Events created or changed.
    pub events: u64,
    /// ModelHub status changes.
    pub hub_status: u64,
}

impl Changes {
    pub fn total(&self) -> u64 {
        self.apikey_metadata + self.apikey_status + self.secrets + self.events + self.hub_status
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            apikey_metadata: self.apikey_metadata - before.apikey_metadata,
            apikey_status: self.apikey_status - before.apikey_status,
            secrets: self.secrets - before.secrets,
            events: self.events - before.events,
            hub_status: self.hub_status - before.hub_status,
        }
    }
}

#[derive(Default)]
struct Seen {
    /// ApiKey name → (resourceVersion, hash of the status, Ready).
    keys: HashMap<String, (String, u64, bool)>,
    /// Other objects: kind/name → resourceVersion.
    others: HashMap<String, String>,
    changes: Changes,
    ready: usize,
}

/// Watches one namespace: which ApiKeys are Ready, and what changed.
pub struct NsWatch {
    seen: Arc<Mutex<Seen>>,
    ready: watch::Receiver<usize>,
    tasks: Vec<JoinHandle<()>>,
}

fn hash_of<T: serde::Serialize>(value: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value).unwrap_or_default().hash(&mut h);
    h.finish()
}

impl NsWatch {
    /// Starts the watches and returns once each has listed the namespace.
    pub async fn start(client: &Client, ns: &str, credentials: &str) -> Result<Self> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ready_tx, ready) = watch::channel(0usize);
        let ready_tx = Arc::new(ready_tx);
        let mut tasks = Vec::new();
        let mut synced = Vec::new();

        let key_seen = seen.clone();
        let on_key = move |key: ApiKey| {
            let mut s = key_seen.lock().unwrap_or_else(|p| p.into_inner());
            let rv = key.resource_version().unwrap_or_default();
            let status = hash_of(&key.status);
            let is_ready = key
                .status
                .as_ref()
                .is_some_and(|st| conditions::is_true(&st.conditions, conditions::READY));
            let previous = s.keys.insert(key.name_any(), (rv.clone(), status, is_ready));
            match previous {
                Some((old_rv, _, _)) if old_rv == rv => {}
                Some((_, old_status, was_ready)) => {
                    if old_status == status {
                        s.changes.apikey_metadata += 1;
                    } else {
                        s.changes.apikey_status += 1;
                    }
                    match (was_ready, is_ready) {
                        (false, true) => s.ready += 1,
                        (true, false) => s.ready -= 1,
                        _ => {}
                    }
                }
                None => s.ready += usize::from(is_ready),
            }
            let _ = ready_tx.send(s.ready);
        };
        let (task, rx) = spawn_watch(Api::<ApiKey>::namespaced(client.clone(), ns), on_key);
        tasks.push(task);
        synced.push(rx);

        let credentials = credentials.to_owned();
        let (task, rx) = spawn_watch(
            Api::<Secret>::namespaced(client.clone(), ns),
            counter(
                &seen,
                move |s: &Secret| s.name_any() != credentials,
                |c| &mut c.secrets,
                true,
            ),
        );
        tasks.push(task);
        synced.push(rx);
        let (task, rx) = spawn_watch(
            Api::<Event>::namespaced(client.clone(), ns),
            counter(&seen, |_: &Event| true, |c| &mut c.events, true),
        );
        tasks.push(task);
        synced.push(rx);
        let (task, rx) = spawn_watch(
            Api::<ModelHub>::namespaced(client.clone(), ns),
            counter(&seen, |_: &ModelHub| true, |c| &mut c.hub_status, false),
        );
        tasks.push(task);
        synced.push(rx);

        for mut rx in synced {
            tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|s| *s))
                .await
                .map_err(|_| "a namespace watch did not list within 60 s")??;
        }
        Ok(Self { seen, ready, tasks })
    }

    pub fn changes(&self) -> Changes {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).changes
    }

    pub fn ready(&self) -> usize {
        *self.ready.borrow()
    }

    /// Waits until `n` ApiKeys are Ready; false on timeout.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.ready.clone();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for NsWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A handler counting new resourceVersions (`created` too when `count_new`) of the objects `wanted`
/// accepts into the field `field` picks.
fn counter<K: Resource + ResourceExt>(
    seen: &Arc<Mutex<Seen>>,
    wanted: impl Fn(&K) -> bool + Send + 'static,
    field: fn(&mut Changes) -> &mut u64,
    count_new: bool,
) -> impl FnMut(K) + Send + 'static
where
    K::DynamicType: Default,
{
    let seen = seen.clone();
    move |obj: K| {
        if !wanted(&obj) {
            return;
        }
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        let id = format!("{}/{}", K::kind(&K::DynamicType::default()), obj.name_any());
        let rv = obj.resource_version().unwrap_or_default();
        match s.others.insert(id, rv.clone()) {
            Some(old) if old == rv => {}
            Some(_) => *field(&mut s.changes) += 1,
            None if count_new => *field(&mut s.changes) += 1,
            None => {}
        }
    }
}

/// Runs a watch, calling `on_object` for every object it delivers; the receiver turns true once the
/// initial list is done.
fn spawn_watch<K>(
    api: Api<K>,
    mut on_object: impl FnMut(K) + Send + 'static,
) -> (JoinHandle<()>, watch::Receiver<bool>)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => on_object(obj),
                Ok(watcher::Event::InitDone) => {
                    let _ = tx.send(true);
                }
                Ok(_) => {}
                Err(e) => eprintln!("namespace watch: {e}"),
            }
        }
    });
    (task, rx)
}
