//! `make bench`: how fast and how cheaply keysmith converges N ApiKeys on the real control plane,
//! against the floor of what any implementation must do.
//!
//! Each round runs two phases, each in a fresh namespace with a fresh OpenRouter simulator:
//! - **operator**: the release binary (`keysmith run`) watches the namespace; N ApiKeys are created
//!   with server-side apply; the clock stops when the namespace watch has seen all N Ready. The
//!   writes are counted until the operator has been quiet for 3 s, then for an idle window. The last
//!   round also restarts the operator over the N converged keys.
//! - **floor**: no operator; a bare client in this process does only the unavoidable work for each
//!   key as it is created (see `floor.rs`), at the same concurrency.
//!
//! Rounds alternate the phases; the table shows every phase and the medians, and the last line is
//! the `RESULT` line. How writes are counted: see `writes.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

mod cluster;
mod floor;
mod operator;
mod report;
mod writes;

use std::{collections::BTreeMap, path::Path, time::Duration};

use clap::Parser;
use keysmith_api::{ModelHub, conditions};
use keysmith_simulators::{clock::Clock, openrouter::OpenRouterSim};
use kube::Api;
use tokio::time::Instant;

use crate::cluster::{Cluster, HUB, MANAGEMENT_KEY};
use crate::floor::Floor;
use crate::operator::{LogSummary, Operator, ProcStats};
use crate::writes::{Changes, NsWatch, Requests};

pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Flags; each can also be set through the environment variable named.
#[derive(Debug, Clone, Parser)]
#[command(name = "converge", about = "keysmith convergence benchmark")]
pub struct Args {
    /// ApiKeys per phase.
    #[arg(long, env = "KEYSMITH_BENCH_N", default_value_t = 1000)]
    pub n: usize,
    /// Rounds; each runs the operator phase, then the floor phase.
    #[arg(long, env = "KEYSMITH_BENCH_ROUNDS", default_value_t = 3)]
    pub rounds: usize,
    /// Idle window after each operator convergence, in which the operator should write nothing.
    #[arg(long, env = "KEYSMITH_BENCH_IDLE", default_value = "120s", value_parser = duration)]
    pub idle: Duration,
    /// ApiKeys reconciled at once: the operator's `--concurrency` and the floor's workers.
    #[arg(long, env = "KEYSMITH_BENCH_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// ApiKey create requests in flight (the same in both phases).
    #[arg(long, env = "KEYSMITH_BENCH_CREATE_CONCURRENCY", default_value_t = 16)]
    pub create_concurrency: usize,
    /// The hub's `spec.apiRateLimit.requestsPerSecond` (burst the same). The default is the most the
    /// schema allows, so that the provider pacing keysmith applies does not hide its own costs.
    #[arg(long, env = "KEYSMITH_BENCH_PROVIDER_RPS", default_value_t = 1000.0)]
    pub provider_rps: f64,
    /// Quiet window after the restart before its writes are counted.
    #[arg(long, env = "KEYSMITH_BENCH_SETTLE", default_value = "10s", value_parser = duration)]
    pub settle: Duration,
    /// Restart the operator over the converged keys at the end of the last round.
    #[arg(long, env = "KEYSMITH_BENCH_RESTART", default_value_t = true, action = clap::ArgAction::Set)]
    pub restart: bool,
    /// Give up on a phase's convergence after this long.
    #[arg(long, env = "KEYSMITH_BENCH_TIMEOUT", default_value = "30m", value_parser = duration)]
    pub timeout: Duration,
    /// Passed by `cargo bench`. Without it (`cargo test --all-targets` builds and starts every target)
    /// the benchmark only says how to run it: it takes minutes and is not a test.
    #[arg(long, hide = true)]
    pub bench: bool,
}

fn duration(text: &str) -> Result<Duration, String> {
    keysmith_core::duration::parse(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 10s or 2m"))
}

/// Which phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Operator,
    Floor,
}

/// What happened in a window: write requests, watched changes and provider calls.
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub requests: Requests,
    /// GET and LIST requests, from every client (the benchmark's watches list once per phase).
    pub reads: Requests,
    pub changes: Changes,
    pub provider: BTreeMap<String, u64>,
}

/// The restart over N converged keys.
#[derive(Clone, Debug, Default)]
pub struct Restart {
    /// Until `/readyz`.
    pub ready_after: Duration,
    /// Until every ApiKey was reconciled once and the operator was then quiet for the settle window.
    pub settled_after: Duration,
    pub reconciles: u64,
    pub window: Window,
    pub stats: ProcStats,
}

/// One phase of one round.
#[derive(Clone, Debug)]
pub struct Phase {
    pub kind: Kind,
    pub round: usize,
    pub ready: usize,
    /// First create to all Ready.
    pub time: Duration,
    /// Operator: from all Ready until no reconcile for 3 s.
    pub settle: Duration,
    /// Writes from the first create until settled, the benchmark's own creates removed.
    pub window: Window,
    /// Writes the floor client counted itself.
    pub own_writes: Option<u64>,
    pub failures: u64,
    /// Operator CPU up to settling and its peak RSS over the whole phase.
    pub stats: Option<ProcStats>,
    pub idle: Option<Window>,
    pub restart: Option<Restart>,
    pub log: Option<LogSummary>,
    /// Until the last create returned.
    pub created_in: Duration,
    /// The machine's 1-minute load average at the start and the end.
    pub load: (f64, f64),
    pub notes: Vec<String>,
}

