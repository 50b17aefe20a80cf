//! `keysmith-sim <provider> --addr ... --management-key ...`: one provider simulator on a local port.

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, ValueEnum};
use keysmith_simulators::{
    aixplain::AixplainSim,
    anthropic::AnthropicSim,
    clock::Clock,
    digitalocean::DigitalOceanSim,
    google::GoogleSim,
    openai::OpenAiSim,
    openrouter::OpenRouterSim,
    serve,
    validate_only::{Flavor, ValidateOnlySim},
};
use tokio::signal::unix::{SignalKind, signal};

/// Serves a faithful simulator of one provider's management API on a local port, for demos and
/// tests. Test hooks (clock, faults, spend, request log) live under `/_sim/` and need no credential:
/// never expose a simulator beyond loopback.
#[derive(Debug, Parser)]
#[command(name = "keysmith-sim", version, about, long_about = None)]
struct Args {
    /// The provider to simulate.
    #[arg(value_enum)]
    provider: SimulatedProvider,
    /// Address to listen on.
    #[arg(long, env = "KEYSMITH_SIMULATOR_ADDR", default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    /// Management (admin) key the simulator accepts. Test hooks live under `/_sim/`.
    #[arg(long, env = "KEYSMITH_SIMULATOR_MANAGEMENT_KEY", hide_env_values = true)]
    management_key: String,
}

/// Providers with a simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimulatedProvider {
    /// OpenRouter's management API (`/api/v1`).
    Openrouter,
    /// DigitalOcean's GenAI model API keys (`/v2/gen-ai/models/api_keys`) and inference `/v1/models`;
    /// the management key is the API token it accepts.
    Digitalocean,
    /// Together AI's inference API (`/v1/models`); the management key is a key it accepts.
    Together,
    /// A generic OpenAI-compatible server (`/v1/models`); the management key is a key it accepts.
    OpenaiCompatible,
    /// OpenAI's Administration API (`/v1/organization`) and `/v1/models`, with project `proj_default`.
    Openai,
    /// aiXplain's API-key endpoints (`/sdk/api-keys`); the management key is the team API key.
    Aixplain,
    /// Anthropic's Admin API (API keys, workspaces, usage and cost reports) and `/v1/models`; the
    /// management key is the admin key.
    Anthropic,
    /// Google's API Keys API (`/v2`), its OAuth2 token endpoint (`/token`) and the Gemini API's
    /// `/v1beta/models`. The management key is accepted as a bearer token; the test service
    /// account's key file is served at `/_sim/service-account`.
    Google,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keysmith-sim: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let key = [args.management_key.clone()];
    let router = match args.provider {
        SimulatedProvider::Openrouter => OpenRouterSim::new(key, Clock::new()).router(),
        SimulatedProvider::Digitalocean => DigitalOceanSim::new(key, Clock::new()).router(),
        SimulatedProvider::Together => ValidateOnlySim::new(Flavor::Together, key, Clock::new()).router(),
        SimulatedProvider::OpenaiCompatible => {
            ValidateOnlySim::new(Flavor::OpenAiCompatible, key, Clock::new()).router()
        }
        SimulatedProvider::Openai => OpenAiSim::new(key, Clock::new()).router(),
        SimulatedProvider::Aixplain => AixplainSim::new(key, Clock::new()).router(),
        SimulatedProvider::Anthropic => AnthropicSim::new(key, Clock::new()).router(),
        SimulatedProvider::Google => {
            let sim = GoogleSim::new(Clock::new());
            sim.add_static_token(&args.management_key);
            sim.router()
        }
    };
    tracing::info!(addr = %listener.local_addr()?, provider = ?args.provider, "simulator listening");
    serve(listener, router, shutdown).await
}