impl Phase {
    fn new(kind: Kind, round: usize) -> Self {
        Self {
            kind,
            round,
            ready: 0,
            time: Duration::ZERO,
            settle: Duration::ZERO,
            window: Window::default(),
            own_writes: None,
            failures: 0,
            stats: None,
            idle: None,
            restart: None,
            log: None,
            created_in: Duration::ZERO,
            load: (load_average(), 0.0),
            notes: Vec::new(),
        }
    }
}

/// The 1-minute load average: the machine may be shared, and the figures mean little under load.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Provider calls since request `from`, by operation.
fn provider_calls(sim: &OpenRouterSim, from: usize) -> (BTreeMap<String, u64>, usize) {
    let all = sim.requests();
    let mut out = BTreeMap::new();
    for r in all.iter().skip(from) {
        let op = match (r.method.as_str(), r.path.trim_end_matches('/')) {
            ("POST", "/api/v1/keys") => "create".to_owned(),
            ("GET", "/api/v1/keys") => "list".to_owned(),
            ("GET", p) if p.starts_with("/api/v1/keys/") => "get".to_owned(),
            ("PATCH", _) => "update".to_owned(),
            ("DELETE", _) => "delete".to_owned(),
            (m, p) => format!("{m} {p}"),
        };
        *out.entry(op).or_insert(0) += 1;
    }
    (out, all.len())
}

struct Marks {
    requests: Requests,
    reads: Requests,
    changes: Changes,
    sim: usize,
}

impl Marks {
    async fn take(cluster: &Cluster, watch: &NsWatch, sim: &OpenRouterSim) -> Result<Self> {
        let (requests, reads) = Requests::scrape(&cluster.client).await?;
        Ok(Self {
            requests,
            reads,
            changes: watch.changes(),
            sim: sim.requests().len(),
        })
    }

    async fn window(&self, cluster: &Cluster, watch: &NsWatch, sim: &OpenRouterSim) -> Result<Window> {
        let (requests, reads) = Requests::scrape(&cluster.client).await?;
        Ok(Window {
            requests: requests.since(&self.requests),
            reads: reads.since(&self.reads),
            changes: watch.changes().since(&self.changes),
            provider: provider_calls(sim, self.sim).0,
        })
    }
}

async fn wait_hub_ready(cluster: &Cluster, ns: &str) -> Result<()> {
    let api = Api::<ModelHub>::namespaced(cluster.client.clone(), ns);
    let start = Instant::now();
    loop {
        let hub = api.get(HUB).await?;
        if hub
            .status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, conditions::READY))
        {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err("the ModelHub did not become Ready within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates N ApiKeys (each handed to `created`) while waiting for all to be Ready. Returns the
/// create requests sent, the time until the last create returned and the time to all Ready (None
/// on timeout).
async fn create_and_wait(
    cluster: &Cluster,
    args: &Args,
    ns: &str,
    watch: &NsWatch,
    created: impl Fn(keysmith_api::ApiKey),
) -> Result<(u64, Duration, Option<Duration>)> {
    let start = Instant::now();
    let create = async {
        let sent = cluster
            .create_keys(ns, args.n, args.create_concurrency, created)
            .await;
        (sent, start.elapsed())
    };
    let ready = async {
        watch
            .wait_ready(args.n, args.timeout)
            .await
            .then(|| start.elapsed())
    };
    let ((sent, created_in), time) = tokio::join!(create, ready);
    Ok((sent?, created_in, time))
}

fn cleanup_timeout(n: usize) -> Duration {
    Duration::from_secs(120 + n as u64 / 20)
}

async fn operator_phase(
    cluster: &Cluster,
    args: &Args,
    bin: &Path,
    round: usize,
    restart: bool,
) -> Result<Phase> {
    let mut phase = Phase::new(Kind::Operator, round);
    let ns = cluster.namespace("op", round).await?;
    let sim = OpenRouterSim::new([MANAGEMENT_KEY.to_owned()], Clock::new());
    let running = sim.spawn().await?;
    cluster.hub(&ns, &running.base_url, args.provider_rps).await?;
    let watch = NsWatch::start(&cluster.client, &ns, &format!("{HUB}-management")).await?;
    let mut op = Operator::start(bin, &cluster.kubeconfig, &ns, args.concurrency).await?;
    op.wait_ready(Duration::from_secs(60)).await?;
    wait_hub_ready(cluster, &ns).await?;
    // The hub's follow-up reconcile (its own status write) is not part of the measurement.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let marks = Marks::take(cluster, &watch, &sim).await?;
    let (sent, created_in, time) = create_and_wait(cluster, args, &ns, &watch, |_| {}).await?;
    phase.created_in = created_in;
    phase.ready = watch.ready();
    phase.time = time.unwrap_or(args.timeout);
    if time.is_none() {
        phase
            .notes
            .push(format!("timed out: {}/{} Ready", phase.ready, args.n));
    }
    phase.settle = op
        .settle(Duration::from_secs(3), Duration::from_secs(300))
        .await?;
    phase.stats = Some(op.stats());
    let mut window = marks.window(cluster, &watch, &sim).await?;
    window.requests = window.requests.minus("apikeys", sent);
    phase.window = window;

    if !args.idle.is_zero() {
        let marks = Marks::take(cluster, &watch, &sim).await?;
        tokio::time::sleep(args.idle).await;
        phase.idle = Some(marks.window(cluster, &watch, &sim).await?);
    }
    phase.log = Some(op.log());
    phase.load.1 = load_average();
    let last = op.stop().await?;
    if let Some(stats) = phase.stats.as_mut() {
        stats.peak_rss_mib = last.peak_rss_mib;
    }

    if restart {
        let marks = Marks::take(cluster, &watch, &sim).await?;
        let start = Instant::now();
        let mut op = Operator::start(bin, &cluster.kubeconfig, &ns, args.concurrency).await?;
        let ready_after = op.wait_ready(Duration::from_secs(300)).await?;
        while op.reconciles().await? < args.n as u64 && start.elapsed() < args.timeout {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        op.settle(args.settle, args.timeout).await?;
        let settled_after = start.elapsed();
        let reconciles = op.reconciles().await?;
        let window = marks.window(cluster, &watch, &sim).await?;
        let stats = op.stop().await?;
        phase.restart = Some(Restart {
            ready_after,
            settled_after,
            reconciles,
            window,
            stats,
        });
    }

    drop(watch);
    let stripped = cluster.strip_finalizers(&ns).await?;
    match cluster.delete_namespace(&ns, cleanup_timeout(args.n)).await {
        Ok(took) => eprintln!(
            "[bench] round {round} operator: removed {stripped} finalizers, namespace gone in {took:.0?}"
        ),
        Err(e) => phase.notes.push(format!("cleanup: {e}")),
    }
    Ok(phase)
}

async fn floor_phase(cluster: &Cluster, args: &Args, round: usize) -> Result<Phase> {
    let mut phase = Phase::new(Kind::Floor, round);
    let ns = cluster.namespace("floor", round).await?;
    let sim = OpenRouterSim::new([MANAGEMENT_KEY.to_owned()], Clock::new());
    let running = sim.spawn().await?;
    let hub = cluster.hub(&ns, &running.base_url, args.provider_rps).await?;
    let watch = NsWatch::start(&cluster.client, &ns, &format!("{HUB}-management")).await?;
    let floor = Floor::start(cluster.client.clone(), hub, usize::from(args.concurrency))?;

    let marks = Marks::take(cluster, &watch, &sim).await?;
    let (sent, created_in, time) = create_and_wait(cluster, args, &ns, &watch, |k| floor.push(k)).await?;
    phase.created_in = created_in;
    let (own, failures) = floor.finish().await?;
    phase.ready = watch.ready();
    phase.time = time.unwrap_or(args.timeout);
    if time.is_none() {
        phase
            .notes
            .push(format!("timed out: {}/{} Ready", phase.ready, args.n));
    }
    let mut window = marks.window(cluster, &watch, &sim).await?;
    window.requests = window.requests.minus("apikeys", sent);
    phase.window = window;
    phase.own_writes = Some(own);
    phase.load.1 = load_average();
    phase.failures = failures;

    drop(watch);
    match cluster.delete_namespace(&ns, cleanup_timeout(args.n)).await {
        Ok(took) => eprintln!("[bench] round {round} floor: namespace gone in {took:.0?}"),
        Err(e) => phase.notes.push(format!("cleanup: {e}")),
    }
    Ok(phase)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.bench {
        println!(
            "converge is a benchmark, not a test: run it with `make bench` (or `cargo bench --bench converge`)"
        );
        return Ok(());
    }
    // reqwest (without a default TLS provider in this crate) talks plain HTTP to the probes here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = Path::new(env!("CARGO_BIN_EXE_keysmith"));
    let cluster = Cluster::up().await?;
    eprintln!(
        "[bench] n={} rounds={} concurrency={} create-concurrency={} idle={:?} provider-rps={} binary={}",
        args.n,
        args.rounds,
        args.concurrency,
        args.create_concurrency,
        args.idle,
        args.provider_rps,
        bin.display()
    );
    let mut phases = Vec::new();
    for round in 1..=args.rounds {
        let restart = args.restart && round == args.rounds;
        let op = operator_phase(&cluster, &args, bin, round, restart).await?;
        eprintln!("[bench] {}", report::one_line(&op, args.n));
        phases.push(op);
        let floor = floor_phase(&cluster, &args, round).await?;
        eprintln!("[bench] {}", report::one_line(&floor, args.n));
        phases.push(floor);
    }
    report::print(&args, &phases);
    Ok(())
}
